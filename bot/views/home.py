"""App Home: the current round, your submissions, the leaderboard, and the admin panel for admins."""

from __future__ import annotations

from typing import Any

from bot.services.overview_data import MySubmissions, RoundOverview
from bot.views.blocks import (
    HOME_BLOCKS_MAX,
    Block,
    actions,
    button,
    clip,
    context,
    divider,
    header,
    section,
)
from bot.views.escape import mrkdwn_code
from bot.views.puzzle import round_blocks
from bot.views.submissions import status_line

ADMIN_HINT = "admin_schedule_hint"
ADMIN_ROUND = "admin_round"
ADMIN_CREDIT = "admin_award_credit"
ADMIN_REVERIFY = "admin_reverify"
ADMIN_GRANT = "admin_grant"
HOME_REFRESH = "home_refresh"
OPEN_SUBMIT = "open_submit_modal"


def build_home_view(
    *,
    overview: RoundOverview,
    mine: MySubmissions,
    leaderboard: list[Block],
    is_admin: bool,
) -> dict[str, Any]:
    admin = admin_panel_blocks() if is_admin else []
    budget = HOME_BLOCKS_MAX - len(admin)
    blocks: list[Block] = []
    blocks.extend(round_blocks(overview, with_description=False))
    if overview.round is not None:
        blocks.append(
            actions(
                button("Submit a solution", action_id=OPEN_SUBMIT, style="primary"),
                button("Refresh", action_id=HOME_REFRESH),
            )
        )
    blocks.append(divider())
    blocks.append(header("Your submissions"))
    if mine.submissions:
        lines = [
            f"#{s.id} `{mrkdwn_code(s.filename)}`: {status_line(s)}" for s in mine.submissions[:10]
        ]
        blocks.append(section("\n".join(lines)))
        best = "n/a" if mine.best_score is None else f"{mine.best_score:.3f}"
        blocks.append(context(f"Best score: {best}"))
    else:
        blocks.append(section("No submissions yet: DM me a `.py` or `.ipynb` file."))
    blocks.append(divider())
    room = budget - len(blocks)
    blocks.extend(leaderboard[: max(0, room)])
    return {"type": "home", "blocks": (blocks[:budget] + admin)[:HOME_BLOCKS_MAX]}


def admin_panel_blocks() -> list[Block]:
    return [
        divider(),
        header("Admin panel"),
        actions(
            button("Schedule a hint", action_id=ADMIN_HINT),
            button("Open / close a round", action_id=ADMIN_ROUND),
            button("Award a credit", action_id=ADMIN_CREDIT),
            button("Re-verify a submission", action_id=ADMIN_REVERIFY),
            button("Grant admin", action_id=ADMIN_GRANT),
        ),
        context("Every admin action is checked and recorded in the audit log."),
    ]


def _modal(callback_id: str, title: str, blocks: list[Block], *, submit: str = "Save") -> dict:
    return {
        "type": "modal",
        "callback_id": callback_id,
        "title": {"type": "plain_text", "text": clip(title, 24)},
        "submit": {"type": "plain_text", "text": submit},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": blocks,
    }


def _input(block_id: str, label: str, element: Block, *, optional: bool = False) -> Block:
    return {
        "type": "input",
        "block_id": block_id,
        "optional": optional,
        "label": {"type": "plain_text", "text": clip(label, 2000)},
        "element": {**element, "action_id": "value"},
    }


def _text(*, multiline: bool = False, placeholder: str = "") -> Block:
    element: Block = {"type": "plain_text_input", "multiline": multiline}
    if placeholder:
        element["placeholder"] = {"type": "plain_text", "text": clip(placeholder, 150)}
    return element


def build_admin_modal(action_id: str, *, round_usage: str = "") -> dict[str, Any]:
    """The modal behind each admin panel button (the hint button opens ``announcements``'s
    hint modal); submissions are handled in ``listeners.modals``."""
    if action_id == ADMIN_ROUND:
        return _modal(
            ADMIN_ROUND,
            "Rounds",
            [
                section(clip(round_usage or "Round command", 3000)),
                _input("command", "Round command", _text(placeholder='reschedule 3 closes "now"')),
            ],
            submit="Run",
        )
    if action_id == ADMIN_CREDIT:
        kinds = [
            {"text": {"type": "plain_text", "text": "Best solution"}, "value": "best"},
            {"text": {"type": "plain_text", "text": "Honourable mention"}, "value": "mention"},
        ]
        return _modal(
            ADMIN_CREDIT,
            "Award a credit",
            [
                _input("user", "Who", {"type": "users_select"}),
                _input("kind", "Credit", {"type": "static_select", "options": kinds}),
                _input("note", "Note", _text(multiline=True), optional=True),
            ],
            submit="Award",
        )
    if action_id == ADMIN_REVERIFY:
        return _modal(
            ADMIN_REVERIFY,
            "Re-verify",
            [_input("submission", "Submission id", _text(placeholder="42"))],
            submit="Re-verify",
        )
    if action_id == ADMIN_GRANT:
        return _modal(
            ADMIN_GRANT,
            "Grant admin",
            [_input("user", "Who", {"type": "users_select"})],
            submit="Grant",
        )
    raise KeyError(action_id)


ADMIN_ACTIONS = (ADMIN_HINT, ADMIN_ROUND, ADMIN_CREDIT, ADMIN_REVERIFY, ADMIN_GRANT)
ADMIN_MODALS = (ADMIN_ROUND, ADMIN_CREDIT, ADMIN_REVERIFY, ADMIN_GRANT)
