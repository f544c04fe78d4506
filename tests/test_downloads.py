"""The rules for the files tasks name: local roots, allowed hosts, redirects, sizes and deadlines.

A small HTTP server on 127.0.0.1 stands for the other hosts a task may name; Label Studio's own
host is exercised against a real Label Studio in ``test_labelstudio_faults.py``.
"""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from huge_png import huge_png
from PIL import Image

from alc_backend.labelstudio.client import LabelStudioClient
from alc_backend.labelstudio.local_server import free_port
from alc_backend.service.downloads import SourceRules, TaskFiles
from alc_backend.service.settings import BackendSettings, SettingsError
from alc_backend.service.sources import TaskDataError, decode_image, decode_label_map

SECRET = b"INTERNAL-SECRET-BODY"


class Host:
    """An HTTP server on 127.0.0.1 with a few fixed routes, recording the Authorization headers it saw."""

    def __init__(self) -> None:
        self.authorizations: list[str | None] = []
        self.stop = threading.Event()
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host.authorizations.append(self.headers.get("Authorization"))
                if self.path == "/image.png":
                    self._send(200, b"image-bytes")
                elif self.path.split("?")[0] == "/missing.png":
                    self._send(404, SECRET)
                elif self.path.startswith("/redirect-to/"):
                    self.send_response(302)
                    self.send_header("Location", self.path.removeprefix("/redirect-to/"))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif self.path == "/loop":
                    self.send_response(302)
                    self.send_header("Location", "/loop")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif self.path == "/big-declared":
                    self._send(200, b"x" * 5000)
                elif self.path == "/big-chunked":
                    self.send_response(200)
                    self.end_headers()
                    for _ in range(10):
                        self.wfile.write(b"x" * 1000)
                    self.wfile.flush()
                elif self.path == "/dribble":
                    self.send_response(200)
                    self.end_headers()
                    while not host.stop.is_set():
                        self.wfile.write(b"x")
                        self.wfile.flush()
                        host.stop.wait(0.2)

            def _send(self, status: int, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                """Quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture()
def host() -> Iterator[Host]:
    server = Host()
    yield server
    server.close()


def files(rules: SourceRules) -> TaskFiles:
    """TaskFiles of a Label Studio that is not running (its host is never asked here)."""
    return TaskFiles(LabelStudioClient(f"http://127.0.0.1:{free_port()}", "token", retries=0), rules)


def refusal(task_files: TaskFiles, reference: str) -> str:
    with pytest.raises(TaskDataError) as caught:
        task_files.read(reference)
    return str(caught.value)


def test_a_host_that_is_not_listed_is_refused(host: Host) -> None:
    url = f"{host.url}/image.png"
    assert refusal(files(SourceRules()), url) == (
        f"{url}: {url}: 127.0.0.1 is neither Label Studio's host nor listed in ALC_DOWNLOAD_HOSTS"
    )
    assert host.authorizations == [], "nothing was sent"


def test_a_listed_name_at_a_private_address_is_refused_unless_the_address_is_listed(host: Host) -> None:
    url = f"http://localhost:{host.port}/image.png"
    message = refusal(files(SourceRules(hosts=("localhost",))), url)
    assert message.startswith(f"{url}: {url}: localhost is at the non-public address ")
    assert message.endswith(", which ALC_DOWNLOAD_HOSTS does not list")
    assert files(SourceRules(hosts=("localhost", "127.0.0.0/8", "::1"))).read(url) == b"image-bytes"


def test_a_listed_address_is_fetched_without_credentials(host: Host) -> None:
    assert files(SourceRules(hosts=("127.0.0.1",))).read(f"{host.url}/image.png") == b"image-bytes"
    assert host.authorizations == [None]


def test_an_error_status_is_named_and_the_body_is_not_echoed(host: Host) -> None:
    url = f"{host.url}/missing.png?token=abc"
    message = refusal(files(SourceRules(hosts=("127.0.0.1",))), url)
    assert message == f"{url}: {host.url}/missing.png answered HTTP 404"
    assert SECRET.decode() not in message


def test_redirects_follow_the_same_rules(host: Host) -> None:
    allowed = files(SourceRules(hosts=("127.0.0.1",)))
    assert allowed.read(f"{host.url}/redirect-to/{host.url}/image.png") == b"image-bytes"
    away = f"{host.url}/redirect-to/http://169.254.169.254/latest/meta-data"
    assert refusal(allowed, away) == (
        f"{away}: http://169.254.169.254/latest/meta-data: 169.254.169.254 is neither Label Studio's host nor "
        "listed in ALC_DOWNLOAD_HOSTS"
    )
    assert refusal(allowed, f"{host.url}/loop") == f"{host.url}/loop: more than 5 redirects"


def test_downloads_stop_at_the_byte_cap(host: Host) -> None:
    capped = files(SourceRules(hosts=("127.0.0.1",), max_bytes=4096))
    assert refusal(capped, f"{host.url}/big-declared") == (
        f"{host.url}/big-declared: 5000 bytes, more than ALC_MAX_DOWNLOAD_MB allows (4096)"
    )
    assert refusal(capped, f"{host.url}/big-chunked") == (
        f"{host.url}/big-chunked: more than ALC_MAX_DOWNLOAD_MB allows (4096 bytes)"
    )


def test_a_server_that_dribbles_is_stopped_at_the_deadline(host: Host) -> None:
    started = time.monotonic()
    message = refusal(files(SourceRules(hosts=("127.0.0.1",), deadline_s=1.0)), f"{host.url}/dribble")
    assert message == f"{host.url}/dribble: took longer than ALC_DOWNLOAD_TIMEOUT_S (1 s)"
    assert time.monotonic() - started < 60, "it did not wait for the server to finish"


def test_an_unreachable_listed_host_is_the_task_s_error_at_once() -> None:
    url = f"http://127.0.0.1:{free_port()}/image.png"
    message = refusal(files(SourceRules(hosts=("127.0.0.1",))), url)
    assert message == f"{url}: {url} cannot be reached (ConnectionError)"


def test_local_paths_are_refused_without_roots_alike_whether_they_exist_or_not(tmp_path: Path) -> None:
    existing = tmp_path / "mask.png"
    existing.write_bytes(b"mask")
    rules = SourceRules()
    for reference in (str(existing), str(tmp_path / "nope.png"), "/proc/self/environ", "../mask.png"):
        assert refusal(files(rules), reference) == (
            f"{reference}: a local path, and the backend reads none: list the folders it may read in ALC_LOCAL_ROOTS"
        )


def test_local_paths_are_read_only_under_the_roots(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "masks").mkdir(parents=True)
    (root / "masks" / "a.png").write_bytes(b"a")
    (tmp_path / "outside.png").write_bytes(b"outside")
    os.symlink(tmp_path / "outside.png", root / "masks" / "link.png")
    task_files = files(SourceRules(local_roots=(root,)))
    assert task_files.read("masks/a.png") == b"a"
    assert task_files.read(str(root / "masks" / "a.png")) == b"a"
    for reference in ("../outside.png", str(tmp_path / "outside.png"), "masks/link.png", "masks/none.png"):
        assert refusal(task_files, reference) == f"{reference}: not a file under ALC_LOCAL_ROOTS"
    assert refusal(task_files, "file:///etc/passwd") == (
        "file:///etc/passwd: only http(s) URLs, Label Studio paths and local paths can be read"
    )


def test_an_image_over_the_pixel_cap_is_refused_before_it_is_decoded() -> None:
    data = huge_png(12_000, 5_000)
    with pytest.raises(TaskDataError) as caught:
        decode_image(data, "task 1: image big.png", max_pixels=50_000_000)
    assert (
        str(caught.value)
        == "task 1: image big.png is 12000x5000, more than the 50000000 pixels of ALC_MAX_IMAGE_PIXELS"
    )
    with pytest.raises(TaskDataError, match=r"^task 1: image bomb.png is too large to decode: Image size \(400000000"):
        decode_image(huge_png(20_000, 20_000), "task 1: image bomb.png", max_pixels=50_000_000)


def test_a_mask_of_another_size_is_refused_before_it_is_decoded() -> None:
    with pytest.raises(TaskDataError) as caught:
        decode_label_map(huge_png(12_000, 5_000), "task 1: pseudo_mask m.png", (48, 64), 3)
    assert str(caught.value) == "task 1: pseudo_mask m.png is 12000x5000 but the image is 64x48 (width x height)"
    buffer = io.BytesIO()
    Image.fromarray(np.ones((48, 64), dtype=np.uint8)).save(buffer, format="PNG")
    assert (decode_label_map(buffer.getvalue(), "m", (48, 64), 3) == 1).all()


def test_the_rules_come_from_the_environment() -> None:
    settings = BackendSettings.from_env(
        {
            "ALC_LOCAL_ROOTS": f"/data/masks{os.pathsep}/srv/more",
            "ALC_DOWNLOAD_HOSTS": "images.example.com, 10.0.0.0/8",
            "ALC_MAX_DOWNLOAD_MB": "8",
            "ALC_DOWNLOAD_TIMEOUT_S": "12.5",
        }
    )
    assert settings.source_rules() == SourceRules(
        local_roots=(Path("/data/masks"), Path("/srv/more")),
        hosts=("images.example.com", "10.0.0.0/8"),
        max_bytes=8 * 2**20,
        deadline_s=12.5,
    )
    with pytest.raises(SettingsError, match=r"^ALC_MAX_IMAGE_PIXELS must be > 0, got 0$"):
        BackendSettings.from_env({"ALC_MAX_IMAGE_PIXELS": "0"})
