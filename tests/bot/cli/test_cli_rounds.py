"""``circuitboard rounds`` as an admin runs it: plan, list, show, reschedule, hints, cancel, tick."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.settings import get_settings
from storage.db import session_factory, session_scope, upgrade_database
from storage.models import OutboxMessage

runner = CliRunner()


@pytest.fixture(autouse=True)
def configured(sqlite_url: str, tmp_path: Path, monkeypatch) -> str:  # type: ignore[no-untyped-def]
    puzzle = tmp_path / "catalog" / "gamma"
    puzzle.mkdir(parents=True)
    (puzzle / "puzzle.toml").write_text('slug = "gamma"\ntitle = "Gamma"\nversion = 1\n')
    (puzzle / "hints.md").write_text("## One\nFirst hint.\n\n## Two\nSecond hint.\n")
    monkeypatch.setenv("CIRCUITBOARD_CATALOG_PATH", str(tmp_path / "catalog"))
    monkeypatch.setenv("CIRCUITBOARD_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("CIRCUITBOARD_TIMEZONE", "Europe/Berlin")
    get_settings.cache_clear()
    upgrade_database(sqlite_url)
    return sqlite_url


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["rounds", *args])
    return result.exit_code, result.output


def test_plan_list_show_reschedule_cancel() -> None:
    code, out = _run(
        "plan",
        "--puzzle",
        "gamma",
        "--channel",
        "C123",
        "--opens",
        "2099-12-01T17:00",
        "--closes",
        "2100-01-01 17:00",
    )
    assert code == 0, out
    assert "#1 Gamma (`gamma` v1) in #C123" in out and "Tue 01 Dec 2099 17:00 CET" in out
    assert "hint #1 (round #1): scheduled Tue 08 Dec 2099 17:00 CET: First hint." in out
    code, out = _run("list")
    assert code == 0 and out.count("\n") == 1 and "scheduled, 2 hint(s)" in out
    code, out = _run("hints", "add", "1", "Third hint.", "--at", "2099-12-20 09:00")
    assert code == 0 and "hint #3" in out and "Sun 20 Dec 2099 09:00 CET" in out
    code, out = _run("hints", "edit", "3", "--text", "Better third hint.")
    assert code == 0 and "Better third hint." in out
    code, out = _run("hints", "cancel", "2")
    assert code == 0 and "cancelled" in out
    code, out = _run("show", "1")
    assert code == 0 and "Better third hint." in out and "cancelled (was due" in out
    code, out = _run("reschedule", "1", "--opens", "2099-12-02 17:00")
    assert code == 0 and "Wed 09 Dec 2099 17:00 CET" in out  # the hints moved with the opening
    code, out = _run("cancel", "1")
    assert code == 0 and "cancelled" in out
    code, out = _run("list")
    assert code == 0 and "no rounds planned" in out
    assert "#1" in _run("list", "--all")[1]


def test_refusals_exit_1_with_the_reason() -> None:
    code, out = _run("plan", "--puzzle", "nope", "--channel", "C1")
    assert code == 1 and "refused: unknown puzzle 'nope'; known puzzles:" in out and "gamma" in out
    code, out = _run("plan", "--puzzle", "gamma", "--channel", "C1", "--opens", "someday")
    assert code == 1 and "could not read the time 'someday'" in out
    code, out = _run("hints", "cancel", "42")
    assert code == 1 and "no hint #42" in out


def test_tick_and_manual_posts(configured: str) -> None:
    assert (
        _run("plan", "--puzzle", "gamma", "--channel", "C9", "--opens", "now", "--no-hints")[0] == 0
    )
    code, out = _run("tick")
    assert code == 0 and "queued: round:1:announce" in out
    code, out = _run("announce", "1")  # once queued, posting again changes nothing
    assert code == 0 and "queued round:1:announce" in out
    code, out = _run("post-solutions", "1")
    assert code == 1 and "still open" in out
    with session_scope(session_factory(configured)) as s:
        assert s.query(OutboxMessage).count() == 1
