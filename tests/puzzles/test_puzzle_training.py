"""Training is deterministic: retraining the cheapest puzzle from its seed reproduces its accuracy."""

from __future__ import annotations

import json

import pytest

from puzzles.catalog import get_puzzle
from puzzles.training import set_toml_values, train

RETRAIN_SLUG = "palindromes"


@pytest.mark.slow
def test_retrain_from_scratch_reaches_recorded_accuracy(tmp_path) -> None:
    puzzle = get_puzzle(RETRAIN_SLUG)
    result = train(puzzle, out_dir=tmp_path, progress=False)
    assert result.steps_run == puzzle.metrics["steps_run"]
    assert result.heldout_accuracy == pytest.approx(puzzle.heldout_accuracy, abs=0.01)
    assert (tmp_path / "weights.safetensors").is_file()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["heldout_accuracy"] == result.heldout_accuracy
    assert (puzzle.path / "puzzle.toml").read_text() == get_puzzle(RETRAIN_SLUG).path.joinpath(
        "puzzle.toml"
    ).read_text()


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
