"""The CLI and the console share one error handler: a missing database is one line and its fix."""

from __future__ import annotations

import io
import sys

import pytest

from bot import cli
from bot.console import Console
from bot.settings import Settings, get_settings
from puzzles.catalog import get_puzzle
from storage.db import session_factory


@pytest.fixture
def empty_folder(tmp_path, monkeypatch):
    """A folder without a database, with the default (relative) data dir, as a newcomer has."""
    folder = tmp_path / "fresh"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.delenv("CIRCUITBOARD_DATA_DIR")
    get_settings.cache_clear()
    return folder


def _main(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["circuitboard", *args])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


@pytest.mark.parametrize(
    "args",
    [
        ("rounds", "list"),
        ("rounds", "plan", "--puzzle", "palindromes", "--channel", "C1"),
        ("rounds", "tick"),
        ("submissions", "list"),
    ],
    ids=" ".join,
)
def test_commands_without_a_database_say_so_in_one_line(empty_folder, monkeypatch, capsys, args):
    code, out, err = _main(monkeypatch, capsys, *args)
    assert code == 1
    assert "Traceback" not in out + err and "sqlalchemy" not in err.lower()
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    expected = empty_folder.resolve() / ".circuitboard" / "circuitboard.db"
    assert f"no circuitboard database at {expected}" in lines[0]
    assert "relative to this folder" in lines[0]
    assert "circuitboard db upgrade" in lines[0]


def test_the_console_answers_with_the_same_line_and_keeps_going(empty_folder, tmp_path):
    settings = Settings()
    db = (empty_folder / ".circuitboard").resolve()
    db.mkdir()
    out = io.StringIO()
    console = Console(settings, out=out, session_factory=session_factory(settings.db_url))
    assert console.handle("/puzzle me") is True
    assert f"error: no circuitboard database at {db / 'circuitboard.db'}" in out.getvalue()
    assert "circuitboard db upgrade" in out.getvalue()
    assert "Traceback" not in out.getvalue()
    assert console.handle("help") is True  # still serving


def test_kit_as_the_puzzle_message_writes_it_runs(empty_folder, monkeypatch, capsys):
    """`/puzzle` and App Home name `circuitboard puzzles kit SLUG`: as written, it works."""
    import re
    import shlex
    from datetime import UTC, datetime

    from bot.services.overview_data import RoundOverview
    from bot.views.puzzle import round_blocks
    from bot.views.text import render
    from storage.models import Round

    puzzle = get_puzzle("palindromes")
    round_ = Round(id=1, closes_at=datetime(2030, 1, 1, tzinfo=UTC))
    overview = RoundOverview(round=round_, puzzle=puzzle, puzzle_title=puzzle.title)
    text = render({"blocks": round_blocks(overview)})
    written = set(re.findall(r"`(circuitboard puzzles kit [^`]+)`", text))
    assert "circuitboard puzzles kit palindromes" in written  # the Kit line, as App Home has it
    for command in written:  # and the puzzle's description's own
        code, _, err = _main(monkeypatch, capsys, *shlex.split(command)[1:])
        assert code in (0, None), (command, err)
    kit = empty_folder / "palindromes-kit"
    assert (kit / "puzzle_model.py").is_file() and f"./{kit.name}/" in text
