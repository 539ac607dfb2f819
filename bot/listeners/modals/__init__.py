"""Modal submissions: the submit modal, and the admin panel's modals (admin-only)."""

from __future__ import annotations

from slack_bolt import Ack, App, BoltContext

from bot.flows import submission as submission_flow
from bot.flows import upload as upload_flow
from bot.flows.admin_command import run_admin_command
from bot.listeners import uploads as upload_listener
from bot.listeners.authz import require_admin
from bot.posts import replies
from bot.services import hints, uploads
from bot.views import home as home_views
from bot.views import puzzle as puzzle_views
from bot.views.announcements import HINT_MODAL_CALLBACK, read_hint_modal
from storage.db import session_scope
from storage.models import utcnow


def register(app: App) -> None:
    app.view(puzzle_views.SUBMIT_MODAL_CALLBACK)(submit_solution)
    for callback_id in home_views.ADMIN_MODALS:
        app.view(callback_id, middleware=[require_admin])(admin_modal_submitted)
    app.view(HINT_MODAL_CALLBACK, middleware=[require_admin])(hint_modal_submitted)


def _value(view: dict, block_id: str, action_id: str) -> dict:
    return view.get("state", {}).get("values", {}).get(block_id, {}).get(action_id, {}) or {}


def submit_solution(ack: Ack, body: dict, view: dict, context: BoltContext) -> None:
    files = _value(view, puzzle_views.FILE_BLOCK, puzzle_views.FILE_ACTION).get("files") or []
    url = (
        _value(view, puzzle_views.WRITEUP_BLOCK, puzzle_views.WRITEUP_ACTION).get("value") or ""
    ).strip()
    errors: dict[str, str] = {}
    if len(files) != 1:
        errors[puzzle_views.FILE_BLOCK] = "Attach one .py or .ipynb file."
    else:
        try:
            if not uploads.needs_file_info(files[0]):  # a stub is checked after files.info
                uploads.check_file_metadata(files[0])
        except uploads.UploadError as exc:
            errors[puzzle_views.FILE_BLOCK] = str(exc)[:150]
    if url and not url.startswith(("https://", "http://")):
        errors[puzzle_views.WRITEUP_BLOCK] = "A write-up link starts with https://"
    if errors:
        ack(response_action="errors", errors=errors)
        return
    user_id = body["user"]["id"]
    # Recorded before the ack: a bot killed after it still stores the upload (recovery).
    with session_scope(context["db"]) as session:
        recorded = upload_flow.record(
            session=session,
            settings=context["settings"],
            user_id=user_id,
            files=files[:1],
            writeup_url=url or None,
        )
    ack()
    upload_listener.hand_off([item.file_id for item in recorded if item.process], context)
    context["outbox"].wake()  # a refusal may be queued; the upload's thread wakes it again


def _admin_text(view: dict) -> str:
    """The modal's fields as the equivalent `/puzzle admin` command (one code path for both)."""
    callback = view["callback_id"]
    if callback == home_views.ADMIN_ROUND:
        return "round " + (_value(view, "command", "value").get("value") or "").strip()
    if callback == home_views.ADMIN_CREDIT:
        user = _value(view, "user", "value").get("selected_user") or ""
        kind = (_value(view, "kind", "value").get("selected_option") or {}).get("value", "")
        note = (_value(view, "note", "value").get("value") or "").replace('"', "'")
        return f'credit <@{user}> {kind} "{note}"'
    if callback == home_views.ADMIN_REVERIFY:
        return "reverify " + (_value(view, "submission", "value").get("value") or "").strip()
    if callback == home_views.ADMIN_GRANT:
        return f"grant <@{_value(view, 'user', 'value').get('selected_user') or ''}>"
    raise KeyError(callback)


def admin_modal_submitted(ack: Ack, body: dict, view: dict, context: BoltContext) -> None:
    ack()
    user_id = body["user"]["id"]
    settings = context["settings"]
    with submission_flow.unit_of_work(context["db"], settings) as session:
        reply = run_admin_command(
            session=session,
            settings=settings,
            actor_id=user_id,
            text=_admin_text(view),
            authorized=True,  # require_admin checked and audited this request
        )
        replies.admin_result(session=session, view_id=view.get("id"), user_id=user_id, reply=reply)
    context["outbox"].wake()


def hint_modal_submitted(ack: Ack, body: dict, view: dict, context: BoltContext) -> None:
    """The hint modal (date-time picker): saved at once, so a refusal shows on the form."""
    user_id = body["user"]["id"]
    settings = context["settings"]
    round_id, hint_id, release_at, text = read_hint_modal(view)
    with session_scope(context["db"]) as session:
        try:
            with session.begin_nested():
                hint = hints.save_from_modal(
                    session=session,
                    round_id=round_id,
                    hint_id=hint_id,
                    release_at=release_at,
                    text=text,
                    actor_id=user_id,
                    now=utcnow(),
                    settings=settings,
                )
        except (hints.HintError, ValueError, LookupError) as exc:
            ack(response_action="errors", errors={"release_at": str(exc)[:150]})
            return
        ack()
        replies.admin_info(
            session=session,
            view_id=view.get("id"),
            user_id=user_id,
            text="Scheduled " + hints.describe_hint(hint, tz=settings.timezone),
        )
    context["outbox"].wake()
