"""`/puzzle admin <verb> ...`: authorized and audited for the acting user, then one handler a verb.

Slack and the console reach it through ``puzzle_command``; App Home's admin modals call it with
``authorized=True`` once their own path has authorized and audited the request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from bot import grammar, slack_refs
from bot.flows import credits as credit_flows
from bot.flows.hint_admin import admin_hint_command
from bot.flows.round_admin import admin_round_command
from bot.grammar import words as grammar_words
from bot.grammar.usage import ADMIN_USAGE
from bot.services import admins, submissions
from bot.settings import Settings
from bot.views import puzzle as puzzle_views
from storage.models import Submission, utcnow


@dataclass(frozen=True)
class AdminCall:
    """One `/puzzle admin <verb> <rest>` as typed, with what every handler needs."""

    session: Session
    settings: Settings
    actor_id: str
    verb: str
    rest: str
    channel_id: str
    now: datetime
    directory: slack_refs.Directory | None = None


def run_admin_command(
    *,
    session: Session,
    settings: Settings,
    actor_id: str,
    text: str,
    channel_id: str = "",
    now: datetime | None = None,
    authorized: bool = False,
    directory: slack_refs.Directory | None = None,
) -> dict[str, Any]:
    """`/puzzle admin <verb> ...`: authorized and audited for ``actor_id``, then run.

    ``authorized=True`` only from a path that already authorized and audited this request.
    """
    now = now or utcnow()
    words = text.strip().split(maxsplit=1)
    verb = words[0].lower() if words else "help"
    rest = words[1] if len(words) > 1 else ""
    if not _allowed(session, settings, actor_id, verb, rest, authorized=authorized):
        return puzzle_views.build_error_message(
            "Only puzzle admins can do that. (This attempt was logged.)"
        )
    call = AdminCall(session, settings, actor_id, verb, rest, channel_id, now, directory)
    try:
        with session.begin_nested():  # a refused action leaves nothing behind but its audit row
            reply = _admin_action(call)
    except (ValueError, LookupError, PermissionError) as exc:
        return puzzle_views.build_error_message(str(exc))
    return puzzle_views.build_info_message(reply)


def _allowed(
    session: Session, settings: Settings, actor_id: str, verb: str, rest: str, *, authorized: bool
) -> bool:
    """Whether ``actor_id`` holds the role; audited here unless the caller already did."""
    if authorized:
        return admins.is_admin(session=session, user_id=actor_id, configured=settings.admins)
    try:
        admins.authorize(
            session=session,
            actor_id=actor_id,
            action=f"admin.{verb}"[:64],
            configured=settings.admins,
            target=rest[:255] or None,
        )
    except admins.NotAnAdmin:
        return False
    return True


def _check_known(verb: str, rest: str) -> None:
    """The grammar is the gate: what help does not list is not run (and help lists what runs)."""
    group = ("admin", verb) in grammar.GROUPS  # `hint ...`, `round ...`: their own usage
    further = rest.split(maxsplit=1)[:1] if group else []
    if further and further[0].lower() in grammar_words.HELP_WORDS:
        further = []
    if not (group and not further) and grammar.resolve(["admin", verb, *further])[0] is None:
        what = " ".join([verb, *further])
        usage = grammar.group_usage("admin", verb, drop=2) if further else ADMIN_USAGE
        raise ValueError(f"unknown admin command `{what}`. Try: {usage}")


def _admin_action(call: AdminCall) -> str:
    if call.verb in ("help", "-h", "--help", ""):
        return ADMIN_USAGE
    _check_known(call.verb, call.rest)
    handler = _HANDLERS.get(call.verb)
    if handler is None:
        raise ValueError(f"unknown admin command `{call.verb}`. {ADMIN_USAGE}")
    return handler(call)


def _list(call: AdminCall) -> str:
    names = admins.list_admins(session=call.session, configured=call.settings.admins)
    recent = admins.recent_audit(session=call.session, limit=10)
    lines = ["Admins: " + (", ".join(f"<@{u}>" for u in names) or "none")]
    lines += [
        f"{e.at:%Y-%m-%d %H:%M} <@{e.actor_id}> {e.action} {e.target or ''} "
        f"{'allowed' if e.allowed else 'REFUSED'}"
        for e in recent
    ]
    return "\n".join(lines)


def _grant_or_revoke(call: AdminCall) -> str:
    if not call.rest.split():
        raise ValueError(f"whom? `/puzzle admin {call.verb} @user`")
    target = grammar_words.user_arg(call.rest.split()[0], directory=call.directory)
    if call.verb == "grant":
        admins.grant(session=call.session, actor_id=call.actor_id, user_id=target)
        return f"<@{target}> is now an admin."
    if admins.revoke(
        session=call.session,
        actor_id=call.actor_id,
        user_id=target,
        configured=call.settings.admins,
    ):
        return f"<@{target}> is no longer an admin."
    return f"<@{target}> was not an admin."


def _reverify(call: AdminCall) -> str:
    word = call.rest.strip().lstrip("#")
    if not word.isdigit():
        raise ValueError("which submission? `/puzzle admin reverify <submission id>`")
    submission = call.session.get(Submission, int(word))
    if submission is None:
        raise LookupError(f"no submission #{word}")
    # Its posts and its job are the caller's flow's (``bot.flows.submission.unit_of_work``).
    submissions.reverify(
        session=call.session, submission_id=submission.id, requested_by=call.actor_id
    )
    return f"Submission #{submission.id} is queued for verification again."


def _round(call: AdminCall) -> str:
    return admin_round_command(
        session=call.session,
        text=call.rest,
        actor_id=call.actor_id,
        channel_id=call.channel_id,
        now=call.now,
        settings=call.settings,
        directory=call.directory,
    )


def _hint(call: AdminCall) -> str:
    return admin_hint_command(
        session=call.session,
        text=call.rest,
        actor_id=call.actor_id,
        now=call.now,
        settings=call.settings,
    )


def _credit(call: AdminCall) -> str:
    return credit_flows.credit_command(
        session=call.session,
        actor_id=call.actor_id,
        rest=call.rest,
        now=call.now,
        configured=call.settings.admins,
        directory=call.directory,
    )


_HANDLERS: dict[str, Callable[[AdminCall], str]] = {
    "list": _list,
    "grant": _grant_or_revoke,
    "revoke": _grant_or_revoke,
    "reverify": _reverify,
    "round": _round,
    "hint": _hint,
    "credit": _credit,
}
