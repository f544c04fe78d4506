"""Static checks of docker-compose.yml and docker/*.Dockerfile: no Docker engine runs on these machines.

They check that every path, pin, command and environment variable in those files is one the
repository really has; `docker compose config -q` runs too where the docker CLI has compose.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from alc_backend.cli import build_parser
from alc_backend.service.settings import BackendSettings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILES = {"backend": ROOT / "docker" / "backend.Dockerfile", "worker": ROOT / "docker" / "worker.Dockerfile"}
SERVICES = ("label-studio", "redis", "backend", "worker", "rq-dashboard")
WORKSPACE = "/data/workspace"
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def service(name: str) -> dict[str, Any]:
    return compose()["services"][name]


def with_defaults(value: str) -> str:
    """``value`` with every ``${NAME:-default}`` replaced by its default, as compose does with NAME unset."""
    return INTERPOLATION.sub(lambda match: match.group(2) or "", value)


def defaults_of(value: str) -> dict[str, str]:
    """The variables ``value`` interpolates, with their defaults."""
    return {match.group(1): match.group(2) or "" for match in INTERPOLATION.finditer(value)}


def environment(name: str) -> dict[str, str]:
    """A service's environment as compose writes it (mapping or list form), interpolation left in."""
    raw = service(name).get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {key: str(value) for key, value in raw.items()}


