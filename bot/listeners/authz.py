"""The one place admin rights are enforced for interactive requests (buttons, modals).

A listener middleware: it checks the acting user's role on the server (never trusting what the
client shows), writes the attempt to the audit log, and stops refused requests before any
listener runs, telling the user why in their DM.
"""

from __future__ import annotations

import json
from typing import Any

from slack_bolt import BoltContext, BoltResponse

from bot.posts import replies
from bot.services import admins
from storage.db import session_scope


def _action_name(body: dict) -> str:
    if body.get("type") == "block_actions":
        return "slack." + str((body.get("actions") or [{}])[0].get("action_id"))
    if body.get("type") in ("view_submission", "view_closed"):
        return "slack." + str(body.get("view", {}).get("callback_id"))
    return "slack." + str(body.get("type"))


def require_admin(body: dict, context: BoltContext, next: Any) -> Any:
    user_id = context.user_id or (body.get("user") or {}).get("id") or "unknown"
    action = _action_name(body)[:64]
    request_id = body.get("trigger_id") or (body.get("view") or {}).get("id") or "?"
    with session_scope(context["db"]) as session:
        try:
            admins.authorize(
                session=session,
                actor_id=user_id,
                action=action,
                configured=context["settings"].admins,
            )
        except admins.NotAnAdmin:
            replies.not_an_admin(
                session=session, action=action, request_id=request_id, user_id=user_id
            )
            refused = True
        else:
            refused = False
    if refused:
        context["outbox"].wake()
        if body.get("type") == "view_submission":
            return BoltResponse(
                status=200,
                body=json.dumps({"response_action": "clear"}),
                headers={"content-type": "application/json"},
            )
        return BoltResponse(status=200, body="")
    return next()
