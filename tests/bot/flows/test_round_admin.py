"""`/puzzle admin round ...`: every verb, Slack's quotes and channel mentions, refusals that say why."""

from __future__ import annotations

import pytest
from support.scheduler import ADMIN, utc

from bot.flows import round_admin
from bot.grammar import GrammarError
from bot.services import rounds
from bot.services.rounds import RoundError
from storage.db import session_scope

pytestmark = pytest.mark.usefixtures("catalog")  # the test catalog (conftest)

NOW = utc(2026, 11, 25, 12)


def test_admin_round_command(factory, settings) -> None:
    def run(text: str) -> str:
        with session_scope(factory) as s:
            return round_admin.admin_round_command(
                session=s, text=text, actor_id=ADMIN, channel_id="CHERE", now=NOW, settings=settings
            )

    # Slack's typographic quotes and escaped channel mentions are understood.
    reply = run("plan alpha opens “2026-12-01 17:00” channel <#C777|puzzles>")
    assert "Planned #1" in reply and "<#C777>" in reply and "Tue 01 Dec 2026 17:00 CET" in reply
    assert "Fri 01 Jan 2027 17:00 CET" in reply
    reply = run("plan beta")  # the default cadence, in the channel the command came from
    assert "#2" in reply and "<#CHERE>" in reply and "Mon 01 Feb 2027 17:00 CET" in reply
    assert run("list").count("\n") == 1
    assert "hint #1" in run("show 1")
    assert "Rescheduled" in run('reschedule 2 closes "2027-02-03 12:00"')
    assert "Cancelled #2" in run("cancel 2")
    assert "Usage" in run("help")
    with pytest.raises(RoundError, match="unknown round command"):
        run("frobnicate")
    with pytest.raises(GrammarError, match="which round"):
        run("cancel")
    with pytest.raises(ValueError, match="could not read the time"):
        run('plan beta opens "someday"')
    with session_scope(factory) as s:
        assert rounds.require(session=s, round_id=1).created_by == ADMIN
