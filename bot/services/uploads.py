"""The upload flow: Slack file -> download -> stored submission -> queued -> user notified.

One function for both ways in (a DM file share and the submit modal), so both behave the same:
the file is fetched from Slack with the bot token (only from Slack's file hosts or the configured
API host, never following a redirect elsewhere, size-capped), the submission is created by
``submissions.create_submission`` (blob store, dedup by Slack file id, enqueue), and the status
message is queued in the user's DM. Bad files get a short explanation, never a stack trace.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy.orm import Session, sessionmaker

from bot import outbox
from bot.services import deliveries, notifications, rounds, users
from bot.settings import Settings
from storage.db import session_scope
from storage.models import Submission, utcnow

log = logging.getLogger(__name__)

ALLOWED_SUFFIXES = (".py", ".ipynb")
MAX_UPLOAD_BYTES = 1_000_000
SLACK_FILE_HOSTS = frozenset({"files.slack.com", "slack-files.com", "files-origin.slack.com"})
DOWNLOAD_TIMEOUT_S = 20.0


class UploadError(ValueError):
    """The file cannot become a submission; the message is shown to the user."""


@dataclass(frozen=True)
class UploadOutcome:
    submission_id: int | None
    duplicate: bool = False
    error: str | None = None


def check_file_metadata(file: dict, *, max_bytes: int = MAX_UPLOAD_BYTES) -> None:
    """Cheap checks on Slack's file object, before downloading anything."""
    name = str(file.get("name") or file.get("title") or "")
    if not name.lower().endswith(ALLOWED_SUFFIXES):
        raise UploadError(
            f"`{name or 'that file'}` is not a solution file: send a `.py` or `.ipynb` file."
        )
    size = int(file.get("size") or 0)
    if size > max_bytes:
        raise UploadError(f"`{name}` is {size // 1000} kB; the limit is {max_bytes // 1000} kB.")
    if not (file.get("url_private_download") or file.get("url_private")):
        raise UploadError(f"Slack did not give me a download link for `{name}`; try again.")


def max_upload_bytes(settings: Settings) -> int:
    return int(getattr(settings, "max_upload_bytes", MAX_UPLOAD_BYTES))


def allowed_download_url(url: str, *, settings: Settings) -> bool:
    parts = urlsplit(url)
    api_host = urlsplit(settings.slack_api_url).hostname
    if parts.hostname == api_host:  # a fake or proxied Slack in tests/staging
        return parts.scheme in ("http", "https")
    return parts.scheme == "https" and parts.hostname in SLACK_FILE_HOSTS


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None  # a redirect away from Slack is refused, not followed


def download(url: str, *, settings: Settings, max_bytes: int = MAX_UPLOAD_BYTES) -> bytes:
    """The file's bytes, fetched with the bot token; refuses foreign hosts and oversized bodies."""
    if not allowed_download_url(url, settings=settings):
        raise UploadError("that file link does not point at Slack; I only download Slack files.")
    assert settings.slack_bot_token is not None
    request = urllib.request.Request(
        url, headers={"Authorization": f"Bearer {settings.slack_bot_token.get_secret_value()}"}
    )
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=DOWNLOAD_TIMEOUT_S) as response:
            if "text/html" in (response.headers.get("Content-Type") or ""):
                # Slack answers an unauthorized download with its login page, not an error.
                raise UploadError("Slack did not let me download the file; try uploading again.")
            data = response.read(max_bytes + 1)
    except urllib.error.HTTPError as exc:
        raise UploadError(f"Slack refused the download (HTTP {exc.code}).") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise UploadError("I could not download the file from Slack; try again shortly.") from exc
    if len(data) > max_bytes:
        raise UploadError(f"the file is over {max_bytes // 1000} kB.")
    return data


def receive_upload(
    *,
    session_factory: sessionmaker[Session],
    settings: Settings,
    user_id: str,
    file: dict,
    dm_channel: str | None = None,
    thread_ts: str | None = None,
    writeup_url: str | None = None,
    now: datetime | None = None,
    fetch=None,
) -> UploadOutcome:
    """Turn one Slack file into one submission (a second call for the same file id does nothing).

    ``fetch(url) -> bytes`` replaces the Slack download (the console passes the local file).
    """
    now = now or utcnow()
    file_id = str(file.get("id") or "")
    try:
        check_file_metadata(file, max_bytes=max_upload_bytes(settings))
        with session_scope(session_factory) as session:
            if file_id and not deliveries.first_delivery(session=session, key=f"file:{file_id}"):
                return UploadOutcome(submission_id=None, duplicate=True)
            round_ = rounds.current(session=session, now=now)
            if round_ is None:
                raise UploadError("There is no open round right now, so nothing to submit to.")
            round_id = round_.id
        url = file.get("url_private_download") or file.get("url_private")
        content = (
            fetch(url)
            if fetch
            else download(url, settings=settings, max_bytes=max_upload_bytes(settings))
        )
        with session_scope(session_factory) as session:
            users.ensure(session=session, user_id=user_id, dm_channel=dm_channel)
            submission = _create(
                session=session,
                round_id=round_id,
                user_id=user_id,
                filename=str(file.get("name")),
                content=content,
                slack_file_id=file_id or None,
                dm_channel=dm_channel,
                thread_ts=thread_ts,
                writeup_url=writeup_url,
                now=now,
            )
            notifications.submission_updated(session=session, submission_id=submission.id, now=now)
            return UploadOutcome(submission_id=submission.id)
    except UploadError as exc:
        return UploadOutcome(submission_id=None, error=str(exc))


def _create(*, session: Session, **kwargs) -> Submission:
    from bot.services import submissions

    try:
        return submissions.create_submission(session=session, **kwargs)
    except submissions.SubmissionRejected as exc:  # daily limit, duplicate, bad file ...
        raise UploadError(str(exc)) from exc


def report_error(
    *,
    session: Session,
    key: str,
    user_id: str,
    text: str,
    channel: str | None = None,
    ephemeral: bool = True,
) -> None:
    """Tell the user why their file was not accepted (ephemeral in the DM where it was shared)."""
    from bot.views.puzzle import build_error_message

    body = build_error_message(text)
    if ephemeral and channel:
        outbox.enqueue(
            session=session,
            key=key,
            method="chat_postEphemeral",
            payload={"channel": channel, "user": user_id, **body},
        )
    else:
        outbox.enqueue(
            session=session,
            key=key,
            method="chat_postMessage",
            payload={"channel": channel or user_id, **body},
        )