def command_text(name: str) -> str:
    command = service(name).get("command") or ""
    return command if isinstance(command, str) else " ".join(command)


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined, comments left out."""
    result: list[tuple[str, str]] = []
    pending = ""
    for line in dockerfile.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        result.append((keyword.upper(), arguments.strip()))
        pending = ""
    return result


def arguments_of(dockerfile: Path, keyword: str) -> list[str]:
    return [arguments for name, arguments in instructions(dockerfile) if name == keyword]


def cmd(dockerfile: Path) -> list[str]:
    """The (last, JSON-form) CMD of a Dockerfile."""
    return json.loads(arguments_of(dockerfile, "CMD")[-1])


def pins(requirements: str) -> dict[str, str]:
    lines = (ROOT / requirements).read_text().splitlines()
    pairs = [line.split("==") for line in lines if "==" in line and not line.startswith("#")]
    return {name.strip().lower(): version.strip() for name, version in pairs}


def subcommands() -> dict[str, argparse.ArgumentParser]:
    actions = [action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction)]
    return actions[0].choices


def parse_command_line(words: list[str]) -> argparse.Namespace:
    """``alc-backend WORDS...`` parsed by the real parser; a test failure naming the command if it is wrong."""
    assert words[0] == "alc-backend", words
    assert words[1] in subcommands(), f"{words[1]!r} is not a subcommand of alc-backend: {sorted(subcommands())}"
    try:
        return build_parser().parse_args(words[1:])
    except SystemExit:
        pytest.fail(f"alc-backend does not accept {shlex.join(words)}")


def test_compose_has_the_five_services() -> None:
    assert set(SERVICES) <= set(compose()["services"])
    assert service("label-studio")["image"] == "heartexlabs/label-studio:1.23.2"
    assert service("redis")["image"].startswith("redis:7")


def test_backend_and_worker_share_the_workspace_volume_and_model_dir() -> None:
    mounts = {}
    for name in ("backend", "worker"):
        volumes = [volume.split(":") for volume in service(name)["volumes"]]
        mounts[name] = {target: source for source, target, *_ in volumes}
        assert WORKSPACE in mounts[name], f"{name} mounts nothing at {WORKSPACE}"
        assert with_defaults(environment(name)["MODEL_DIR"]) == WORKSPACE
        assert f"MODEL_DIR={WORKSPACE}" in arguments_of(DOCKERFILES[name], "ENV")
    source = mounts["backend"][WORKSPACE]
    assert mounts["worker"][WORKSPACE] == source
    assert source in compose()["volumes"], f"{source} is not a named volume of the compose file"


def test_redis_urls_point_at_the_redis_service() -> None:
    urls = {name: with_defaults(environment(name)["REDIS_URL"]) for name in ("backend", "worker")}
    dashboard = re.search(r"--redis-url[ =](\S+)", command_text("rq-dashboard"))
    assert dashboard, "rq-dashboard is not given --redis-url"
    urls["rq-dashboard"] = dashboard.group(1)
    for name, url in urls.items():
        parsed = urlparse(url)
        assert (parsed.scheme, parsed.hostname, parsed.port or 6379) == ("redis", "redis", 6379), (name, url)
    assert len(set(urls.values())) == 1, urls


def test_rq_dashboard_pins_rq_and_redis_as_requirements_queue_does() -> None:
    installed = dict(re.findall(r"\b(rq|redis)==(\S+)", command_text("rq-dashboard")))
    queue_pins = pins("requirements-queue.txt")
    assert installed == {"rq": queue_pins["rq"], "redis": queue_pins["redis"]}
    assert re.search(r"\brq-dashboard==\S+", command_text("rq-dashboard")), "rq-dashboard is not pinned"


def test_worker_reserves_a_gpu() -> None:
    devices = service("worker")["deploy"]["resources"]["reservations"]["devices"]
    assert any(device["driver"] == "nvidia" and "gpu" in device["capabilities"] for device in devices)


def test_every_build_dockerfile_exists_and_is_one_of_ours() -> None:
    built = {}
    for name, spec in compose()["services"].items():
        if "build" in spec:
            context = (COMPOSE_FILE.parent / spec["build"]["context"]).resolve()
            dockerfile = context / spec["build"]["dockerfile"]
            assert dockerfile.is_file(), f"{name}: {dockerfile} does not exist"
            assert context == ROOT, f"{name}: the build context must be the repository root, not {context}"
            built[name] = dockerfile
    assert built == DOCKERFILES


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_every_copy_source_exists(name: str) -> None:
    copies = arguments_of(DOCKERFILES[name], "COPY")
    assert copies, f"{name} copies nothing"
    for arguments in copies:
        words = [word for word in arguments.split() if not word.startswith("--")]
        for source in words[:-1]:
            assert list(ROOT.glob(source.rstrip("/"))), f"{name}: COPY {source} matches nothing in the repository"


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_cmd_is_a_real_alc_backend_command(name: str) -> None:
    words = cmd(DOCKERFILES[name])
    args = parse_command_line(words)
    if name == "backend":
        assert words[1] == "serve"
        assert args.port == 9090
        assert "9090" in arguments_of(DOCKERFILES[name], "EXPOSE")
        check = json.loads(arguments_of(DOCKERFILES[name], "HEALTHCHECK")[0].split("CMD", 1)[1])
        assert check[1] == "status" and parse_command_line(check).backend == f"http://127.0.0.1:{args.port}"
    else:
        assert words[1] == "worker"
        assert args.queues == [BackendSettings.from_env(resolved_environment("worker")).queue]


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_torch_pins_equal_requirements(name: str) -> None:
    text = DOCKERFILES[name].read_text()
    wanted = pins("requirements.txt")
    for package in ("torch", "torchvision"):
        found = set(re.findall(rf"\b{package}==(\S+)", text))
        assert found == {wanted[package]}, (name, package, found)
    cpu_index = "https://download.pytorch.org/whl/cpu"
    assert (cpu_index in text) == (name == "backend"), "the backend takes the CPU wheels, the worker PyPI's CUDA ones"


def resolved_environment(name: str) -> dict[str, str]:
    return {key: with_defaults(value) for key, value in environment(name).items()}


@pytest.mark.parametrize("name", ["backend", "worker"])
def test_compose_sets_only_variables_the_code_reads(name: str) -> None:
    sources = "\n".join(path.read_text() for path in (ROOT / "alc_backend").rglob("*.py"))
    for variable in environment(name):
        assert f'"{variable}"' in sources, f"{name}: nothing in alc_backend reads {variable}"
    settings = BackendSettings.from_env(resolved_environment(name))
    assert settings.model_dir == Path(WORKSPACE)
    assert settings.label_studio_url == "http://label-studio:8080"
    assert settings.api_key
    if settings.backend_url:
        assert urlparse(settings.backend_url).hostname == "backend", "Label Studio reaches the backend as 'backend'"


def test_label_studio_token_and_backend_key_have_the_same_default() -> None:
    token = defaults_of(environment("label-studio")["LABEL_STUDIO_USER_TOKEN"])["LABEL_STUDIO_USER_TOKEN"]
    for name in ("backend", "worker"):
        key = defaults_of(environment(name)["LABEL_STUDIO_API_KEY"])["LABEL_STUDIO_API_KEY"]
        assert key == token, f"{name}'s default LABEL_STUDIO_API_KEY is not Label Studio's default user token"
    assert 5 < len(token) <= 40, "Label Studio applies a user token of 6 to 40 characters only"


def test_docker_readme_commands_match_the_files() -> None:
    readme = (ROOT / "docker" / "README.md").read_text()
    assert "docker compose up" in readme
    assert "docker compose -f" not in readme, "the compose file is at the repository root: no -f needed"
    assert "http://backend:9090" in readme
    lines = [line.strip() for line in readme.splitlines() if line.strip().startswith("docker compose exec backend")]
    assert lines, "docker/README.md runs nothing in the backend container"
    for line in lines:
        words = shlex.split(line)
        parse_command_line(words[words.index("alc-backend") :])
    for path in re.findall(r"docker build -f (\S+)", readme):
        assert (ROOT / path).is_file(), path


def test_docker_compose_config_accepts_the_file() -> None:
    if shutil.which("docker") is None:
        pytest.skip("no docker CLI on this machine")
    version = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=60)
    if version.returncode != 0:
        pytest.skip("the docker CLI has no compose plugin")
    checked = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert checked.returncode == 0, checked.stderr
