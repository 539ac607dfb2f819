"""`/puzzle admin hint ...`: schedule, list, edit, cancel and release hints (one handler a verb)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from bot.flows.hints import release_hint
from bot.grammar import words as grammar_words
from bot.grammar.usage import HINT_USAGE
from bot.grammar.when import parse_when
from bot.services import hints, rounds
from bot.services.hints import HintError, describe_hint
from bot.settings import Settings, get_settings
from storage.models import HintStatus, Round


@dataclass(frozen=True)
class _Call:
    """One `hint <verb> <rest>` as typed, with what every handler needs."""

    session: Session
    verb: str
    rest: list[str]
    actor_id: str
    now: datetime
    settings: Settings

    @property
    def tz(self) -> str:
        return self.settings.timezone

    def when(self, value: str) -> datetime:
        return parse_when(
            value, tz=self.tz, now=self.now, default_hour=self.settings.round_open_hour
        )

    def hint_id(self) -> int:
        return grammar_words.id_arg(
            self.rest, what=f"which hint? `hint {self.verb} <id>` (see `hint list`)"
        )


def admin_hint_command(
    *,
    session: Session,
    text: str,
    actor_id: str,
    now: datetime,
    settings: Settings | None = None,
) -> str:
    """Run ``/puzzle admin hint <text>`` (the caller checked the admin role); returns the reply.

    Raises ``HintError`` (or ``GrammarError`` for unreadable words) with a message for the admin.
    """
    words = grammar_words.split_args(text)
    if not words or words[0] in grammar_words.HELP_WORDS:
        return HINT_USAGE
    call = _Call(session, words[0], words[1:], actor_id, now, settings or get_settings())
    handler = _HANDLERS.get(call.verb)
    if handler is None:
        raise HintError(f"unknown hint command {call.verb!r}. " + HINT_USAGE)
    return handler(call)


def _target_round(session: Session, release_at: datetime, now: datetime) -> Round:
    """The round a new hint belongs to: the one open at its release time, else the open one."""
    for candidate in (release_at, now):
        round_ = rounds.current(session=session, now=candidate)
        if round_ is not None:
            return round_
    raise HintError("no round is open at that time; plan one first (`/puzzle admin round plan`)")


def _add(call: _Call) -> str:
    if len(call.rest) < 2:
        raise HintError('say when and what: `hint add "<when>" <text>`. ' + HINT_USAGE)
    release_at = call.when(call.rest[0])
    round_ = _target_round(call.session, release_at, call.now)
    hint = hints.add(
        session=call.session,
        round_id=round_.id,
        text=" ".join(call.rest[1:]),
        release_at=release_at,
        now=call.now,
        created_by=call.actor_id,
        settings=call.settings,
    )
    return "Scheduled " + describe_hint(hint, tz=call.tz)


def _list(call: _Call) -> str:
    session, now = call.session, call.now
    if call.rest:
        round_ = rounds.require(session=session, round_id=int(call.rest[0].lstrip("#")))
    else:
        round_ = rounds.current(session=session, now=now) or rounds.upcoming(
            session=session, now=now
        )
        if round_ is None:
            return "No round is open or planned."
    listed = hints.list_hints(session=session, round_id=round_.id)
    if not listed:
        return f"Round #{round_.id} has no hints."
    return "\n".join(describe_hint(h, tz=call.tz) for h in listed)


def _edit(call: _Call) -> str:
    hint_id, rest = call.hint_id(), call.rest
    if len(rest) < 3 or rest[1] not in {"time", "text"}:
        raise HintError('`hint edit <id> time "<when>"` or `hint edit <id> text <new text>`')
    if rest[1] == "time":
        change = {"release_at": call.when(rest[2])}
    else:
        change = {"text": " ".join(rest[2:])}
    hint = hints.edit(
        session=call.session, hint_id=hint_id, now=call.now, settings=call.settings, **change
    )
    return "Updated " + describe_hint(hint, tz=call.tz)


def _cancel(call: _Call) -> str:
    hint = hints.cancel(
        session=call.session, hint_id=call.hint_id(), now=call.now, settings=call.settings
    )
    return "Cancelled " + describe_hint(hint, tz=call.tz)


def _release(call: _Call) -> str:
    hint_id = call.hint_id()
    hint = hints.require(session=call.session, hint_id=hint_id)
    if hint.status == HintStatus.SCHEDULED and hint.release_at > call.now:
        raise HintError(
            f"hint #{hint_id} is scheduled for {rounds.format_time(hint.release_at, call.tz)}; "
            f'to release it earlier, `hint edit {hint_id} time "now"`'
        )
    release_hint(session=call.session, hint_id=hint_id, now=call.now)
    return "Released " + describe_hint(hint, tz=call.tz)


_HANDLERS: dict[str, Callable[[_Call], str]] = {
    "add": _add,
    "list": _list,
    "edit": _edit,
    "cancel": _cancel,
    "release": _release,
}
