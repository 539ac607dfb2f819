"""The upload flow: Slack file -> download -> stored submission -> queued -> user notified.

One function for both ways in (a DM file share and the submit modal), so both behave the same:
the file is fetched from Slack with the bot token (only from Slack's file hosts or the configured
API host, never following a redirect elsewhere, size-capped), the submission is created by
``submissions.create_submission`` (blob store, dedup by Slack file id, enqueue), and the status
message is queued in the user's DM. Bad files get a short explanation, never a stack trace.

Nothing acknowledged is lost: before Slack gets its ack, ``record_inbound`` writes the file to
``inbound_uploads`` (one short transaction, with the event id); the download and the submission
come after the ack (``process_inbound``), and the row is marked done in the transaction that
creates the submission. A process killed in between leaves the row pending: a starting bot and
the scheduler's sweep (``recover_pending``) process it, a bounded number of times.
"""

from __future__ import annotations

import contextlib
import logging
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot import outbox
from bot.services import notifications, rounds, users
from bot.settings import Settings
from storage.db import session_scope
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
    tried again by ``recover_pending``, never refused for good on the first hiccup."""


class UploadError(ValueError):
    """The file cannot become a submission; the message is shown to the user."""


@dataclass(frozen=True)
class UploadOutcome:
    submission_id: int | None
    duplicate: bool = False
    error: str | None = None
    pending: bool = False  # a transient failure: left for recover_pending to try again


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
    error: str | None = None  # refused on arrival (the user was told, unless report=False)


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
    report: bool = True,
) -> list[Recorded]:
    """Record acknowledged files in the caller's (short) transaction, before Slack gets its ack.

    Only a cheap metadata check happens here (a file that fails it is refused at once and the user
    told in the same transaction); downloading and storing happen after the ack
    (``process_inbound``). A file id already recorded is processed again only if it is still
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
        if error is not None and report:
            _tell(session=session, row=row, text=error)
        recorded.append(Recorded(file_id, process=error is None, error=error))
    return recorded


def process_inbound(
    *,
    session_factory: sessionmaker[Session],
    settings: Settings,
    file_id: str,
    now: datetime | None = None,
    fetch: Callable[[str], bytes] | None = None,
    report: bool = True,
) -> UploadOutcome:
    """Download a recorded file and store it as a submission (marked done in that transaction).

    A refusal marks the row refused and (``report``) tells the user, in one transaction. Any
    other failure leaves the row pending for ``recover_pending``; after ``MAX_ATTEMPTS`` tries
    the user is told to upload the file again.
    """
    now = now or utcnow()
    try:
        with session_scope(session_factory) as session:
            row = session.get(InboundUpload, file_id, with_for_update=True)
            if row is None or row.status != InboundStatus.PENDING:
                return UploadOutcome(row.submission_id if row else None, duplicate=True)
            name = str(row.file.get("name") or row.file.get("title") or "your file")
            if row.attempts >= MAX_ATTEMPTS:
                text = (
                    f"I could not store `{name}` after {row.attempts} tries "
                    f"({row.last_error or 'the bot was restarted'}). Please upload it again."
                )
                _refuse(session=session, row=row, text=text, report=report)
                return UploadOutcome(submission_id=None, error=text)
            row.attempts += 1
            row.last_attempt_at = now
            received_at = row.received_at
            round_ = rounds.current(session=session, now=received_at)
            if round_ is None:
                raise UploadError("There is no open round right now, so nothing to submit to.")
            round_id = round_.id
            file = dict(row.file)
        if fetch is None and needs_file_info(file):
            file = as_solution_file({**file, **file_info(str(file.get("id")), settings=settings)})
            check_file_metadata(file, max_bytes=max_upload_bytes(settings))
        url = file.get("url_private_download") or file.get("url_private")
        content = (
            fetch(url)
            if fetch
            else download(url, settings=settings, max_bytes=max_upload_bytes(settings))
        )
        with session_scope(session_factory) as session:
            row = session.get(InboundUpload, file_id, with_for_update=True)
            if row is None or row.status != InboundStatus.PENDING:
                return UploadOutcome(row.submission_id if row else None, duplicate=True)
            users.ensure(session=session, user_id=row.user_id, dm_channel=row.dm_channel)
            submission = _create(
                session=session,
                round_id=round_id,
                user_id=row.user_id,
                filename=str(file.get("name")),
                content=content,
                slack_file_id=file.get("id") or None,
                dm_channel=row.dm_channel,
                thread_ts=row.thread_ts,
                writeup_url=row.writeup_url,
                now=received_at,
            )
            row.status, row.submission_id, row.last_error = InboundStatus.DONE, submission.id, None
            notifications.submission_updated(session=session, submission_id=submission.id, now=now)
            return UploadOutcome(submission_id=submission.id)
    except UploadError as exc:
        with session_scope(session_factory) as session:
            row = session.get(InboundUpload, file_id, with_for_update=True)
            if row is None or row.status != InboundStatus.PENDING:
                return UploadOutcome(row.submission_id if row else None, duplicate=True)
            _refuse(session=session, row=row, text=str(exc), report=report)
        return UploadOutcome(submission_id=None, error=str(exc))
    except TransientDownloadError as exc:  # Slack or the network, for now: try again later
        log.warning("upload %s not downloaded yet (%s); it will be retried", file_id, exc)
        with contextlib.suppress(Exception), session_scope(session_factory) as session:
            row = session.get(InboundUpload, file_id)
            if row is not None and row.status == InboundStatus.PENDING:
                row.last_error = str(exc)[:500]
        return UploadOutcome(submission_id=None, pending=True)
    except Exception as exc:  # database or bug: stays pending, retried by recover_pending
        log.exception("upload %s not stored yet; it will be retried", file_id)
        with contextlib.suppress(Exception), session_scope(session_factory) as session:
            row = session.get(InboundUpload, file_id)
            if row is not None and row.status == InboundStatus.PENDING:
                row.last_error = f"{type(exc).__name__}: {exc}"[:500]
        raise


