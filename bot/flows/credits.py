"""Awarding a credit from `/puzzle admin credit @user best|mention ["note"] [round=<id>]`."""

from __future__ import annotations

import shlex
from datetime import datetime

from sqlalchemy.orm import Session

from bot import slack_refs
from bot.grammar import words as grammar_words
from bot.grammar.usage import CREDIT_USAGE
from bot.services import credits, overview, users
from bot.services.round_refs import RoundNotFound, resolve_round
from storage.models import RoundStatus


def credit_command(
    *,
    session: Session,
    actor_id: str,
    rest: str,
    now: datetime,
    configured: list[str],
    directory: slack_refs.Directory | None = None,
) -> str:
    """Award the credit the command names (the caller checked the admin role); the reply."""
    try:
        words = shlex.split(rest)
    except ValueError as exc:
        raise ValueError(str(exc)) from exc
    words, round_ref = grammar_words.round_option(words)
    if len(words) < 2:
        raise ValueError(CREDIT_USAGE)
    target = grammar_words.user_arg(words[0], directory=directory)
    round_id = credit_round(session=session, ref=round_ref, now=now)
    users.ensure(session=session, user_id=target)
    credit = credits.award(
        session=session,
        actor_id=actor_id,
        round_id=round_id,
        user_id=target,
        kind=words[1],
        note=" ".join(words[2:]),
        now=now,
        configured_admins=configured,
    )
    return f"Awarded {credit.kind.value.replace('_', ' ')} to <@{target}> for round #{credit.round_id}."


def credit_round(*, session: Session, ref: str | None, now: datetime) -> int:
    """The round a credit is for: ``ref`` (an id or ``latest``), else the open round, else the
    most recently closed one (credits are usually awarded once a round is over)."""
    if ref is None:
        current = overview.current(session=session, now=now)
        if current.round is not None:
            return current.round.id
        ref = "latest"
    try:
        round_ = resolve_round(session=session, ref=ref, now=now)
    except RoundNotFound as exc:
        if ref.lower() in ("latest", "last"):
            raise ValueError("no round to credit: none is open and none has closed yet") from exc
        raise ValueError(f"no round #{ref} to credit (see `/puzzle admin round list`)") from exc
    if round_.status == RoundStatus.CANCELLED:
        raise ValueError(f"round #{round_.id} was cancelled; there is nothing to credit")
    return round_.id
