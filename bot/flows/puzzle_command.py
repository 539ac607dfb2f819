"""`/puzzle [sub-command]`: one function shared by the Slack listener and the console.

It reads (and for admin commands, changes) state and returns what to show: a message payload
and/or a modal to open. The words are looked up in ``bot.grammar`` (what help lists is what runs);
admin sub-commands go to ``admin_command``, authorized and audited there for the acting user,
whatever path they came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from bot import grammar, slack_refs
from bot.flows.admin_command import run_admin_command
from bot.posts import leaderboards as leaderboard_posts
from bot.services import admins, overview, users
from bot.settings import Settings
from bot.views import puzzle as puzzle_views
from bot.views.submissions import build_my_submissions
from storage.models import utcnow


@dataclass
class CommandResult:
    message: dict[str, Any] | None = None
    modal: dict[str, Any] | None = None


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
        return CommandResult(
            message=leaderboard_posts.leaderboard_message(session=session, user_id=user_id, now=now)
        )
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
