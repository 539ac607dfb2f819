"""`/puzzle admin round ...`: plan, list, show, reschedule and cancel rounds, and post a missed
announcement or solutions post (one handler a verb)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from bot import slack_refs
from bot.flows.rounds import announce_round, post_solutions
from bot.grammar import words as grammar_words
from bot.grammar.usage import ROUND_USAGE
from bot.grammar.when import parse_when
from bot.services import rounds
from bot.services.hints import describe_hint
from bot.services.rounds import RoundError, describe_round
from bot.settings import Settings, get_settings


@dataclass(frozen=True)
class _Call:
    """One `round <verb> <rest>` as typed, with what every handler needs."""

    session: Session
    verb: str
    rest: list[str]
    actor_id: str
    channel_id: str
    now: datetime
    settings: Settings
    directory: slack_refs.Directory | None

    @property
    def tz(self) -> str:
        return self.settings.timezone

    def when(self, options: dict[str, str], name: str) -> datetime | None:
        if name not in options:
            return None
        return parse_when(
            options[name], tz=self.tz, now=self.now, default_hour=self.settings.round_open_hour
        )

    def round_id(self) -> int:
        return grammar_words.id_arg(
            self.rest, what=f"which round? `round {self.verb} <id>` (see `round list`)"
        )


def admin_round_command(
    *,
    session: Session,
    text: str,
    actor_id: str,
    channel_id: str,
    now: datetime,
    settings: Settings | None = None,
    directory: slack_refs.Directory | None = None,
) -> str:
    """Run ``/puzzle admin round <text>`` (the caller checked the admin role); returns the reply.

    Raises ``RoundError`` (or ``GrammarError`` for unreadable words) with a message for the admin.
    """
    words = grammar_words.split_args(text)
    if not words or words[0] in grammar_words.HELP_WORDS:
        return ROUND_USAGE
    call = _Call(
        session,
        words[0],
        words[1:],
        actor_id,
        channel_id,
        now,
        settings or get_settings(),
        directory,
    )
    handler = _HANDLERS.get(call.verb)
    if handler is None:
        raise RoundError(f"unknown round command {call.verb!r}. " + ROUND_USAGE)
    return handler(call)


def _list(call: _Call) -> str:
    rounds_ = rounds.list_rounds(session=call.session)
    if not rounds_:
        return "No rounds planned yet. " + ROUND_USAGE
    return "\n".join(describe_round(r, tz=call.tz) for r in rounds_)


def _show(call: _Call) -> str:
    round_ = rounds.require(session=call.session, round_id=call.round_id())
    lines = [describe_round(round_, tz=call.tz)]
    lines += [describe_hint(h, tz=call.tz) for h in round_.hints]
    return "\n".join(lines)


def _plan(call: _Call) -> str:
    if not call.rest:
        raise RoundError("which puzzle? `round plan <puzzle>` (see `/puzzle` for the list)")
    options = grammar_words.options(call.rest[1:], {"opens", "closes", "channel"})
    channel_id = (
        grammar_words.channel_arg(options["channel"], directory=call.directory)
        if "channel" in options
        else call.channel_id
    )
    round_ = rounds.plan(
        session=call.session,
        slug=call.rest[0],
        channel_id=channel_id,
        now=call.now,
        opens_at=call.when(options, "opens"),
        closes_at=call.when(options, "closes"),
        created_by=call.actor_id,
        settings=call.settings,
    )
    return "Planned " + describe_round(round_, tz=call.tz)


def _reschedule(call: _Call) -> str:
    round_id = call.round_id()
    options = grammar_words.options(call.rest[1:], {"opens", "closes"})
    round_ = rounds.reschedule(
        session=call.session,
        round_id=round_id,
        now=call.now,
        opens_at=call.when(options, "opens"),
        closes_at=call.when(options, "closes"),
        settings=call.settings,
    )
    return "Rescheduled " + describe_round(round_, tz=call.tz)


def _cancel(call: _Call) -> str:
    round_ = rounds.cancel(session=call.session, round_id=call.round_id(), now=call.now)
    return "Cancelled " + describe_round(round_, tz=call.tz)


def _post(post: Callable[..., str]) -> Callable[[_Call], str]:
    """`announce`, `post-solutions`: a post missed while the bot was down."""

    def handler(call: _Call) -> str:
        key = post(session=call.session, round_id=call.round_id(), now=call.now)
        return f"Queued `{key}` (posted once, however often this is asked)."

    return handler


_HANDLERS: dict[str, Callable[[_Call], str]] = {
    "list": _list,
    "show": _show,
    "plan": _plan,
    "reschedule": _reschedule,
    "cancel": _cancel,
    "announce": _post(announce_round),
    "post-solutions": _post(post_solutions),
}
