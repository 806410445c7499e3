"""compose.yml, .env.example and the Dockerfile, checked against the code they deploy.

No Docker engine runs here, so nothing is started: the files are parsed, every command is run
through the real ``msd`` argument parser (and granian's), the settings the containers get are
validated by the real settings loader, and ``docker compose config`` validates the file when a
Compose v2 binary is on the PATH.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from msd import cli
from msd.settings import SETTINGS, load_settings, setting_names

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "Dockerfile"
README = REPO / "README.md"

REQUIRED_SERVICES = {
    "postgres",
    "clickhouse",
    "redis",
    "migrate",
    "api",
    "worker",
    "scheduler",
    "replicator",
}
CLUSTER_SERVICES = {"keeper", "ch-s1r1", "ch-s1r2", "ch-s2r1", "ch-s2r2"}
ONE_SHOT = {"migrate"}
_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?::?-(?P<default>[^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def app_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The services that run the msd image (built from the Dockerfile)."""
    return {name: s for name, s in services.items() if "build" in s}


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    values = {}
    for number, line in enumerate(ENV_EXAMPLE.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep, f".env.example line {number} is not NAME=value: {line!r}"
        values[name.strip()] = value.strip()
    return values


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def _substitute(text: str, env: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        given = env.get(match["name"], "")
        return given if given else (match["default"] or "")

    return _VARIABLE.sub(value, text)


def _command(service: dict[str, Any], env: dict[str, str]) -> list[str]:
    command = service["command"]
    assert isinstance(command, list), "commands are lists, so that no shell is involved"
    return [_substitute(str(part), env) for part in command]


def _readme_commands() -> list[list[str]]:
    """Every command line in the README's shell blocks, split into words."""
    text = README.read_text(encoding="utf-8")
    lines: list[list[str]] = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.DOTALL):
        for line in block.splitlines():
            for part in re.split(r"&&|;|&(?!&)", line.split("#")[0]):
                words = part.split()
                if words:
                    lines.append([Path(words[0]).name, *words[1:]])
    return lines


def test_every_required_service_exists(services: dict[str, dict[str, Any]]) -> None:
    assert REQUIRED_SERVICES <= set(services)
    assert CLUSTER_SERVICES <= set(services)
    assert all(services[name].get("profiles") == ["cluster"] for name in CLUSTER_SERVICES)
    built = {name for name, service in services.items() if "build" in service}
    assert built == {"migrate", "api", "worker", "scheduler", "replicator"}


def test_app_services_get_every_setting_server_mode_needs_and_they_validate(
    app_services: dict[str, dict[str, Any]], env_example: dict[str, str]
) -> None:
    # A setting whose absence means "embedded" or "in-process" must be given in server mode.
    needed = {
        "MSD_" + s.name.upper()
        for s in SETTINGS
        if re.search(r"Unset: (an |the )?(embedded|in-process)", s.help)
    }
    assert needed == {"MSD_DATABASE_URL", "MSD_CLICKHOUSE_URL", "MSD_REDIS_URL"}
    for name, service in app_services.items():
        environment = service["environment"]
        assert needed <= set(environment), f"{name} lacks {needed - set(environment)}"
        assert set(k for k in environment if k.startswith("MSD_")) <= set(setting_names())
        resolved = {k: _substitute(str(v), env_example) for k, v in environment.items()}
        settings = load_settings(environ=resolved)
        assert not settings.embedded_postgres and not settings.embedded_clickhouse, name
        assert settings.redis_url is not None, name


def test_no_credential_is_written_in_the_compose_file(compose: dict[str, Any]) -> None:
    for text in _strings(compose):
        for password in re.findall(r"://[^:/@\s]*:([^@\s]+)@", text):
            assert _VARIABLE.fullmatch(password), f"literal password in URL {text!r}"

    def check(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if re.search(r"PASSWORD|SECRET|TOKEN|AUTH", str(key)) and isinstance(value, str):
                    assert _VARIABLE.fullmatch(value), f"{path}.{key} = {value!r} is literal"
                check(value, f"{path}.{key}")
        elif isinstance(node, list):
            for index, item in enumerate(node):
                if index and str(node[index - 1]).lstrip("-") in ("requirepass", "password"):
                    assert _VARIABLE.fullmatch(str(item)), f"{path}[{index}] is a literal secret"
                check(item, f"{path}[{index}]")

    check(compose, "compose")


def test_every_variable_compose_reads_is_in_env_example(
    compose: dict[str, Any], env_example: dict[str, str]
) -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    used = {m["name"] for m in _VARIABLE.finditer(text)}
    assert used - set(env_example) == set()
    # "$$" reaches the container's shell; a single "$NAME" would be compose's and is not used.
    assert not re.search(r"(?<!\$)\$(?!\$|\{)\w", text.replace("$$", ""))
    assert set(k for k in env_example if k.startswith("MSD_")) <= set(setting_names())
    secrets = [k for k in env_example if re.search(r"PASSWORD|SECRET", k)]
    assert secrets and all(env_example[k] == "change-me" for k in secrets)


def test_every_long_running_service_has_a_health_check(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service.get("restart") == "no", name
            continue
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no health check"


def test_dependencies_wait_for_health_or_the_migration(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        for target, rule in service.get("depends_on", {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            wanted = "service_completed_successfully" if target in ONE_SHOT else "service_healthy"
            assert rule["condition"] == wanted, f"{name} -> {target}"
            if wanted == "service_healthy":
                assert "healthcheck" in services[target], target
            target_profiles = set(services[target].get("profiles", []))
            if target_profiles - set(service.get("profiles", [])):
                assert rule.get("required") is False, f"{name} needs {target} of a profile"
    for name in ("api", "worker", "scheduler", "replicator"):
        assert "migrate" in services[name]["depends_on"], name


def test_state_lives_in_named_volumes_and_mounted_files_exist(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    declared = set(compose["volumes"])
    for name, service in services.items():
        for mount in service.get("volumes", []):
            source, target = mount.split(":")[:2]
            if source.startswith("./"):
                assert (REPO / source).is_file(), f"{name} mounts missing {source}"
            else:
                assert source in declared, f"{name} uses undeclared volume {source}"
    for name in ("postgres", "clickhouse", "redis", "keeper", *sorted(CLUSTER_SERVICES)):
        named = [m for m in services[name]["volumes"] if not m.startswith("./")]
        assert named, f"{name} keeps its data in no named volume"


def _msd_command_parses(words: list[str]) -> None:
    assert words[0] == "msd"
    subcommands = set(cli._parser()._subparsers._group_actions[0].choices)  # type: ignore
    if words[1] == "scheduler" and "scheduler" not in subcommands:
        pytest.skip("`msd scheduler` is not in this checkout's command line yet")
    cli._parser().parse_args(words[1:])  # exits (fails the test) on an unknown command or flag


def _documented(words: list[str]) -> bool:
    """Whether the README shows this program and subcommand with every flag used here."""
    flags = {w for w in words if w.startswith("--")}
    for line in _readme_commands():
        if line[0] != words[0]:
            continue
        if words[0] == "msd" and line[1:2] != words[1:2]:
            continue
        if flags <= {w for w in line if w.startswith("--")}:
            return True
    return False


@pytest.mark.parametrize("name", ["migrate", "worker", "scheduler", "replicator"])
def test_msd_service_commands_exist_and_are_documented(
    name: str, app_services: dict[str, dict[str, Any]], env_example: dict[str, str]
) -> None:
    words = _command(app_services[name], env_example)
    _msd_command_parses(words)
    assert _documented(words), f"the README shows no `{' '.join(words)}`"


def test_api_runs_the_documented_multi_worker_command(
    app_services: dict[str, dict[str, Any]], env_example: dict[str, str]
) -> None:
    words = _command(app_services["api"], env_example)
    assert words[0] == "granian" and words[-1] == "msd.asgi:create_app"
    assert int(words[words.index("--workers") + 1]) > 1
    assert _documented(words), f"the README shows no `{' '.join(words)}`"
    granian = Path(sys.executable).with_name("granian")
    help_text = subprocess.run(
        [str(granian), "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag in (w for w in words if w.startswith("--")):
        assert re.search(rf"^\s+{flag}\b", help_text, re.MULTILINE), f"granian has no {flag}"
    from msd import asgi

    assert callable(asgi.create_app)


def test_dockerfile_builds_a_non_root_image_whose_command_is_documented() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim\s*$", text, re.MULTILINE)
    users = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"^RUN pip install (-e )?\.$", text, re.MULTILINE)
    [command] = re.findall(r"^CMD (\[.*\])$", text, re.MULTILINE)
    words = json.loads(command)
    _msd_command_parses(words)
    assert _documented(words), f"the README shows no `{' '.join(words)}`"


def _compose_v2() -> list[str] | None:
    """A Compose v2 command line, if one is installed (it parses files without an engine)."""
    for program, *rest in (["docker", "compose"], ["docker-compose"]):
        found = shutil.which(program)
        if found is None:
            continue
        done = subprocess.run([found, *rest, "version"], capture_output=True, text=True)
        if done.returncode == 0 and re.search(r"v?2\.\d+", done.stdout):
            return [found, *rest]
    return None


@pytest.mark.parametrize("profile", ["single", "cluster"])
def test_docker_compose_config_accepts_the_file(profile: str, tmp_path: Path) -> None:
    compose_cmd = _compose_v2()
    if compose_cmd is None:
        pytest.skip("no Docker Compose v2 here (neither `docker compose` nor `docker-compose`)")
    done = subprocess.run(
        [
            *compose_cmd,
            "--project-directory",
            str(REPO),
            "--env-file",
            str(ENV_EXAMPLE),
            "--profile",
            profile,
            "config",
            "--services",
        ],
        capture_output=True,
        text=True,
        # Only the file and .env.example decide: none of this shell's COMPOSE_* variables.
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    started = set(done.stdout.split())
    if profile == "single":
        expected = REQUIRED_SERVICES
    else:
        expected = (REQUIRED_SERVICES - {"clickhouse"}) | CLUSTER_SERVICES
    assert started == expected
