"""Training is deterministic: retraining the cheapest puzzle from its seed reproduces its accuracy."""

from __future__ import annotations

import json

import pytest

from puzzles.catalog import get_puzzle
from puzzles.training import set_toml_values, train

RETRAIN_SLUG = "cumsum_sign"  # the cheapest: ~10 s on a quiet CPU


def test_retrain_from_scratch_reaches_recorded_accuracy(tmp_path) -> None:
    puzzle = get_puzzle(RETRAIN_SLUG)
    toml_before = (puzzle.path / "puzzle.toml").read_text()
    weights_before = puzzle.weights_path.read_bytes()
    result = train(puzzle, out_dir=tmp_path, progress=False)
    # Same seed, same data stream, same early stop: the recorded accuracy comes back (bit-identical
    # weights on the machine that trained them; other CPUs may round differently).
    assert result.heldout_accuracy == pytest.approx(puzzle.heldout_accuracy, abs=0.005)
    assert result.heldout_accuracy >= 0.95
    assert (tmp_path / "weights.safetensors").is_file()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["heldout_accuracy"] == result.heldout_accuracy
    assert metrics["weights_sha256"] == result.weights_sha256
    # Training into --out leaves the catalog entry alone.
    assert (puzzle.path / "puzzle.toml").read_text() == toml_before
    assert puzzle.weights_path.read_bytes() == weights_before


def test_same_seed_gives_byte_identical_weights(tmp_path) -> None:
    puzzle = get_puzzle(RETRAIN_SLUG)
    first = train(puzzle, out_dir=tmp_path / "a", progress=False, steps=30)
    second = train(puzzle, out_dir=tmp_path / "b", progress=False, steps=30)
    other_seed = train(puzzle, out_dir=tmp_path / "c", progress=False, steps=30, seed=1)
    assert first.weights_sha256 == second.weights_sha256
    assert other_seed.weights_sha256 != first.weights_sha256


def test_set_toml_values_keeps_the_rest() -> None:
    text = '# c\nslug = "x"\n\n[weights]\nfile = "w"\nsha256 = "old"\n\n[metrics]\nheldout_accuracy = 0.5\n'
    out = set_toml_values(text, "weights", {"sha256": "new"})
    out = set_toml_values(out, "metrics", {"heldout_accuracy": 0.97, "steps_run": 10})
    out = set_toml_values(out, "extra", {"flag": True})
    import tomllib

    data = tomllib.loads(out)
    assert data["weights"] == {"file": "w", "sha256": "new"}
    assert data["metrics"] == {"heldout_accuracy": 0.97, "steps_run": 10}
    assert data["extra"] == {"flag": True}
    assert out.startswith("# c\n")
