"""`/puzzle [sub-command]`: one function shared by the Slack listener and the console.

It reads (and for admin commands, changes) state and returns what to show: a message payload
and/or a modal to open. Admin sub-commands are authorized and audited here, for the acting user,
whatever path they came from.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from bot import slack_refs
from bot.services import admins, grammar, leaderboards, overview, users
from bot.settings import Settings
from bot.views import puzzle as puzzle_views
from bot.views.submissions import build_my_submissions
from storage.models import RoundStatus, Submission, utcnow

ADMIN_USAGE = "Admin: " + grammar.group_usage("admin")


@dataclass
class CommandResult:
    message: dict[str, Any] | None = None
    modal: dict[str, Any] | None = None


def parse_user(word: str, *, directory: slack_refs.Directory | None = None) -> str:
    """The user id ``word`` names (a mention, an id or a name); raises ``RefError`` (a
    ``ValueError``) with a message for the admin."""
    return slack_refs.resolve_user(word, directory=directory)


def run_puzzle_command(
    *,
    session: Session,
    settings: Settings,
    user_id: str,
    text: str,
    channel_id: str = "",
    now: datetime | None = None,
    directory: slack_refs.Directory | None = None,
) -> CommandResult:
    """``directory`` looks up plain user/channel names (Slack's; None in the console)."""
    now = now or utcnow()
    users.ensure(session=session, user_id=user_id)
    words = (text or "").strip().split(maxsplit=1)
    sub = words[0].lower() if words else ""
    rest = words[1] if len(words) > 1 else ""
    if sub == "admin":
        return CommandResult(
            message=run_admin_command(
                session=session,
                settings=settings,
                actor_id=user_id,
                text=rest,
                channel_id=channel_id,
                now=now,
                directory=directory,
            )
        )
    command, _ = grammar.resolve(words[:1])
    name = None if command is None else "".join(command.words[:1])
    if name == "":
        return CommandResult(
            message=puzzle_views.build_puzzle_message(overview.current(session=session, now=now))
        )
    if name == "submit":
        current = overview.current(session=session, now=now)
        if current.round is None:
            return CommandResult(
                message=puzzle_views.build_error_message("There is no open round to submit to.")
            )
        return CommandResult(
            modal=puzzle_views.build_submit_modal(
                puzzle_title=current.puzzle_title, private_metadata=str(current.round.id)
            )
        )
    if name == "hints":
        return CommandResult(
            message=puzzle_views.build_hints_message(overview.current(session=session, now=now))
        )
    if name == "leaderboard":
        return CommandResult(message=leaderboard_message(session=session, user_id=user_id, now=now))
    if name == "me":
        mine = overview.my_submissions(session=session, user_id=user_id)
        return CommandResult(
            message=build_my_submissions(mine.submissions, best_score=mine.best_score)
        )
    is_admin = admins.is_admin(session=session, user_id=user_id, configured=settings.admins)
    unknown = None if name == "help" else sub
    return CommandResult(
        message=puzzle_views.build_help_message(is_admin=is_admin, unknown=unknown)
    )


def leaderboard_message(*, session: Session, user_id: str, now: datetime) -> dict[str, Any]:
    from bot.views.leaderboard import (
        build_all_time_leaderboard_message,
        build_round_leaderboard_message,
    )

    current = overview.current(session=session, now=now)
    if current.round is not None:
        board = leaderboards.round_leaderboard(session=session, round_id=current.round.id, now=now)
        return build_round_leaderboard_message(board, viewer_id=user_id)
    return build_all_time_leaderboard_message(
        leaderboards.all_time_leaderboard(session=session, now=now)
    )


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
    try:
        if authorized:
            if not admins.is_admin(session=session, user_id=actor_id, configured=settings.admins):
                raise admins.NotAnAdmin(verb)
        else:
            admins.authorize(
                session=session,
                actor_id=actor_id,
                action=f"admin.{verb}"[:64],
                configured=settings.admins,
                target=rest[:255] or None,
            )
    except admins.NotAnAdmin:
        return puzzle_views.build_error_message(
            "Only puzzle admins can do that. (This attempt was logged.)"
        )
    try:
        with session.begin_nested():  # a refused action leaves nothing behind but its audit row
            reply = _admin_action(
                session=session,
                settings=settings,
                actor_id=actor_id,
                verb=verb,
                rest=rest,
                channel_id=channel_id,
                now=now,
                directory=directory,
            )
    except (ValueError, LookupError, PermissionError) as exc:
        return puzzle_views.build_error_message(str(exc))
    return puzzle_views.build_info_message(reply)


def _admin_action(
    *,
    session: Session,
    settings: Settings,
    actor_id: str,
    verb: str,
    rest: str,
    channel_id: str,
    now: datetime,
    directory: slack_refs.Directory | None = None,
) -> str:
    if verb in ("help", "-h", "--help", ""):
        return ADMIN_USAGE
    # The grammar is the gate: what help does not list is not run (and help lists what runs).
    group = ("admin", verb) in grammar.GROUPS  # `hint ...`, `round ...`: their own usage
    further = rest.split(maxsplit=1)[:1] if group else []
    if further and further[0].lower() in ("help", "-h", "--help"):
        further = []
    if not (group and not further) and grammar.resolve(["admin", verb, *further])[0] is None:
        what = " ".join([verb, *further])
        usage = grammar.group_usage("admin", verb, drop=2) if further else ADMIN_USAGE
        raise ValueError(f"unknown admin command `{what}`. Try: {usage}")
    if verb == "list":
        names = admins.list_admins(session=session, configured=settings.admins)
        recent = admins.recent_audit(session=session, limit=10)
        lines = ["Admins: " + (", ".join(f"<@{u}>" for u in names) or "none")]
        lines += [
            f"{e.at:%Y-%m-%d %H:%M} <@{e.actor_id}> {e.action} {e.target or ''} "
            f"{'allowed' if e.allowed else 'REFUSED'}"
            for e in recent
        ]
        return "\n".join(lines)
    if verb in ("grant", "revoke"):
        if not rest.split():
            raise ValueError(f"whom? `/puzzle admin {verb} @user`")
        target = parse_user(rest.split()[0], directory=directory)
        if verb == "grant":
            admins.grant(session=session, actor_id=actor_id, user_id=target)
            return f"<@{target}> is now an admin."
        if admins.revoke(
            session=session, actor_id=actor_id, user_id=target, configured=settings.admins
        ):
            return f"<@{target}> is no longer an admin."
        return f"<@{target}> was not an admin."
    if verb == "reverify":
        return _reverify(session=session, actor_id=actor_id, rest=rest, now=now)
    if verb == "round":
        from bot.services import rounds

        return rounds.admin_round_command(
            session=session,
            text=rest,
            actor_id=actor_id,
            channel_id=channel_id,
            now=now,
            settings=settings,
            directory=directory,
        )
    if verb == "hint":
        from bot.services import hints

        return hints.admin_hint_command(
            session=session, text=rest, actor_id=actor_id, now=now, settings=settings
        )
    if verb == "credit":
        return _credit(
            session=session,
            actor_id=actor_id,
            rest=rest,
            now=now,
            configured=settings.admins,
            directory=directory,
        )
    raise ValueError(f"unknown admin command `{verb}`. {ADMIN_USAGE}")


def _reverify(*, session: Session, actor_id: str, rest: str, now: datetime) -> str:
    from bot.services import submissions

    word = rest.strip().lstrip("#")
    if not word.isdigit():
        raise ValueError("which submission? `/puzzle admin reverify <submission id>`")
    submission = session.get(Submission, int(word))
    if submission is None:
        raise LookupError(f"no submission #{word}")
    # Its posts and its job are the caller's flow's (``bot.flows.submission.unit_of_work``).
    submissions.reverify(session=session, submission_id=submission.id, requested_by=actor_id)
    return f"Submission #{submission.id} is queued for verification again."


def _credit(
    *,
    session: Session,
    actor_id: str,
    rest: str,
    now: datetime,
    configured: list[str],
    directory: slack_refs.Directory | None = None,
) -> str:
    from bot.services import credits

    try:
        words = shlex.split(rest)
    except ValueError as exc:
        raise ValueError(str(exc)) from exc
    words, round_ref = _round_option(words)
    if len(words) < 2:
        raise ValueError(CREDIT_USAGE)
    target = parse_user(words[0], directory=directory)
    round_id = _credit_round(session=session, ref=round_ref, now=now)
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


CREDIT_USAGE = (
    '`/puzzle admin credit @user best|mention ["note"] [round=<id>]` (or `--round <id>`; '
    "default: the open round, else the most recently closed one)"
)
_ROUND_OPTION = re.compile(r"^(?:--)?round=#?(\w+)$", re.IGNORECASE)


def _round_option(words: list[str]) -> tuple[list[str], str | None]:
    """Take ``round=12``, ``--round=12`` or ``--round 12`` (``#12`` and ``latest`` too) out of
    ``words``; returns the other words and the round reference, if any."""
    rest: list[str] = []
    ref: str | None = None
    i = 0
    while i < len(words):
        word = words[i]
        match = _ROUND_OPTION.match(word)
        if match or word.lower() == "--round":
            if ref is not None:
                raise ValueError("give the round once. " + CREDIT_USAGE)
            if match:
                ref = match.group(1)
            elif i + 1 < len(words):
                i += 1
                ref = words[i].lstrip("#")
            else:
                raise ValueError("`--round` needs a round id. " + CREDIT_USAGE)
        else:
            rest.append(word)
        i += 1
    return rest, ref


def _credit_round(*, session: Session, ref: str | None, now: datetime) -> int:
    """The round a credit is for: ``ref`` (an id or ``latest``), else the open round, else the
    most recently closed one (credits are usually awarded once a round is over)."""
    from bot.services import export

    if ref is None:
        current = overview.current(session=session, now=now)
        if current.round is not None:
            return current.round.id
        ref = "latest"
    try:
        round_ = export.resolve_round(session=session, ref=ref, now=now)
    except export.ExportError as exc:
        if ref.lower() in ("latest", "last"):
            raise ValueError("no round to credit: none is open and none has closed yet") from exc
        raise ValueError(f"no round #{ref} to credit (see `/puzzle admin round list`)") from exc
    if round_.status == RoundStatus.CANCELLED:
        raise ValueError(f"round #{round_.id} was cancelled; there is nothing to credit")
    return round_.id
