"""Offline checks of the deployment files: docker-compose.yml, Dockerfile, .dockerignore, deploy/.

No Docker engine is needed: the compose file is validated against the compose-spec JSON schema
(vendored in deploy/, else ../shared/data/), by ``docker compose config`` or Debian's
``docker-compose config`` when one is installed, and cross-checked with ``Settings`` and the CLI.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from durable_sessions.cli import build_parser
from durable_sessions.config import Settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
DEPLOY = REPO / "deploy"
SCHEMA_CANDIDATES = [
    DEPLOY / "compose-spec.json",
    REPO.parent / "shared" / "data" / "compose-spec.json",
]
PREFIX = "DURABLE_SESSIONS_"
APP_SERVICES = ("setup", "worker", "api")
"""Services that run our image."""

_INTERPOLATION = re.compile(
    r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def interpolate(value: str) -> str:
    """Resolve ``${VAR}``, ``${VAR:-default}`` and ``${VAR-default}`` as with an empty shell."""

    def sub(m: re.Match[str]) -> str:
        if m["op"] in (":?", "?"):
            pytest.fail(f"{m[0]} makes the compose file unusable without that variable")
        return m["arg"] if m["op"] in (":-", "-") else ""

    return _INTERPOLATION.sub(sub, value)


def environment(service: dict[str, Any]) -> dict[str, str | None]:
    """A service's environment as a dict; None marks a pass-through variable."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        out: dict[str, str | None] = {}
        for item in env:
            name, sep, value = str(item).partition("=")
            out[name] = value if sep else None
        return out
    return {k: (None if v is None else interpolate(str(v))) for k, v in env.items()}


def settings_field(var: str) -> str:
    return var.removeprefix(PREFIX).lower()


# --- (a) the compose-spec schema --------------------------------------------------------------


def compose_schema() -> dict[str, Any]:
    for path in SCHEMA_CANDIDATES:
        if path.is_file():
            loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            return loaded
    pytest.skip(f"no compose-spec JSON schema at {', '.join(map(str, SCHEMA_CANDIDATES))}")


def test_compose_file_matches_the_compose_spec_schema(compose: dict[str, Any]) -> None:
    schema = compose_schema()
    validator = jsonschema.Draft201909Validator(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors
    )


def test_the_schema_catches_mistakes(compose: dict[str, Any]) -> None:
    """The validation above would notice a broken file (a typo'd key, a bad condition)."""
    validator = jsonschema.Draft201909Validator(compose_schema())
    broken = json.loads(json.dumps(compose))
    broken["services"]["worker"]["depends_on"]["setup"]["condition"] = "service_done"
    broken["services"]["api"]["helthcheck"] = {}
    assert len(list(validator.iter_errors(broken))) >= 2


def test_vendored_schema_is_the_shared_copy() -> None:
    vendored, shared = SCHEMA_CANDIDATES
    if not shared.is_file():
        pytest.skip(f"{shared} is not there to compare with")
    assert json.loads(vendored.read_text()) == json.loads(shared.read_text())


# --- (b) a real compose implementation --------------------------------------------------------


def compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, timeout=30
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy is not None else None


