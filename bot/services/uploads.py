"""Uploads: Slack's file objects checked, recorded (``inbound_uploads``) and downloaded.

Both ways in (a DM file share and the submit modal) go through the same steps, run by the upload
flow (``bot.flows.upload``): the file is recorded before Slack gets its ack
(``record_inbound``), then fetched from Slack with the bot token (only from Slack's file hosts or
the configured API host, never following a redirect elsewhere, size-capped) and stored as a
submission, the row marked done in that transaction (``store``). Bad files get a short
explanation (``UploadError``), never a stack trace. Nothing here posts: refusals are returned
for the flow to tell.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.services import rounds, submissions, users
from bot.settings import Settings
from storage.models import InboundStatus, InboundUpload, Submission, utcnow

log = logging.getLogger(__name__)

ALLOWED_SUFFIXES = (".py", ".ipynb")
MAX_UPLOAD_BYTES = 1_000_000
SLACK_FILE_HOSTS = frozenset({"files.slack.com", "slack-files.com", "files-origin.slack.com"})
DOWNLOAD_TIMEOUT_S = 20.0
STALE_AFTER = timedelta(seconds=45)  # a pending upload nobody has tried for this long is retried
MAX_ATTEMPTS = 5
FILE_KEYS = (
    "id",
    "name",
    "title",
    "size",
    "url_private_download",
    "url_private",
    "mode",
    "file_access",
    "is_external",
)
MAX_FILES_PER_MESSAGE = 3  # one message's files we take; more are refused with a message


class TransientDownloadError(RuntimeError):
    """Slack or the network failed for now (timeout, 5xx, 429): the upload stays pending and is
    tried again by ``bot.flows.upload.recover``, never refused for good on the first hiccup."""


class UploadError(ValueError):
    """The file cannot become a submission; the message is shown to the user."""


@dataclass(frozen=True)
class UploadOutcome:
    submission_id: int | None
    duplicate: bool = False
    error: str | None = None
    pending: bool = False  # a transient failure: left for the recovery to try again


def as_solution_file(file: dict) -> dict:
    """A Python snippet written in Slack's composer has its title as name, without ``.py``:
    take it as the ``.py`` file it is."""
    name = str(file.get("name") or file.get("title") or "")
    is_python_snippet = file.get("mode") == "snippet" and file.get("filetype") == "python"
    if is_python_snippet and name and not name.lower().endswith(ALLOWED_SUFFIXES):
        return {**file, "name": name + ".py"}
    return file


def needs_file_info(file: dict) -> bool:
    """Slack sent only a stub: a Slack Connect file (``file_access: check_file_info``) or one
    without name or link; ``files.info`` gives the rest (after the ack)."""
    if file.get("mode") == "hidden_by_limit":
        return False  # files.info hides it too
    if file.get("file_access") == "check_file_info":
        return True
    return bool(file.get("id")) and not (
        file.get("name") and (file.get("url_private_download") or file.get("url_private"))
    )


def check_file_metadata(file: dict, *, max_bytes: int = MAX_UPLOAD_BYTES) -> None:
    """Cheap checks on Slack's file object, before downloading anything."""
    if file.get("mode") == "hidden_by_limit":
        raise UploadError(
            "Slack hides that file from apps: this workspace's plan limits how much file history "
            "apps can see. Upload the file again (a fresh upload is visible), or use "
            "`/puzzle submit`."
        )
    if file.get("mode") == "external" or file.get("is_external"):
        raise UploadError(
            "that file is a link to another service (e.g. Google Drive), which I cannot download: "
            "upload the `.py` or `.ipynb` file itself."
        )
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
        if exc.code == 429 or exc.code >= 500:
            raise TransientDownloadError(f"download failed for now (HTTP {exc.code})") from exc
        raise UploadError(f"Slack refused the download (HTTP {exc.code}).") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise TransientDownloadError(f"download failed for now ({exc})") from exc
    if len(data) > max_bytes:
        raise UploadError(f"the file is over {max_bytes // 1000} kB.")
    return data


@dataclass(frozen=True)
class Recorded:
    """One file of a delivery, as recorded before the ack."""

    file_id: str
    process: bool  # this delivery processes it (new, or pending and abandoned)
    error: str | None = None  # refused on arrival (the flow tells the user)


