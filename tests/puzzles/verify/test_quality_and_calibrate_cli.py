"""The quality score leaderboards rank by, and the calibrate / show commands end to end."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from puzzles.verify.quality import WEIGHTS, quality, verdict_quality
from puzzles.verify.verdict import CheckResult, Verdict


def test_quality_ranks_an_explanation_above_the_task_rule_and_a_whole_model_circuit() -> None:
    # The task rule: near-perfect agreement, none of the mistakes, every component (minimality 0).
    rule = quality(agreement=0.995, on_mistakes=0.0, faithfulness=1.0, minimality=0.0)
    # An explanation: slightly lower agreement, most mistakes, a small faithful circuit.
    explanation = quality(agreement=0.99, on_mistakes=0.74, faithfulness=0.87, minimality=1.0)
    assert explanation > rule
    assert rule == pytest.approx(0.995 * WEIGHTS["agreement"] / 0.85)
    # Compactness counts when reported: a smaller description scores higher, all else equal.
    small = quality(
        agreement=0.99, on_mistakes=0.7, faithfulness=0.9, minimality=1, description_bytes=500
    )
    large = quality(
        agreement=0.99, on_mistakes=0.7, faithfulness=0.9, minimality=1, description_bytes=60_000
    )
    assert small > large
    assert quality(agreement=None, on_mistakes=1, faithfulness=1, minimality=1) is None


def test_verdict_quality_splits_public_and_private_like_the_held_out_set() -> None:
    verdict = Verdict(passed=True)
    verdict.checks["replication"] = CheckResult(
        name="replication",
        passed=True,
        details={
            "agreement_public": 1.0,
            "agreement_private": 0.5,
            "agreement_on_mistakes": 0.8,
        },
    )
    verdict.checks["circuit"] = CheckResult(
        name="circuit", passed=True, details={"faithfulness": 1.2, "minimality": 0.5}
    )
    public, private = verdict_quality(verdict)
    assert public - private == pytest.approx(0.5 * WEIGHTS["agreement"] / 0.85)
    assert public == pytest.approx((0.25 * 1.0 + 0.35 * 0.8 + 0.25 * 0.5) / 0.85)


def test_calibrate_dry_run_prints_thresholds_and_show_displays_calibration() -> None:
    from bot.cli.puzzles import app

    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "calibrate",
            "cumsum_sign",
            "--seeds",
            "1",
            "--circuit-seeds",
            "1",
            "--random-circuits",
            "1",
            "--dry-run",
        ],
    )
    assert "mistakes_threshold" in result.output, result.output
    assert "random, reference size" in result.output
    shown = runner.invoke(app, ["show", "palindromes"])
    assert shown.exit_code == 0
    assert "calibration:" in shown.output and "mistakes_threshold" in shown.output
    from puzzles.catalog import get_puzzle

    doc = json.loads((get_puzzle("palindromes").path / "calibration.json").read_text())
    assert f"{doc['n_seeds']} seeds" in shown.output


def test_the_worker_stores_the_quality_score_as_the_ranking_score() -> None:
    from bot.jobs import _outcome

    verdict = Verdict(passed=True)
    verdict.checks["replication"] = CheckResult(
        name="replication",
        passed=True,
        score=0.99,
        details={"agreement_public": 0.99, "agreement_private": 0.98, "agreement_on_mistakes": 0.7},
    )
    verdict.scores = {"replication": 0.99, "quality_public": 0.81, "quality_private": 0.8}
    outcome = _outcome(verdict)
    assert (outcome.public_score, outcome.private_score) == (0.81, 0.8)
    del verdict.scores["quality_public"], verdict.scores["quality_private"]
    older = _outcome(verdict)  # a verdict from before the quality score: raw agreement
    assert (older.public_score, older.private_score) == (0.99, 0.98)
