"""`alc-backend quickstart`: bad input stops it before anything starts; a real run reaches a loop, Ctrl-C ends it,
and a second run reuses what the first made."""

from __future__ import annotations

import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import venv
from collections.abc import Callable
from pathlib import Path

import pytest

from alc_backend.cli import main
from alc_backend.labelstudio.client import LabelStudioClient
from alc_backend.labelstudio.local_server import free_port
from alc_backend.labelstudio.local_venv import pip_install
from alc_backend.quickstart import port_is_free

READY_TIMEOUT_S = 900.0


def test_a_taken_port_or_a_folder_that_is_no_data_set_stops_quickstart_before_it_starts_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir = tmp_path / "qs"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["quickstart", "--workdir", str(workdir), "--label-studio-port", str(port)]) == 2
        assert (
            f"port {port} is taken, so Label Studio cannot start there; choose another with --label-studio-port"
            in capsys.readouterr().err
        )
        assert main(["quickstart", "--workdir", str(workdir), "--label-studio-port", "0", "--port", str(port)]) == 2
        assert f"port {port} is taken, so the backend cannot start there" in capsys.readouterr().err
    (tmp_path / "notdata").mkdir()
    arguments = ["quickstart", "--workdir", str(workdir), "--data", str(tmp_path / "notdata")]
    assert main([*arguments, "--label-studio-port", "0", "--port", "0"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["quickstart", "--workdir", str(workdir), "--label-studio-url", "http://127.0.0.1:1"]) == 2
    assert "give both --label-studio-url and --label-studio-token, or neither" in capsys.readouterr().err
    assert not workdir.exists(), "nothing was started or written"


@pytest.mark.slow
@pytest.mark.labelstudio
def test_quickstart_brings_up_a_loop_ctrl_c_stops_it_and_a_second_run_reuses_its_project(tmp_path: Path) -> None:
    label_studio_port, backend_port = free_port(), free_port()
    command = [sys.executable, "-m", "alc_backend.cli", "quickstart", "--workdir", str(tmp_path / "qs")]
    command += ["--images", "4", "--label-studio-port", str(label_studio_port), "--port", str(backend_port)]

    def check_first_run(output: str) -> None:
        opened = re.search(r"Open (http://127\.0\.0\.1:\d+)/projects/(\d+)/data\?labeling=1", output)
        assert opened is not None, output
        url, query_project = opened.group(1), int(opened.group(2))
        assert url == f"http://127.0.0.1:{label_studio_port}"
        assert "\nlogin: admin@example.com\n" in output
        assert "[4/5] creating the image project and connecting it" in output
        client = LabelStudioClient(url, token_in(output))
        assert client.list_tasks(query_project), "round 1's queries wait in the query project"
        assert len(client.list_tasks(query_project - 1)) == 4, "the image project holds the sample's 4 images"

    first = _run_until_ready(command, check_first_run)
    assert port_is_free(label_studio_port) and port_is_free(backend_port), "Ctrl-C stopped both servers"
    query_project = int(re.findall(r"/projects/(\d+)/data", first)[0])

    def check_second_run(output: str) -> None:
        assert f"[4/5] reusing image project {query_project - 1} of the last run, and its queries" in output
        assert f"/projects/{query_project}/data?labeling=1" in output
        assert token_in(output) == token_in(first)
        client = LabelStudioClient(f"http://127.0.0.1:{label_studio_port}", token_in(output))
        assert len(client.list_tasks(query_project - 1)) == 4, "no second import"

    _run_until_ready(command, check_second_run)
    assert port_is_free(label_studio_port) and port_is_free(backend_port)


def token_in(output: str) -> str:
    """The token quickstart printed on a line of its own."""
    (token,) = re.findall(r"^token: (\S+)$", output, flags=re.MULTILINE)
    return token


def _run_until_ready(command: list[str], check: Callable[[str], None]) -> str:
    """Run quickstart until it prints its token, ``check`` its output while it runs, then Ctrl-C it (exit
    code 0 asserted); its output."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not any(line.startswith("token: ") for line in seen):
            assert process.poll() is None, "quickstart exited:\n" + "".join(seen)
            assert time.monotonic() < deadline, "quickstart did not get ready:\n" + "".join(seen)
            try:
                seen.append(lines.get(timeout=1.0))
            except queue.Empty:
                continue
        check("".join(seen))
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 0
    finally:
        if process.poll() is None:
            process.kill()
    return "".join(seen)


@pytest.mark.slow
def test_pip_install_reports_each_package_it_collects_and_fails_with_the_tail_of_pips_output(tmp_path: Path) -> None:
    venv.create(tmp_path / "venv", with_pip=True)
    python = tmp_path / "venv" / "bin" / "python"
    collected: list[str] = []
    pip_install(python, ["six"], on_package=collected.append)
    assert collected == ["six"]
    assert subprocess.run([str(python), "-c", "import six"], check=False).returncode == 0
    with pytest.raises(RuntimeError) as failure:
        pip_install(python, ["alc-backend-no-such-package==0.0.1"])
    message = str(failure.value)
    assert message.startswith("pip install alc-backend-no-such-package==0.0.1 failed (exit 1):\n")
    assert "No matching distribution found for alc-backend-no-such-package==0.0.1" in message