def dm_file_shares(event: dict) -> list[dict]:
    """The files of a user's file share in a DM with the bot; [] for anything else.

    All of them: ``record_inbound`` refuses those past ``MAX_FILES_PER_MESSAGE`` with a message,
    rather than dropping them unseen.
    """
    if event.get("type") != "message" or event.get("channel_type") != "im":
        return []
    if event.get("bot_id") or not event.get("user") or event.get("subtype") != "file_share":
        return []
    return [f for f in event.get("files") or [] if isinstance(f, dict)]


def inbound_id(file: dict) -> str:
    return str(file.get("id") or "") or f"noid-{uuid.uuid4().hex}"


def _abandoned(row: InboundUpload, now: datetime) -> bool:
    """Pending, and nobody has tried it for ``STALE_AFTER`` (its processor died or failed)."""
    return (row.last_attempt_at or row.received_at) <= now - STALE_AFTER


def record_inbound(
    *,
    session: Session,
    settings: Settings,
    user_id: str,
    files: list[dict],
    dm_channel: str | None = None,
    thread_ts: str | None = None,
    writeup_url: str | None = None,
    now: datetime | None = None,
) -> list[Recorded]:
    """Record acknowledged files in the caller's (short) transaction, before Slack gets its ack.

    Only a cheap metadata check happens here (a file that fails it is refused at once: the flow
    tells the user in the same transaction); downloading and storing happen after the ack
    (``bot.flows.upload.store``). A file id already recorded is processed again only if it is still
    pending and abandoned, so Slack's retries and double clicks download nothing twice.
    """
    now = now or utcnow()
    recorded: list[Recorded] = []
    for index, file in enumerate(files):
        file = as_solution_file(file)
        file_id = inbound_id(file)
        row = session.get(InboundUpload, file_id)
        if row is not None:
            stale = row.status == InboundStatus.PENDING and _abandoned(row, now)
            recorded.append(Recorded(file_id, process=stale))
            continue
        meta = {k: file[k] for k in FILE_KEYS if file.get(k) is not None}
        row = InboundUpload(
            file_id=file_id,
            user_id=user_id,
            dm_channel=dm_channel,
            thread_ts=thread_ts,
            file=meta,
            writeup_url=writeup_url,
            status=InboundStatus.PENDING,
            attempts=0,
            received_at=now,
        )
        error = None
        try:
            if index >= MAX_FILES_PER_MESSAGE:
                name = file.get("name") or file.get("title") or "this file"
                raise UploadError(
                    f"I take at most {MAX_FILES_PER_MESSAGE} files per message, so `{name}` was "
                    "not submitted: send it in a message of its own."
                )
            if not needs_file_info(file):  # a stub is checked once files.info filled it in
                check_file_metadata(file, max_bytes=max_upload_bytes(settings))
        except UploadError as exc:
            error = str(exc)
            row.status, row.last_error = InboundStatus.REFUSED, error
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:  # another delivery of the same file recorded it just now
            recorded.append(Recorded(file_id, process=False))
            continue
        recorded.append(Recorded(file_id, process=error is None, error=error))
    return recorded


def file_info(file_id: str, *, settings: Settings) -> dict:
    """The full file object (``files.info``) for a stub Slack sent in a file share."""
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError

    assert settings.slack_bot_token is not None
    client = WebClient(
        token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url
    )
    try:
        info = client.files_info(file=file_id)
    except SlackApiError as exc:
        error = exc.response.get("error") if exc.response is not None else str(exc)
        if error in ("file_not_found", "file_deleted", "access_denied", "not_visible"):
            raise UploadError(
                f"Slack would not show me that file ({error}); upload it to me directly."
            ) from exc
        raise TransientDownloadError(f"files.info failed for now ({error})") from exc
    except OSError as exc:
        raise TransientDownloadError(f"files.info failed for now ({exc})") from exc
    found = info.get("file") or {}
    return {k: found[k] for k in FILE_KEYS if found.get(k) is not None}


# -- one attempt at storing a recorded file (``bot.flows.upload`` runs them in order) ---------


def lock_pending(*, session: Session, file_id: str) -> InboundUpload | None:
    """The row, locked, if it still waits to be stored; None when done, refused or unknown."""
    row = session.get(InboundUpload, file_id, with_for_update=True)
    if row is None or row.status != InboundStatus.PENDING:
        return None
    return row