def recover_pending(
    *,
    session_factory: sessionmaker[Session],
    settings: Settings,
    now: datetime | None = None,
    received_before: datetime | None = None,
    limit: int = 50,
) -> int:
    """Process pending uploads whose processing was lost (a killed or failed process).

    Without ``received_before``: the rows abandoned for ``STALE_AFTER``. With it (a bot starting):
    every row received before that moment, at once, as no process of ours can be working on them
    any more (if another instance still is, the file is downloaded twice but stored once: the
    row is marked done in the transaction that creates the submission). Returns rows handled.
    """
    if settings.slack_bot_token is None:
        return 0  # nothing could download them here
    now = now or utcnow()
    query = select(InboundUpload.file_id).where(InboundUpload.status == InboundStatus.PENDING)
    if received_before is not None:
        query = query.where(InboundUpload.received_at < received_before)
    else:
        stale = now - STALE_AFTER
        query = query.where(
            InboundUpload.received_at <= stale,
            or_(InboundUpload.last_attempt_at.is_(None), InboundUpload.last_attempt_at <= stale),
        )
    with session_scope(session_factory) as session:
        file_ids = list(session.scalars(query.order_by(InboundUpload.received_at).limit(limit)))
    handled = 0
    for file_id in file_ids:
        try:
            outcome = process_inbound(
                session_factory=session_factory, settings=settings, file_id=file_id, now=now
            )
            handled += not outcome.pending
        except Exception:  # logged by process_inbound; the row stays pending
            continue
    if file_ids:
        log.info("recovered %d of %d pending upload(s)", handled, len(file_ids))
    return handled


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
    fetch: Callable[[str], bytes] | None = None,
) -> UploadOutcome:
    """Record and process one Slack file in one go (a second call for the same file id does nothing).

    The caller shows ``outcome.error`` itself. ``fetch(url) -> bytes`` replaces the Slack
    download (the console passes the local file).
    """
    now = now or utcnow()
    with session_scope(session_factory) as session:
        (recorded,) = record_inbound(
            session=session,
            settings=settings,
            user_id=user_id,
            files=[file],
            dm_channel=dm_channel,
            thread_ts=thread_ts,
            writeup_url=writeup_url,
            now=now,
            report=False,
        )
    if recorded.error is not None:
        return UploadOutcome(submission_id=None, error=recorded.error)
    if not recorded.process:
        return UploadOutcome(submission_id=None, duplicate=True)
    return process_inbound(
        session_factory=session_factory,
        settings=settings,
        file_id=recorded.file_id,
        now=now,
        fetch=fetch,
        report=False,
    )


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


def _refuse(*, session: Session, row: InboundUpload, text: str, report: bool) -> None:
    row.status, row.last_error = InboundStatus.REFUSED, text
    if report:
        _tell(session=session, row=row, text=text)


def _tell(*, session: Session, row: InboundUpload, text: str) -> None:
    """A reply under the file's message in the DM; a DM message for the submit modal."""
    report_error(
        session=session,
        key=f"file:{row.file_id}:error",
        user_id=row.user_id,
        text=text,
        channel=row.dm_channel,
        thread_ts=row.thread_ts,
    )


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
    thread_ts: str | None = None,
) -> None:
    """Tell the user why their file was not accepted, as a message in their DM with the bot.

    Not an ephemeral message: Slack shows those only to a user active in that conversation at
    that moment, and a refusal often comes minutes after the upload. Threaded under the file's
    message when there is one.
    """
    from bot.views.puzzle import build_error_message

    payload: dict = {"channel": channel or user_id, **build_error_message(text)}
    if thread_ts:
        payload["thread_ts"] = thread_ts
    outbox.enqueue(session=session, key=key, method="chat_postMessage", payload=payload)
