"""``circuitboard puzzles``: list, show, kit, train and the unknown-slug exit code."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bot.cli import app
from puzzles.catalog import list_puzzles

runner = CliRunner()


def test_list_shows_every_puzzle_with_accuracy() -> None:
    result = runner.invoke(app, ["puzzles", "list"])
    assert result.exit_code == 0, result.output
    for p in list_puzzles():
        assert p.slug in result.output
        assert f"{p.heldout_accuracy:.2%}" in result.output


def test_show_prints_statement_and_metrics() -> None:
    result = runner.invoke(app, ["puzzles", "show", "palindromes"])
    assert result.exit_code == 0, result.output
    assert "Palindromes" in result.output and "heldout_accuracy" in result.output


@pytest.mark.parametrize("command", [["show"], ["kit", "--out", "x"], ["train"]])
def test_unknown_slug_exits_2_with_known_slugs(command, tmp_path) -> None:
    args = ["puzzles", command[0], "no_such_puzzle", *command[1:]]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "unknown puzzle 'no_such_puzzle'" in result.output and "palindromes" in result.output


def test_kit_command_writes_files(tmp_path) -> None:
    result = runner.invoke(app, ["puzzles", "kit", "palindromes", "--out", str(tmp_path / "k")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "k" / "palindromes_starter.ipynb").is_file()


def test_train_command_with_progress_bar_writes_to_out(tmp_path) -> None:
    out = tmp_path / "trained"
    result = runner.invoke(
        app, ["puzzles", "train", "cumsum_sign", "--steps", "20", "--seed", "3", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "held-out accuracy" in result.output and "puzzle.toml updated" not in result.output
    assert (out / "weights.safetensors").is_file() and (out / "metrics.json").is_file()