def already_handled(*, session: Session, file_id: str) -> UploadOutcome:
    """What a second processor of a file someone else finished reports."""
    row = session.get(InboundUpload, file_id)
    return UploadOutcome(row.submission_id if row else None, duplicate=True)


def exhausted(row: InboundUpload) -> str | None:
    """The message for a file tried ``MAX_ATTEMPTS`` times already, else None."""
    if row.attempts < MAX_ATTEMPTS:
        return None
    name = str(row.file.get("name") or row.file.get("title") or "your file")
    return (
        f"I could not store `{name}` after {row.attempts} tries "
        f"({row.last_error or 'the bot was restarted'}). Please upload it again."
    )


@dataclass(frozen=True)
class Attempt:
    """What the download needs, read in the attempt's first (short) transaction."""

    round_id: int
    received_at: datetime
    file: dict[str, Any]


def begin_attempt(*, session: Session, row: InboundUpload, now: datetime) -> Attempt:
    """Count the attempt and find the round the file was sent to (open when it arrived)."""
    row.attempts += 1
    row.last_attempt_at = now
    round_ = rounds.current(session=session, now=row.received_at)
    if round_ is None:
        raise UploadError("There is no open round right now, so nothing to submit to.")
    return Attempt(round_id=round_.id, received_at=row.received_at, file=dict(row.file))


def fetch_content(
    attempt: Attempt, *, settings: Settings, fetch: Any = None
) -> tuple[dict[str, Any], bytes]:
    """The file object (completed by ``files.info`` for a stub) and its bytes, outside any
    transaction; ``fetch(url) -> bytes`` replaces the Slack download (the console)."""
    file = attempt.file
    if fetch is None and needs_file_info(file):
        file = as_solution_file({**file, **file_info(str(file.get("id")), settings=settings)})
        check_file_metadata(file, max_bytes=max_upload_bytes(settings))
    url = file.get("url_private_download") or file.get("url_private")
    if fetch is not None:
        return file, fetch(url)
    return file, download(url, settings=settings, max_bytes=max_upload_bytes(settings))


def store(
    *,
    session: Session,
    row: InboundUpload,
    attempt: Attempt,
    file: dict[str, Any],
    content: bytes,
) -> Submission:
    """Create the submission and mark the row done, in one transaction."""
    users.ensure(session=session, user_id=row.user_id, dm_channel=row.dm_channel)
    try:
        submission = submissions.create_submission(
            session=session,
            round_id=attempt.round_id,
            user_id=row.user_id,
            filename=str(file.get("name")),
            content=content,
            slack_file_id=file.get("id") or None,
            dm_channel=row.dm_channel,
            thread_ts=row.thread_ts,
            writeup_url=row.writeup_url,
            now=attempt.received_at,
        )
    except submissions.SubmissionRejected as exc:  # daily limit, duplicate, bad file ...
        raise UploadError(str(exc)) from exc
    row.status, row.submission_id, row.last_error = InboundStatus.DONE, submission.id, None
    return submission


def refuse(row: InboundUpload, text: str) -> None:
    row.status, row.last_error = InboundStatus.REFUSED, text


def note_error(*, session: Session, file_id: str, error: str) -> None:
    """Keep why the last attempt failed on a row that stays pending."""
    row = session.get(InboundUpload, file_id)
    if row is not None and row.status == InboundStatus.PENDING:
        row.last_error = error[:500]


def abandoned_ids(
    *, session: Session, now: datetime, received_before: datetime | None, limit: int
) -> list[str]:
    """Pending uploads whose processing was lost: abandoned for ``STALE_AFTER``, or (a bot
    starting, ``received_before``) every one received before that moment."""
    query = select(InboundUpload.file_id).where(InboundUpload.status == InboundStatus.PENDING)
    if received_before is not None:
        query = query.where(InboundUpload.received_at < received_before)
    else:
        stale = now - STALE_AFTER
        query = query.where(
            InboundUpload.received_at <= stale,
            or_(InboundUpload.last_attempt_at.is_(None), InboundUpload.last_attempt_at <= stale),
        )
    return list(session.scalars(query.order_by(InboundUpload.received_at).limit(limit)))
