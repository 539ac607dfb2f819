"""The hard set and the replication thresholds: a task rule cannot pass, the reference does.

Both directions for every catalog puzzle on a couple of calibration seeds (all 200 are in each
puzzle's calibration.json). A puzzle whose reference does not yet reproduce its model's mistakes is
marked xfail (strict), with the reason from its calibration.json, so fixing it flips the test.
"""

from __future__ import annotations

import json

import pytest
import torch

from puzzles.catalog import get_puzzle, list_puzzles
from puzzles.models import load_model, load_task
from puzzles.verify.calibration import (
    _seed_data,
    calibration_seeds,
    clopper_pearson_lower,
    clopper_pearson_upper,
    load_reference,
    model_answers,
)
from puzzles.verify.checks import replication_check
from puzzles.verify.hardset import mine_hard_set

SLUGS = [p.slug for p in list_puzzles()]


def _separates(slug: str) -> tuple[bool, str]:
    path = get_puzzle(slug).path / "calibration.json"
    if not path.is_file():
        return False, f"no calibration.json: run `circuitboard puzzles calibrate {slug}`"
    doc = json.loads(path.read_text())
    rep = doc["replication"]
    ok = rep["task_rule_pass_rate"] == 0 and rep["reference_pass_rate"] >= doc["target_pass_rate"]
    why = (
        f"calibration.json: reference passes {rep['reference_pass_rate']:.0%} of seeds, "
        f"the task rule {rep['task_rule_pass_rate']:.0%}: the reference predict does not yet "
        "reproduce this model's mistakes"
    )
    return ok, why


def _params():
    out = []
    for slug in SLUGS:
        ok, why = _separates(slug)
        marks = [] if ok else [pytest.mark.xfail(reason=why, strict=True)]
        out.append(pytest.param(slug, marks=marks, id=slug))
    return out


def _replication(puzzle, data, predictions):
    return replication_check(
        predictions=predictions.reshape(data["model"].shape).long(),
        model_answers=data["model"],
        labels=data["labels"],
        n_heldout=data["n_heldout"],
        config=puzzle.verify,
        n_hard=data["n_hard"],
    )


@pytest.mark.parametrize("slug", _params())
def test_reference_passes_and_task_rule_fails_on_secret_seeds(slug: str) -> None:
    puzzle = get_puzzle(slug)
    task, model, reference = load_task(puzzle), load_model(puzzle), load_reference(puzzle)
    for seed in calibration_seeds(2):
        data = _seed_data(puzzle, task, model, seed)
        with torch.no_grad():
            ref = _replication(puzzle, data, reference.predict(data["tokens"]))
        rule = _replication(puzzle, data, data["labels"])
        assert ref.passed, f"seed {seed}: {ref.message}"
        assert not rule.passed, f"seed {seed}: the task rule passed: {rule.message}"
        assert rule.details["agreement_on_mistakes"] == 0.0


def test_every_puzzle_has_a_calibration_with_the_numbers_behind_each_threshold() -> None:
    for slug in SLUGS:
        doc = json.loads((get_puzzle(slug).path / "calibration.json").read_text())
        assert doc["slug"] == slug and doc["n_seeds"] >= 1 and doc["seconds"] > 0
        assert doc["weights_sha256"] == get_puzzle(slug).weights_sha256, "re-run calibrate"
        for key in ("replication_threshold", "mistakes_threshold", "hardset_threshold"):
            entry = doc["thresholds"][key]
            assert {"value", "reference_lower_bound", "margin_reference"} <= set(entry)
        for name in ("reference", "task_rule", "weight_copy"):
            assert doc["scores"][name]["agreement"]["n"] == doc["n_seeds"]
        assert {"every_component", "random_same_size", "reference_minus"} <= set(doc["circuit"])


def test_calibrated_thresholds_are_the_ones_in_puzzle_toml_where_they_separate() -> None:
    for slug in SLUGS:
        if not _separates(slug)[0]:
            continue
        puzzle = get_puzzle(slug)
        doc = json.loads((puzzle.path / "calibration.json").read_text())
        for key, entry in doc["thresholds"].items():
            assert puzzle.verify[key] == pytest.approx(entry["value"]), (slug, key)
        assert doc["thresholds"]["mistakes_threshold"]["separates_task_rule"]


def test_the_hard_set_is_mined_from_the_seed_and_holds_the_models_mistakes() -> None:
    puzzle = get_puzzle("cumsum_sign")
    task, model = load_task(puzzle), load_model(puzzle)

    def answers(tokens):
        return model_answers(model, task, tokens)

    a = mine_hard_set(task, answers, seed=1, pool_size=4000, size=64)
    again = mine_hard_set(task, answers, seed=1, pool_size=4000, size=64)
    other = mine_hard_set(task, answers, seed=2, pool_size=4000, size=64)
    assert torch.equal(a.tokens, again.tokens)
    assert not torch.equal(a.tokens, other.tokens)
    assert a.tokens.shape[0] <= 64 and a.n_edge_cases == task.edge_cases().shape[0]
    found = answers(a.tokens)
    labels = task.labels(a.tokens).reshape(found.shape)
    wrong_rows = (found != labels).any(-1)
    assert wrong_rows[:16].all(), "the mistakes come first and fill their half"
    assert a.n_pool_mistakes > 0 and a.n_near_misses > 0


def test_agreement_on_mistakes_fails_a_rule_that_only_knows_the_task() -> None:
    # 4 held-out rows, no edge cases, 4 hard rows where the model errs on 2.
    model = torch.tensor([[0], [1], [0], [1], [1], [0], [1], [1]])
    labels = torch.tensor([[0], [1], [0], [1], [0], [1], [1], [1]])
    config = {"replication_threshold": 0.9, "mistakes_threshold": 0.5, "hardset_threshold": 0.75}
    rule = replication_check(
        predictions=labels, model_answers=model, labels=labels, n_heldout=4, config=config, n_hard=4
    )
    assert rule.score == 1.0 and rule.details["agreement_passed"]
    assert rule.details["agreement_on_mistakes"] == 0.0 and not rule.passed
    assert rule.details["agreement_hardset"] == 0.5 and not rule.details["hardset_passed"]
    assert "on the model's 2 mistakes 0.0% (needs 50.0%)" in rule.message
    copy = replication_check(
        predictions=model, model_answers=model, labels=labels, n_heldout=4, config=config, n_hard=4
    )
    assert copy.passed and copy.details["n_examples"] == 4 and copy.details["n_hardset"] == 4


def test_clopper_pearson_bounds() -> None:
    assert clopper_pearson_lower(200, 200) == pytest.approx(0.05 ** (1 / 200), abs=1e-9)
    assert clopper_pearson_upper(0, 200) == pytest.approx(1 - 0.05 ** (1 / 200), abs=1e-9)
    assert clopper_pearson_lower(0, 10) == 0.0 and clopper_pearson_upper(10, 10) == 1.0
    assert clopper_pearson_lower(5, 10) == pytest.approx(0.2224, abs=1e-4)
