"""The README's two set-up commands stay true: CI runs the test command verbatim."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    head = "\n".join((ROOT / "README.md").read_text(encoding="utf-8").splitlines()[:30])
    block = re.search(r"```(?:bash|sh)?\n(.*?)```", head, re.DOTALL)
    assert block is not None, "the README's first lines must hold a code block with the set-up commands"
    return [line.split("  #")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_readme_starts_with_the_main_job_and_the_test_command() -> None:
    main_job, tests = readme_commands()
    assert main_job.endswith(".venv/bin/alc-backend serve")
    assert tests.endswith(".venv/bin/python -m pytest -ra")


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    _, tests = readme_commands()
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert tests in ci_lines


def test_every_round_setting_is_documented_with_its_variable_and_flag() -> None:
    from alc_backend.rounds.settings import SETTINGS

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for spec in SETTINGS:
        assert f"`{spec.env}`" in readme, spec.env
        if spec.flag is not None:
            assert spec.flag.removeprefix("--") in readme, spec.flag
