"""The queue's set-up errors, and the embedded default with no rq or redis installed at all."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from alc_backend.cli import main


def test_serve_names_an_unreachable_redis_at_start_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    assert main(["serve", "--model-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("alc-backend: error: Redis at redis://127.0.0.1:1/0 is unreachable:")


def test_a_worker_names_the_settings_it_lacks(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("REDIS_URL", "LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    assert main(["worker", "--burst"]) == 2
    assert capsys.readouterr().err == (
        "alc-backend: error: a worker needs LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY in its environment\n"
    )


def test_the_embedded_default_runs_with_neither_rq_nor_redis_importable(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path

        class NoQueuePackages:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("rq", "redis"):
                    raise ModuleNotFoundError(f"No module named {{name!r}}")
                return None

        sys.meta_path.insert(0, NoQueuePackages())
        from alc_backend.server import create_app
        from alc_backend.service.settings import BackendSettings

        app = create_app(BackendSettings(model_dir=Path({str(tmp_path)!r})))
        health = app.test_client().get("/health")
        assert health.status_code == 200, health.json
        assert health.json["jobs"]["runner"] == "in-process"
        assert not [name for name in sys.modules if name.split(".")[0] in ("rq", "redis")]
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