def test_compose_config_accepts_the_file(tmp_path: Path) -> None:
    command = compose_command()
    if command is None:
        reason = (
            "neither `docker compose` nor `docker-compose` is installed "
            "(`apt-get install docker-compose`)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", PREFIX))}
    env["HOME"] = str(tmp_path)  # no user config (contexts, credential helpers) involved
    result = subprocess.run(
        [*command, "--project-directory", str(REPO), "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr or result.stdout


# --- (c) every setting exists and parses ------------------------------------------------------


def test_every_durable_sessions_variable_is_a_settings_field(compose: dict[str, Any]) -> None:
    fields = set(Settings.model_fields)
    seen: set[str] = set()
    for name, service in services(compose).items():
        for var in environment(service):
            if var.startswith(PREFIX):
                seen.add(var)
                assert settings_field(var) in fields, f"{name}: {var} is not a Settings field"
    # The interpolations and the scripts may name settings too.
    text = COMPOSE_FILE.read_text()
    for path in (DEPLOY / "setup.sh", DEPLOY / "env.example", DOCKERFILE):
        text += path.read_text()
    for var in set(re.findall(rf"\b{PREFIX}[A-Z0-9_]+\b", text)):
        assert settings_field(var) in fields, f"{var} is not a Settings field"
    assert {f"{PREFIX}TEMPORAL_ADDRESS", f"{PREFIX}DATABASE_URL"} <= seen


@pytest.mark.parametrize("service_name", APP_SERVICES)
def test_app_environment_builds_settings(
    compose: dict[str, Any], service_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in list(os.environ):
        if var.startswith(PREFIX):
            monkeypatch.delenv(var)
    env = environment(services(compose)[service_name])
    given = {k: v for k, v in env.items() if k.startswith(PREFIX) and v is not None}
    for var, value in given.items():
        monkeypatch.setenv(var, value)
    settings = Settings()  # raises on a value that does not parse
    assert settings.temporal_address == "temporal:7233"
    assert settings.database_url is not None
    assert settings.database_url.startswith("postgresql://")
    assert "@postgres:5432/" in settings.database_url
    for var, value in given.items():
        parsed = getattr(settings, settings_field(var))
        assert str(parsed) == value, (var, value, parsed)
    if service_name == "worker":
        assert settings.metrics_port == 9464
    if service_name == "api":
        assert settings.http_port == 8000


def test_worker_can_scale(compose: dict[str, Any]) -> None:
    worker = services(compose)["worker"]
    assert "container_name" not in worker
    for port in worker.get("ports", []):
        published = port.get("published") if isinstance(port, dict) else str(port).split(":")
        assert not published or len(published) == 1, f"fixed host port {port} on the worker"
    for name in APP_SERVICES:
        assert services(compose)[name].get("build") is not None, f"{name} must build our image"


def test_start_order_and_images(compose: dict[str, Any]) -> None:
    all_services = services(compose)
    for name, service in all_services.items():
        deps = service.get("depends_on") or {}
        for dep in deps:
            assert dep in all_services, f"{name} depends on unknown {dep}"
        image = service.get("image", "")
        if "build" not in service:
            repo, _, tag = image.rpartition(":")
            assert repo and tag and tag != "latest", f"{name}: pin the image tag ({image})"
        if name in ("postgres", "temporal", "worker", "api"):
            assert "healthcheck" in service, f"{name} has no health check"
    assert all_services["setup"]["depends_on"]["temporal"]["condition"] == "service_healthy"
    for name in ("worker", "api"):
        assert (
            all_services[name]["depends_on"]["setup"]["condition"]
            == "service_completed_successfully"
        )
    assert (
        all_services["temporal"]["depends_on"]["temporal-schema"]["condition"]
        == "service_completed_successfully"
    )


def test_mounted_files_exist(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("."):
                assert (REPO / source).exists(), f"{name} mounts missing {source}"


# --- (d) Dockerfile and commands --------------------------------------------------------------


def dockerfile_instructions() -> Iterator[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` with continuation lines joined, comments dropped."""
    logical = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        op, _, args = logical.partition(" ")
        yield op.upper(), args.strip()
        logical = ""


def exec_form(args: str) -> list[str]:
    try:
        parsed = json.loads(args)
    except json.JSONDecodeError:
        pytest.fail(f"use the exec (JSON array) form, not {args!r}")
    assert isinstance(parsed, list)
    return [str(p) for p in parsed]


def assert_cli_accepts(argv: list[str]) -> None:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"`durable-sessions {' '.join(argv)}` is not a command of the CLI")
    assert args.command == argv[0]


def test_dockerfile_runs_the_cli() -> None:
    instructions = list(dockerfile_instructions())
    final_stage = max(i for i, (op, _) in enumerate(instructions) if op == "FROM")
    final = instructions[final_stage:]
    by_op = {op: args for op, args in final}
    assert exec_form(by_op["ENTRYPOINT"]) == ["durable-sessions"]
    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(r'^durable-sessions = "durable_sessions\.cli:main"$', pyproject, re.M)
    command = exec_form(by_op["CMD"])
    assert command == ["worker"]
    assert_cli_accepts(command)

    assert "python:3.11-slim" in DOCKERFILE.read_text()
    user = by_op.get("USER", "root")
    assert user not in ("root", "0"), "the image must not run as root"
    assert any(op == "RUN" and re.search(r'pip install "?\.', args) for op, args in instructions)


def command_of(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return command if isinstance(command, list) else shlex.split(command)


def test_worker_service_runs_a_cli_command(compose: dict[str, Any]) -> None:
    assert command_of(services(compose)["worker"]) == ["worker"]
    assert_cli_accepts(command_of(services(compose)["worker"]))


def test_setup_script_runs_cli_commands() -> None:
    setup = (DEPLOY / "setup.sh").read_text()
    calls = re.findall(r"^\s*durable-sessions (.+)$", setup, re.M)
    assert calls == ["db upgrade"]
    for call in calls:
        assert_cli_accepts(shlex.split(call))


def test_api_service_runs_serve(compose: dict[str, Any]) -> None:
    """Needs the HTTP part's ``durable-sessions serve`` subcommand in ``cli.build_parser()``."""
    command = command_of(services(compose)["api"])
    assert command == ["serve"]
    assert_cli_accepts(command)


def test_build_context_has_what_the_dockerfile_copies() -> None:
    ignore = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ignore[0] == "*", ".dockerignore is an allowlist"
    allowed = {p.removeprefix("!").rstrip("/") for p in ignore if p.startswith("!")}
    for op, args in dockerfile_instructions():
        if op != "COPY" or "--from=" in args:
            continue
        sources = [a for a in args.split() if not a.startswith("--")][:-1]
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: missing"
            assert source.rstrip("/") in allowed, f"COPY {source}: excluded by .dockerignore"
    for needed in ("pyproject.toml", "README.md", "src"):
        assert needed in allowed


# --- scripts ----------------------------------------------------------------------------------

SCRIPTS = sorted(DEPLOY.rglob("*.sh"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_scripts_are_posix_shell(script: Path) -> None:
    sh = shutil.which("sh")
    if sh is None:
        pytest.skip("no sh")
    result = subprocess.run([sh, "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert script.read_text().startswith("#!/bin/sh\n")
    assert os.access(script, os.X_OK), f"{script} is not executable"


def test_dynamic_config_is_valid_yaml() -> None:
    config = yaml.safe_load((DEPLOY / "temporal" / "dynamicconfig" / "docker.yaml").read_text())
    assert isinstance(config, dict)
    for key, entries in config.items():
        assert isinstance(entries, list) and entries, key
        for entry in entries:
            assert set(entry) <= {"value", "constraints"}, key
