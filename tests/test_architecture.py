"""Lint and layering run with the tests, so a wrong import fails CI instead of waiting for review."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240)


def test_ruff_lint_is_clean() -> None:
    result = _run(str(BIN / "ruff"), "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.timeout(900)
def test_mypy_is_clean_on_storage_and_verify() -> None:
    """Type checks of storage/ and puzzles/verify/ (and what they import), nothing skipped.

    Cold, mypy reads torch's inline types: about 50 s of CPU, minutes of wall time on a busy
    2-core machine, hence the long limits.
    """
    cmd = (str(BIN / "mypy"), "storage", "puzzles/verify")
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=840)
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_contracts_hold() -> None:
    result = _run(str(BIN / "lint-imports"), "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr


def test_cli_help_works_for_every_command() -> None:
    from typer.testing import CliRunner

    from bot.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    import typer.main

    group = typer.main.get_command(app)
    for name, command in group.commands.items():
        sub = runner.invoke(app, [name, "--help"])
        assert sub.exit_code == 0, (name, sub.output)
        for child in getattr(command, "commands", {}):
            leaf = runner.invoke(app, [name, child, "--help"])
            assert leaf.exit_code == 0, (name, child, leaf.output)
