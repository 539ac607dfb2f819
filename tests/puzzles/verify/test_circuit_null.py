"""Circuits at positions: the reference is a strict subset of the model and passes; random
circuits of its size and the every-component circuit fail (the per-puzzle null), on every puzzle.
The engine runs in-process on small batches (no sandbox)."""

from __future__ import annotations

import ast
import random

import pytest

from puzzles.catalog import list_puzzles
from puzzles.models import load_task
from puzzles.verify.ablation import AblationEngine
from puzzles.verify.calibration import load_calibration
from puzzles.verify.checks import metric_per_example
from puzzles.verify.circuit_check import circuit_check
from puzzles.verify.components import (
    ComponentError,
    all_components,
    all_units,
    circuit_size,
    names_paths,
    parse_circuit,
)
from puzzles.verify.engine import _model

PUZZLES = [p for p in list_puzzles() if p.weights_path.is_file()]
EVERY_UNIT_MATTERS = {"caesar_easy", "cumsum_sign", "first_unique"}
"""Every unit of these models carries some answer (one layer, or answers at almost every
position): their references leave out only what matters least (a head's QK path, layer 1 at the
first positions), so they are strict subsets but not small ones, and a size bound
(``max_circuit_units``) is what fails every component there. See the README's "Verifying a
solution"."""


def _reference(puzzle) -> list[str]:
    tree = ast.parse(puzzle.solution_path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "CIRCUIT" for t in node.targets
        ):
            return list(ast.literal_eval(node.value))
    raise AssertionError(f"{puzzle.slug}: no literal CIRCUIT")


@pytest.fixture(scope="module", params=PUZZLES, ids=[p.slug for p in PUZZLES])
def setup(request):
    puzzle = request.param
    task, model = load_task(puzzle), _model(puzzle, "cpu")
    cfg = model.cfg
    shape = dict(
        n_layers=cfg.n_layers,
        n_heads=cfg.n_heads,
        attn_only=bool(cfg.attn_only),
        seq_len=task.SEQ_LEN,
    )
    engine = AblationEngine(model, task.generate(400, 4242), answer_positions=task.ANSWER_POSITIONS)
    reference = parse_circuit(_reference(puzzle), answer_positions=task.ANSWER_POSITIONS, **shape)
    return puzzle, engine, reference, shape


def _shape(puzzle) -> dict:
    cfg, task = puzzle.model_config, load_task(puzzle)
    return dict(
        n_layers=int(cfg["n_layers"]),
        n_heads=int(cfg["n_heads"]),
        attn_only=bool(cfg.get("attn_only", False)),
        seq_len=task.SEQ_LEN,
        answer_positions=task.ANSWER_POSITIONS,
    )


def _population(shape, reference):
    keys = ("n_layers", "n_heads", "attn_only", "seq_len")
    return all_units(**{k: shape[k] for k in keys}, paths=names_paths(reference))


def test_reference_circuit_passes(setup) -> None:
    puzzle, engine, reference, shape = setup
    result = circuit_check(engine, reference, config=puzzle.verify)
    print(f"{puzzle.slug} reference: {result.message}")  # the measured figures, with -s
    assert result.passed, result.message
    pe = result.details["per_example_faithfulness"]
    assert 0 < pe["n_faithful"] <= pe["n_defined"] <= pe["n_examples"] == 400


def test_reference_is_a_strict_subset(setup) -> None:
    puzzle, _, reference, shape = setup
    population = _population(shape, reference)
    size = circuit_size(reference, shape["seq_len"], paths=names_paths(reference))
    if puzzle.slug not in EVERY_UNIT_MATTERS:
        assert size <= 0.4 * len(population)  # small
        return
    assert size < len(population)
    n_paths = circuit_size(reference, shape["seq_len"], paths=True)
    everything = circuit_size(_population(shape, []), shape["seq_len"], paths=True)
    assert n_paths <= int(puzzle.verify["max_circuit_units"]) < everything


def test_random_circuits_of_the_reference_size_fail(setup) -> None:
    puzzle, engine, reference, shape = setup
    population = _population(shape, reference)
    size = circuit_size(reference, shape["seq_len"], paths=names_paths(reference))
    metric = puzzle.verify["metric"]
    targets = engine.clean_logits.argmax(-1)
    m_full = metric_per_example(engine.clean_logits, targets, metric).mean()
    m_empty = metric_per_example(engine.logits(engine.mask_for([])), targets, metric).mean()
    rng = random.Random(0)
    scores = []
    for _ in range(100):
        circuit = rng.sample(population, size)
        m = metric_per_example(engine.logits(engine.mask_for(circuit)), targets, metric).mean()
        scores.append(float((m - m_empty) / (m_full - m_empty)))
    passes = sum(f >= puzzle.verify["faithfulness_threshold"] for f in scores)
    print(f"{puzzle.slug} random {size}-unit circuits: max faithfulness {max(scores):.3f}")
    assert passes <= 1  # the measured rate is 0 in 200 draws per puzzle (README)


def test_every_component_fails_minimality(setup) -> None:
    puzzle, engine, reference, shape = setup
    everything = all_components(
        n_layers=shape["n_layers"], n_heads=shape["n_heads"], attn_only=shape["attn_only"]
    )
    result = circuit_check(engine, everything, config=puzzle.verify)
    print(f"{puzzle.slug} every component: {result.message}")
    assert result.details["faithfulness"] == pytest.approx(1.0)
    assert not result.details["minimality_passed"], result.message
    assert not result.passed


@pytest.mark.parametrize("puzzle", PUZZLES, ids=[p.slug for p in PUZZLES])
def test_faithfulness_threshold_lies_in_its_calibrated_interval(puzzle) -> None:
    """puzzle.toml's bar sits above the random circuits' upper bound and at or below the
    reference's lower bound, as measured by ``calibrate`` (where its circuit section has them)."""
    doc = load_calibration(puzzle) or {}
    bar = doc.get("circuit", {}).get("faithfulness")
    if not bar or bar.get("reference_lower_bound") is None:
        pytest.skip(f"{puzzle.slug}: calibration.json has no faithfulness bounds yet")
    assert doc["circuit"]["reference_circuit"] == [
        c.name for c in parse_circuit(_reference(puzzle), **_shape(puzzle))
    ], "CIRCUIT changed: run `circuitboard puzzles calibrate SLUG --circuit-only`"
    assert bar["separates_random"]
    threshold = float(puzzle.verify["faithfulness_threshold"])
    assert bar["random_upper_bound"] < threshold <= bar["reference_lower_bound"]


def test_position_syntax() -> None:
    shape = dict(n_layers=2, n_heads=2, attn_only=True, seq_len=10)
    parsed = parse_circuit(
        ["L1H0@END", "l0h1 @ 2,3,-1,END", "L0H0@ANSWERS", "L1H1", "L1H1@4"],
        answer_positions=[7, 8],
        **shape,
    )
    assert [c.name for c in parsed] == [
        "L1H0@9",
        "L0H1@2",
        "L0H1@3",
        "L0H1@9",
        "L0H0@7",
        "L0H0@8",
        "L1H1",  # L1H1@4 adds nothing to the whole head
    ]
    for bad, fragment in [("L0H0@10", "positions run"), ("L0H0@", "not a component")]:
        with pytest.raises(ComponentError, match=fragment):
            parse_circuit([bad], **shape)
    with pytest.raises(ComponentError, match="no answer positions"):
        parse_circuit(["L0H0@ANSWERS"], **shape)
