"""`/puzzle help` is made from the command grammar, and every line of it runs.

Each grammar entry's example is run through the same function Slack and the console call, on a
world where it can succeed (an open round, hints, a submission): none may answer "unknown", and
none may fall back to help. A command the grammar lacks is refused before it runs.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from bot import grammar
from bot.flows import puzzle_command
from bot.services import hints, rounds, submissions
from bot.settings import Settings
from bot.views.puzzle import build_help_message
from bot.views.text import render
from puzzles.catalog import get_puzzle
from storage.db import session_factory, session_scope, upgrade_database
from storage.models import Hint, HintStatus, Round, RoundStatus, utcnow

ADMIN = "UADMIN"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One world for the module (migrating is most of the cost); the examples run in grammar
    order, each leaving what the next one needs."""
    tmp_path = tmp_path_factory.mktemp("grammar")
    sqlite_url = f"sqlite:///{tmp_path / 'test.db'}"
    upgrade_database(sqlite_url)
    settings = Settings(database_url=sqlite_url, data_dir=tmp_path / "data", admins=[ADMIN])
    factory = session_factory(sqlite_url)
    now = utcnow()
    ids = {}
    with session_scope(factory) as session:
        open_round = rounds.plan(
            session=session,
            slug="palindromes",
            channel_id="CROUND",
            now=now,
            opens_at=now - timedelta(seconds=1),
            closes_at=now + timedelta(days=25),
            created_by=ADMIN,
            seed_hints=False,
            settings=settings,
        )
        open_round.status = RoundStatus.OPEN  # what the scheduler's tick does at opens_at
        open_round.opens_at = now - timedelta(days=1)  # opened yesterday: a missed hint fits in
        later = rounds.plan(
            session=session,
            slug="first_unique",
            channel_id="CROUND",
            now=now,
            opens_at=now + timedelta(days=40),
            closes_at=now + timedelta(days=60),
            created_by=ADMIN,
            seed_hints=False,
            settings=settings,
        )
        hint = hints.add(
            session=session,
            round_id=open_round.id,
            text="Look at the middle.",
            release_at=now + timedelta(days=2),
            now=now,
            created_by=ADMIN,
            settings=settings,
        )
        missed = Hint(
            round_id=open_round.id,
            position=99,
            text="A hint the bot missed.",
            release_at=now - timedelta(minutes=5),
            status=HintStatus.SCHEDULED,
            created_by=ADMIN,
        )
        closed = Round(
            puzzle_version=open_round.puzzle_version,
            channel_id="CROUND",
            opens_at=now - timedelta(days=60),
            closes_at=now - timedelta(days=30),
            status=RoundStatus.CLOSED,
        )
        session.add_all([missed, closed])
        session.flush()
        ids.update(
            round=open_round.id,
            planned_round=later.id,
            closed_round=closed.id,
            hint=hint.id,
            released_hint=missed.id,
        )
    with session_scope(factory) as session:
        from bot.services import overview

        current = overview.current(session=session, now=now).round
        assert current is not None and current.id == ids["round"]
        sub = submissions.create_submission(
            session=session,
            round_id=ids["round"],
            user_id="UWINNER",
            filename="solution.py",
            content=get_puzzle("palindromes").solution_path.read_bytes(),
            settings=settings,
        )
        ids["submission"] = sub.id
    return settings, factory, ids


def _run(settings, factory, text, *, user=ADMIN):
    with session_scope(factory) as session:
        result = puzzle_command.run_puzzle_command(
            session=session, settings=settings, user_id=user, text=text, channel_id="CROUND"
        )
    return result


def test_help_is_the_grammar_and_each_help_line_names_its_command():
    admin_help = render(build_help_message(is_admin=True))
    for command in grammar.COMMANDS:
        assert command.usage in admin_help
        words = command.usage.split()[1:]
        assert grammar.resolve(words)[0] == command, command.usage
    participant_help = render(build_help_message(is_admin=False))
    assert "/puzzle admin" not in participant_help


@pytest.mark.parametrize("command", grammar.COMMANDS, ids=lambda c: c.usage)
def test_every_command_in_help_runs(world, command):
    settings, factory, ids = world
    text = " ".join([*command.words, command.example.format(**ids)]).strip()
    result = _run(settings, factory, text)
    shown = render(result.message) if result.message else ""
    if command.words == ("submit",):
        assert result.modal is not None
        return
    assert "unknown" not in shown.lower(), (text, shown)
    assert "I don't know" not in shown, (text, shown)
    if command.words != ("help",):
        assert "Here is what I can do" not in shown
    assert not shown.startswith("⚠"), (text, shown)


def test_commands_outside_the_grammar_are_refused_with_the_grammar_usage(world):
    settings, factory, _ = world
    for text, expected in (
        ("admin open", "unknown admin command `open`"),
        ("admin close", "unknown admin command `close`"),
        ("admin hint frobnicate", "unknown admin command `hint frobnicate`"),
        ("admin round open 1", "unknown admin command `round open`"),
    ):
        shown = render(_run(settings, factory, text).message)
        assert expected in shown, shown
        assert re.search(r"`(hint add|round plan|list)", shown), shown
    shown = render(_run(settings, factory, "frobnicate").message)
    assert "I don't know `frobnicate`" in shown and "/puzzle submit" in shown


def test_group_help_is_generated_from_the_grammar(world):
    settings, factory, _ = world
    shown = render(_run(settings, factory, "admin round").message)
    for command in grammar.commands_under("admin", "round"):
        assert command.short_usage(1) in shown
    shown = render(_run(settings, factory, "admin hint help").message)
    for command in grammar.commands_under("admin", "hint"):
        assert command.short_usage(1) in shown
