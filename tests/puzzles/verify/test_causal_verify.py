"""Format v2 end to end: ``circuitboard verify`` runs the hypothesis' functions in the sandbox and
reports the causal section; a v1 file (no HYPOTHESIS) gets no causal check and no causal score."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from bot.cli import app
from puzzles.catalog import get_puzzle
from puzzles.verify import verify_submission

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap NOT installed")


def test_reference_hypothesis_through_the_cli(tmp_path) -> None:
    puzzle = get_puzzle("palindromes")
    path = tmp_path / "hypothesis.py"
    path.write_bytes((puzzle.path / "hypothesis.py").read_bytes())
    plot = tmp_path / "plot.png"
    result = CliRunner().invoke(
        app,
        ["verify", str(path), "--puzzle", "palindromes", "--seed", "4242", "--json"]
        + ["--plot", str(plot)],
    )
    data = json.loads(result.output)
    causal = data["checks"]["causal"]
    assert causal["passed"], causal["message"]
    assert set(causal["details"]["iia"]) == {"mirror", "is_palindrome"}
    assert data["scores"]["causal"] == causal["details"]["iia_all"]
    assert "| `mirror` | `L0H0@11..20` |" in data["report_md"]
    assert plot.read_bytes().startswith(b"\x89PNG")


def test_v1_file_gets_no_causal_score() -> None:
    puzzle = get_puzzle("palindromes")
    rule = b"def predict(tokens):\n    body = tokens[:, 1:-1]\n    return (body == body.flip(-1)).all(-1).long()\n"
    verdict = verify_submission(rule, "rule.py", puzzle, seed=4242, heldout_size=300)
    assert verdict.error is None, verdict.report_md
    assert "causal" not in verdict.checks and "causal" not in verdict.scores
