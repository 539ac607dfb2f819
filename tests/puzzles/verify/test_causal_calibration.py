"""Causal thresholds come from measured distributions (the reference hypothesis against the wrong
ones), are written only when they separate, and survive a calibration run without the causal part."""

from __future__ import annotations

import json
import shutil

import pytest
from hypothesis_support import bench

from puzzles.catalog import get_puzzle, load_puzzle_dir
from puzzles.verify.calibration import write_calibration
from puzzles.verify.calibration_stats import upper_bound
from puzzles.verify.causal_calibration import _pair, toml_values
from puzzles.verify.causal_check import HOLDS
from puzzles.verify.wrong_hypotheses import PARTIAL, WRONG, mutate


def test_holds_is_the_midpoint_of_the_bounds_and_partly_the_wrong_claims_bound() -> None:
    ref, bad = [0.9, 0.92, 0.88, 0.91], [0.05, 0.1, 0.0, 0.12]
    out = _pair(ref, bad, 0.85, 0.6)
    assert out["separates"]
    assert (
        out["wrong_upper_bound"]
        < out["partly"] + 1e-3
        < out["holds"]
        < out["reference_lower_bound"]
    )
    assert out["holds"] == pytest.approx(
        (out["reference_lower_bound"] + out["wrong_upper_bound"]) / 2, abs=1e-3
    )
    # Overlapping distributions do not separate: the defaults stay.
    out = _pair([0.6, 0.9], [0.7, 0.2], 0.85, 0.6)
    assert not out["separates"] and (out["holds"], out["partly"]) == (0.85, 0.6)


def test_the_wrong_claims_bound_is_the_highest_of_each_kinds_own() -> None:
    """Pooled, a near-miss kind and a far one spread so wide that the bound passes 1 (caesar_easy
    measured 1.34); each kind is its own distribution."""
    ref, near, far = [0.95, 0.96, 0.97, 0.95], [0.7, 0.72, 0.74, 0.75], [0.04, 0.05, 0.06, 0.08]
    assert not _pair(ref, near + far, 0.85, 0.6)["separates"]
    out = _pair(ref, near + far, 0.85, 0.6, kinds=[near, far])
    assert out["separates"] and out["wrong_upper_bound"] == upper_bound(near)
    assert out["partly"] < out["holds"] < min(ref)


def _section(passes=(5, 5), separates=True, wrong_holding=0):
    return {
        "iia": {"separates": separates},
        "attention": {"separates": True},
        "wrong": {"attention": {"n": 5}},
        "reference_passes": {"k": passes[0], "n": passes[1]},
        "wrong_claims_holding": {"k": wrong_holding, "n": 20},
        "thresholds": {"causal_holds": 0.5, "causal_partly": 0.2},
    }


def test_thresholds_are_written_only_when_the_reference_holds_and_no_wrong_claim_does() -> None:
    assert toml_values(_section()) == {"causal_holds": 0.5, "causal_partly": 0.2}
    assert toml_values(_section(passes=(4, 5))) is None
    assert toml_values(_section(separates=False)) is None
    assert toml_values(_section(wrong_holding=1)) is None
    assert toml_values(None) is None


def test_a_reference_without_attention_claims_keeps_the_default_attention_bars() -> None:
    """cumsum_sign's reference claims no attention: its false attention claim is measured against
    the default bar (counted in wrong_claims_holding) and no attention bar is written."""
    thresholds = {"causal_holds": 0.5, "causal_partly": 0.2, "attention_holds": 0.75}
    section = {
        **_section(),
        "attention": {"separates": False},
        "reference": {"attention": {"n": 0}},
        "thresholds": thresholds,
    }
    assert toml_values(section) == {"causal_holds": 0.5, "causal_partly": 0.2}
    assert toml_values({**section, "wrong_claims_holding": {"k": 1, "n": 20}}) is None
    # A reference that does claim attention must separate from the false claims.
    assert toml_values({**section, "reference": {"attention": {"n": 5}}}) is None


@pytest.mark.parametrize("slug", sorted(WRONG))
def test_every_wrong_edit_still_matches_the_reference(slug) -> None:
    reference = (get_puzzle(slug).path / "hypothesis.py").read_text()
    for kind, _, edits in WRONG[slug] + PARTIAL.get(slug, []):
        assert mutate(reference, edits) != reference, kind
    with pytest.raises(ValueError, match="exactly once"):
        mutate(reference, [("no such text", "x")])


def test_a_calibration_without_the_causal_part_keeps_it_and_its_thresholds(tmp_path) -> None:
    copy = tmp_path / "four_digit_sum"
    shutil.copytree(get_puzzle("four_digit_sum").path, copy)
    puzzle = load_puzzle_dir(copy)
    old = json.loads((copy / "calibration.json").read_text())
    section = {**_section(), "thresholds": {"causal_holds": 0.512, "causal_partly": 0.2}}
    write_calibration(puzzle, {**old, "causal": section}, update_toml=False)
    assert "causal_holds = 0.512" in (copy / "puzzle.toml").read_text()
    rerun = {k: v for k, v in old.items() if k != "causal"}
    write_calibration(puzzle, rerun, update_toml=False)
    assert json.loads((copy / "calibration.json").read_text())["causal"] == section


@pytest.mark.parametrize("slug", sorted(PARTIAL))
def test_a_claim_right_in_part_does_not_hold_where_the_calibration_separates_it(slug) -> None:
    """Where the reference's and the partial claims' bounds are apart (palindromes), the bar sits
    above claims right in part; where they overlap (four_digit_sum over 200 seeds) the record says
    so and counts them holding, rather than pretend."""
    puzzle = get_puzzle(slug)
    section = json.loads((puzzle.path / "calibration.json").read_text())["causal"]
    separated = section["iia"]["holds_between"] == "the reference and the claims right in part"
    assert separated == (section["partial_claims_holding"]["k"] == 0)
    puzzle_bench = bench(slug)
    for kind, claim, edits in PARTIAL[slug]:
        check = puzzle_bench.check(mutate(puzzle_bench.reference, edits), 101)
        row = check.details["variables"][claim]
        assert row["iia"] >= 0.5, ("right in part, not wrong", kind, check.message)
        if separated:
            assert row["status"] != HOLDS, (kind, check.message)
