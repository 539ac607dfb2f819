"""The verdict's JSON form and the ``circuitboard verify`` command (exit 0 pass, 1 fail, 2 bad input)."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from bot.cli import app
from puzzles.catalog import get_puzzle
from puzzles.verify import CheckResult, Verdict

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap NOT installed")


def test_verdict_json_round_trip() -> None:
    verdict = Verdict(
        passed=False,
        checks={"circuit": CheckResult("circuit", False, float("nan"), 0.8, "m", {"x": (1, 2)})},
        scores={"circuit": float("inf")},
        plot_png=b"\x89PNG...",
        error="boom",
        error_kind="runtime",
    )
    data = json.loads(json.dumps(verdict.to_json()))
    assert data["checks"]["circuit"]["score"] is None
    assert data["scores"]["circuit"] is None
    back = Verdict.from_json(data)
    assert back.plot_png == b"\x89PNG..." and back.error_kind == "runtime"
    assert back.checks["circuit"].details == {"x": [1, 2]}


@needs_bwrap
def test_cli_passes_fails_and_rejects(tmp_path) -> None:
    runner = CliRunner()
    puzzle = get_puzzle("palindromes")
    good = tmp_path / "good.py"
    good.write_bytes(puzzle.solution_path.read_bytes())
    plot = tmp_path / "plot.png"
    result = runner.invoke(
        app, ["verify", str(good), "--puzzle", "palindromes", "--json", "--plot", str(plot)]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["passed"] is True
    assert plot.read_bytes().startswith(b"\x89PNG")

    wrong = tmp_path / "wrong.py"
    wrong.write_text("CIRCUIT = ['L0H0']\ndef predict(tokens):\n    return tokens[:, 0] * 0\n")
    result = runner.invoke(app, ["verify", str(wrong), "--puzzle", "palindromes", "--seed", "3"])
    assert result.exit_code == 1, result.output
    assert "FAILED" in result.output and "replication" in result.output


def test_cli_bad_input_exits_2(tmp_path) -> None:
    runner = CliRunner()
    bad = tmp_path / "bad.py"
    bad.write_bytes(b"def predict(t):\n    return '\xff'\n")
    result = runner.invoke(app, ["verify", str(bad), "--puzzle", "palindromes"])
    assert result.exit_code == 2 and "UTF-8" in result.output
    result = runner.invoke(app, ["verify", str(bad), "--puzzle", "no-such-puzzle"])
    assert result.exit_code == 2
    result = runner.invoke(app, ["verify", str(tmp_path / "missing.py"), "--puzzle", "palindromes"])
    assert result.exit_code == 2
