"""The Dockerfile cannot be built here (no engine), so what matters in it is checked by reading it."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app

ROOT = Path(__file__).resolve().parents[1]


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    result = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            result.append((keyword.upper(), " ".join(rest.split())))
    return result


def _dockerignore() -> set[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def _index(instructions: list[tuple[str, str]], keyword: str, pattern: str = "") -> int:
    for i, (kw, args) in enumerate(instructions):
        if kw == keyword and re.search(pattern, args):
            return i
    raise AssertionError(f"no {keyword} matching {pattern!r} in the Dockerfile")


def test_base_image_is_slim_python_3_11() -> None:
    instructions = _instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")


def test_torch_is_pinned_to_the_projects_version_and_installed_first() -> None:
    instructions = _instructions()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (torch_pin,) = [d for d in pyproject["project"]["dependencies"] if d.startswith("torch")]
    torch_step = _index(instructions, "RUN", re.escape(torch_pin.replace(" ", "")) + r"(\s|$)")
    assert "whl/cpu" in " ".join(args for kw, args in instructions if kw == "ARG")
    package_step = _index(instructions, "RUN", r"pip install \"?\.\[postgres,redis\]")
    assert torch_step < package_step


def test_runs_as_a_non_root_user_after_installing() -> None:
    instructions = _instructions()
    users = [(i, args) for i, (kw, args) in enumerate(instructions) if kw == "USER"]
    assert users, "no USER instruction: the container would run as root"
    position, user = users[-1]
    assert user.split(":")[0] not in {"root", "0"}
    last_install = max(
        i for i, (kw, args) in enumerate(instructions) if kw == "RUN" and "pip install" in args
    )
    assert last_install < position < _index(instructions, "ENTRYPOINT")


def test_entrypoint_command_and_healthcheck_name_real_cli_commands() -> None:
    instructions = _instructions()
    entrypoint = json.loads(instructions[_index(instructions, "ENTRYPOINT")][1])
    cmd = json.loads(instructions[_index(instructions, "CMD")][1])
    health = instructions[_index(instructions, "HEALTHCHECK")][1]
    health_cmd = json.loads(health.split(" CMD ", 1)[1])
    assert entrypoint == ["circuitboard"]
    assert cmd == ["run"]
    assert health_cmd[0] == "circuitboard"
    runner = CliRunner()
    for args in (cmd, health_cmd[1:]):
        result = runner.invoke(app, [*args, "--help"])
        assert result.exit_code == 0, (args, result.output)


def test_data_dir_is_the_volume_the_user_owns() -> None:
    instructions = _instructions()
    env = " ".join(args for kw, args in instructions if kw == "ENV")
    assert "CIRCUITBOARD_DATA_DIR=/data" in env
    assert any(kw == "RUN" and "chown" in args and "/data" in args for kw, args in instructions)


@pytest.mark.parametrize(
    "secret_or_junk", [".env", ".venv", ".git", ".circuitboard", "**/__pycache__"]
)
def test_dockerignore_keeps_secrets_and_local_state_out_of_the_image(secret_or_junk: str) -> None:
    assert secret_or_junk in _dockerignore()


def test_everything_the_image_copies_exists_and_is_not_ignored() -> None:
    ignored = _dockerignore()
    for kw, args in _instructions():
        if kw == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), source
                assert source not in ignored, source
