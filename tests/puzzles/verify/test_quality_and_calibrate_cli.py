"""The quality score leaderboards rank by, and the calibrate / show commands end to end."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from puzzles.verify.quality import WEIGHTS, causal_score, quality, verdict_quality
from puzzles.verify.verdict import CheckResult, Verdict


def test_quality_ranks_an_explanation_above_the_task_rule_and_a_whole_model_circuit() -> None:
    # The task rule: near-perfect agreement, none of the mistakes, every component (minimality 0).
    rule = quality(agreement=0.995, on_mistakes=0.0, faithfulness=1.0, minimality=0.0)
    # An explanation: slightly lower agreement, most mistakes, a small faithful circuit.
    explanation = quality(agreement=0.99, on_mistakes=0.74, faithfulness=0.87, minimality=1.0)
    assert explanation > rule
    without_k = 1 - WEIGHTS["compactness"]
    assert rule == pytest.approx(0.995 * WEIGHTS["agreement"] / without_k)
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
    assert public - private == pytest.approx(0.5 * WEIGHTS["agreement"] / 0.9)
    assert public == pytest.approx((0.20 * 1.0 + 0.25 * 0.8 + 0.20 * 0.5) / 0.9)
    # A hypothesis whose claims all hold adds its chance-corrected IIA: 0.25 * (2 * 0.9 - 1).
    verdict.checks["causal"] = _causal_check(iia_all=0.9, statuses=["holds", "holds", "holds"])
    with_hypothesis, _ = verdict_quality(verdict)
    assert with_hypothesis - public == pytest.approx(0.25 * 0.8 / 0.9)


def _causal_check(*, iia_all, statuses, attention=()):
    variables = {f"v{i}": {"status": s, "iia": iia_all} for i, s in enumerate(statuses[:-1])}
    return CheckResult(
        name="causal",
        passed=all(s == "holds" for s in [*statuses, *attention]),
        score=iia_all,
        details={
            "iia_all": iia_all,
            "variables": variables,
            "all_variables": {"status": statuses[-1], "iia": iia_all},
            "attention": [{"status": s} for s in attention],
        },
    )


def test_the_causal_score_rewards_a_hypothesis_only_for_claims_that_hold() -> None:
    # No HYPOTHESIS (a task rule, a weight copy, any v1 file): no causal score, the term is 0.
    assert causal_score(None) is None
    full = _causal_check(iia_all=0.95, statuses=["holds"] * 3, attention=["holds"])
    assert causal_score(full) == pytest.approx(0.9)
    # Two of four claims hold: half the credit. A site that does nothing (IIA 0.5) earns nothing.
    half = _causal_check(
        iia_all=0.95, statuses=["holds", "does not hold", "holds"], attention=["partly"]
    )
    assert causal_score(half) == pytest.approx(0.45)
    assert causal_score(_causal_check(iia_all=0.5, statuses=["holds"] * 2)) == 0.0
    # Malformed hypothesis (checked, no numbers): declared, but worth nothing.
    assert causal_score(CheckResult(name="causal", passed=False, message="bad")) == 0.0
    # The same replication and circuit with a hypothesis that holds outranks the file without one,
    # and a weight copy (perfect agreement, every mistake, no variables) ranks below both.
    common = dict(agreement=0.99, on_mistakes=0.7, faithfulness=0.9, minimality=1.0)
    v2 = quality(**common, causal=causal_score(full))
    v1 = quality(**common)
    copy = quality(agreement=1.0, on_mistakes=1.0, faithfulness=None, minimality=None)
    assert v2 > v1 > copy


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
    assert "causal (" in shown.output and "wrong claims hold" in shown.output
    from puzzles.catalog import get_puzzle

    doc = json.loads((get_puzzle("palindromes").path / "calibration.json").read_text())
    assert f"{doc['n_seeds']} seeds" in shown.output


def test_calibrate_circuit_only_measures_the_circuit_null_and_keeps_the_rest(
    tmp_path, monkeypatch
) -> None:
    """--circuit-only reruns the circuit baselines alone (after a CIRCUIT change): the random
    circuits of the reference's size, in head paths where it names them, and the faithfulness
    bar's bounds; the replication and causal sections on file stay as they were."""
    import shutil

    from bot.cli.puzzles import app
    from puzzles.catalog import EXTRA_PATH_ENV, get_puzzle

    copy = tmp_path / "cumsum_copy"  # a copy under its own slug: the shipped files stay as they are
    shutil.copytree(get_puzzle("cumsum_sign").path, copy)
    toml = (copy / "puzzle.toml").read_text()
    (copy / "puzzle.toml").write_text(toml.replace('slug = "cumsum_sign"', 'slug = "cumsum_copy"'))
    monkeypatch.setenv(EXTRA_PATH_ENV, str(tmp_path))
    puzzle = get_puzzle("cumsum_copy")
    before = json.loads((puzzle.path / "calibration.json").read_text())
    toml_before = (puzzle.path / "puzzle.toml").read_text()
    args = ["calibrate", "cumsum_copy", "--circuit-only", "--circuit-seeds", "2"]
    result = CliRunner().invoke(app, [*args, "--random-circuits", "3"])
    assert result.exit_code == 0, result.output
    assert "circuit section only" in result.output and "faithfulness bar" in result.output
    after = json.loads((puzzle.path / "calibration.json").read_text())
    circuit = after["circuit"]
    assert circuit["n_seeds"] == 2 and circuit["random_same_size"]["n"] == 6
    assert circuit["reference_circuit"] == ["L0H0.OV", "L0MLP"]
    assert set(circuit["reference_minus"]) == {"L0H0.OV", "L0MLP"}
    assert circuit["reference"]["pass_rate"] == 1.0
    assert circuit["random_same_size"]["pass_rate"] == 0.0
    bar = circuit["faithfulness"]
    assert bar["random_upper_bound"] < bar["reference_lower_bound"]
    assert {k: after[k] for k in ("thresholds", "causal", "n_seeds")} == {
        k: before[k] for k in ("thresholds", "causal", "n_seeds")
    }
    assert (puzzle.path / "puzzle.toml").read_text() == toml_before


def test_the_worker_stores_the_quality_score_as_the_ranking_score() -> None:
    from bot.worker.verification import outcome_of as _outcome

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


def test_the_worker_ranks_a_hypothesis_that_holds_above_the_same_file_without_one() -> None:
    """Leaderboards rank by checks passed, then the stored quality: the causal check adds to both."""
    from bot.worker.verification import outcome_of as _outcome

    def verdict(with_causal: bool) -> Verdict:
        v = Verdict(passed=True)
        v.checks["replication"] = CheckResult(
            name="replication",
            passed=True,
            score=0.99,
            details={
                "agreement_public": 0.99,
                "agreement_private": 0.99,
                "agreement_on_mistakes": 0.7,
            },
        )
        if with_causal:
            v.checks["causal"] = _causal_check(iia_all=0.9, statuses=["holds"] * 3)
        public, private = verdict_quality(v)
        v.scores = {"replication": 0.99, "quality_public": public, "quality_private": private}
        return v

    v2, v1 = _outcome(verdict(True)), _outcome(verdict(False))
    assert (v2.checks_passed, v2.public_score) > (v1.checks_passed, v1.public_score)
    assert v2.public_score > v1.public_score
