"""Every Slack post goes through here: queued in the database under an idempotency key, sent once.

``enqueue`` writes a row in the caller's transaction (so a post exists iff the state change that
caused it committed); ``dispatch_pending`` sends due rows with a slack_sdk ``WebClient`` and
records the Slack ``ts``. Restarts never re-post (the key is unique) and never lose a post (the row
stays pending until Slack accepted it). Failures back off exponentially; Slack's ``ratelimited``
answer is honoured by waiting its ``Retry-After``; posts to one channel are paced to about one per
second, which is Slack's documented limit for ``chat.postMessage``.

``thread_key`` names another row: once that row is sent, its ``ts`` becomes this message's
``thread_ts`` (for ``chat_update`` it is the message to edit: its ``ts`` and channel; for
``pins_add`` the message to pin: its ``timestamp`` and channel). A reply, an edit or a pin can
therefore be queued before its parent has been posted.

Exactly once across crashes: a process can die after Slack accepted a post but before the row is
marked sent; its claim then expires and another dispatcher picks the row up again. So every
``chat_postMessage`` carries the row's key as message metadata (``event_type``
``circuitboard_outbox``), and a row that was attempted before (``attempts > 0``) is first looked up
in its channel (``conversations.replies`` for a thread reply, else ``conversations.history``, with
``include_all_metadata``, newest messages since the row was created): if Slack already holds it, its
``ts`` is recorded and nothing is posted. ``files_upload_v2`` is looked up the same way by the shared
file's name and title in that channel or thread (give each plot row a unique filename).
``chat_update`` and ``views_publish`` are idempotent by nature, and ``pins_add`` answering
``already_pinned`` counts as success. ``chat_postEphemeral`` cannot be read back (Slack keeps no
copy): a crash in that window may show the user an ephemeral note twice.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from slack_sdk.errors import SlackApiError
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from storage.db import session_scope
from storage.models import OutboxMessage, OutboxStatus, utcnow

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
BACKOFF_BASE_S = 2.0
BACKOFF_MAX_S = 300.0
CLAIM_S = 60.0
PER_CHANNEL_INTERVAL_S = 1.0
# Errors that no retry can fix: give up at once (the row stays visible as failed).
FATAL_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_auth",
        "account_inactive",
        "token_revoked",
        "no_permission",
        "missing_scope",
        "invalid_blocks",
        "msg_too_long",
        "msg_blocks_too_long",
        "no_text",
        "invalid_arguments",
        "user_not_found",
        "cant_update_message",
        "message_not_found",
    }
)
# Slack's size rules for one message: at most 50 blocks whose JSON stays under about 12k
# characters (else msg_blocks_too_long), and text of about 12k characters at most. A bigger post
# is queued as several (``split_message``), never retried as it is.
MESSAGE_BLOCKS_MAX = 50
MESSAGE_BLOCKS_JSON_MAX = 11_500
MESSAGE_TEXT_MAX = 12_000
METADATA_EVENT_TYPE = "circuitboard_outbox"
LOOKUP_MARGIN_S = 600.0  # clock skew between us and Slack, when bounding the lookup
LOOKUP_PAGE = 100
LOOKUP_PAGES = 5
SENDING_METHODS = frozenset(
    {"chat_postMessage", "chat_update", "chat_postEphemeral", "files_upload_v2", "pins_add"}
)
# Paced per channel: the methods that add a message (Slack's one-per-second guidance is for
# posting). Edits and pins are limited per workspace, not per channel: a status edit must not
# hold the verdict behind it for a second.
PACED_METHODS = frozenset({"chat_postMessage", "chat_postEphemeral", "files_upload_v2"})
# Methods whose earlier attempt is looked up in Slack before a retry (the others are idempotent,
# or, for ephemeral messages, cannot be read back).
READ_BACK_METHODS = frozenset({"chat_postMessage", "files_upload_v2"})


def enqueue(
    *,
    session: Session,
    key: str,
    method: str,
    payload: dict[str, Any],
    thread_key: str | None = None,
    not_before: datetime | None = None,
) -> OutboxMessage:
    """Queue one Slack call; a second call with the same key returns the existing row unchanged.

    For ``files_upload_v2`` put the bytes in ``payload["content_b64"]`` (payloads are JSON). A
    ``chat_postMessage`` past Slack's size rules is queued as consecutive posts (``key``, then
    ``key:part2`` ...), each within them; the first row is returned.
    """
    parts = split_message(payload) if method == "chat_postMessage" else [payload]
    first = _enqueue_one(
        session=session,
        key=key,
        method=method,
        payload=parts[0],
        thread_key=thread_key,
        not_before=not_before,
    )
    for number, part in enumerate(parts[1:], start=2):
        _enqueue_one(
            session=session,
            key=f"{key}:part{number}",
            method=method,
            payload=part,
            thread_key=thread_key,
            not_before=not_before,
        )
    return first


def _cut_text(text: str, limit: int) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters, cut at line ends where possible and
    never inside a ``<...>`` link or mention."""
    pieces: list[str] = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit)
        if cut < limit // 2:
            cut = limit
            opened = text.rfind("<", 0, cut)
            if opened > text.rfind(">", 0, cut) and opened > 0:
                cut = opened  # do not split <https://...|label> or <@U...>
        pieces.append(text[:cut])
        text = text[cut:].lstrip("\n")
    return [*pieces, text]


def split_message(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """One ``chat_postMessage`` payload as one or more, each within Slack's size rules.

    Blocks are grouped in order (at most 50, JSON under the limit); text-only messages are cut at
    line ends. Later parts keep the channel and thread and say they continue the first.
    """
    import json

    blocks = payload.get("blocks") or []
    text = str(payload.get("text") or "")
    size = len(json.dumps(blocks))
    if len(blocks) <= MESSAGE_BLOCKS_MAX and size <= MESSAGE_BLOCKS_JSON_MAX:
        if blocks or len(text) <= MESSAGE_TEXT_MAX:
            return [payload]
        texts = _cut_text(text, MESSAGE_TEXT_MAX)
        return [{**payload, "text": piece} for piece in texts]
    groups: list[list[dict[str, Any]]] = [[]]
    group_size = 2
    for block in blocks:
        block_size = len(json.dumps(block)) + 2
        if groups[-1] and (
            len(groups[-1]) >= MESSAGE_BLOCKS_MAX
            or group_size + block_size > MESSAGE_BLOCKS_JSON_MAX
        ):
            groups.append([])
            group_size = 2
        groups[-1].append(block)
        group_size += block_size
    total = len(groups)
    parts = []
    for number, group in enumerate(groups, start=1):
        part_text = text if number == 1 else f"(continued, {number}/{total}) {text}"
        parts.append({**payload, "text": part_text[:MESSAGE_TEXT_MAX], "blocks": group})
    return parts


def _enqueue_one(
    *,
    session: Session,
    key: str,
    method: str,
    payload: dict[str, Any],
    thread_key: str | None,
    not_before: datetime | None,
) -> OutboxMessage:
    existing = session.scalars(
        select(OutboxMessage).where(OutboxMessage.idempotency_key == key)
    ).first()
    if existing is not None:
        return existing
    for pending in session.new:  # queued earlier in this same unflushed transaction
        if isinstance(pending, OutboxMessage) and pending.idempotency_key == key:
            return pending
    row = OutboxMessage(
        idempotency_key=key,
        method=method,
        payload=payload,
        thread_key=thread_key,
        status=OutboxStatus.PENDING,
        attempts=0,
        next_attempt_at=not_before or utcnow(),
        slack_channel=payload.get("channel"),
    )
    # A savepoint so that a concurrent insert of the same key loses quietly instead of
    # poisoning the caller's transaction.
    from sqlalchemy.exc import IntegrityError

    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return session.scalars(
            select(OutboxMessage).where(OutboxMessage.idempotency_key == key)
        ).one()
    return row


def get(*, session: Session, key: str) -> OutboxMessage | None:
    return session.scalars(
        select(OutboxMessage).where(OutboxMessage.idempotency_key == key)
    ).first()


class _Pacer:
    """Remembers when each channel last got a post, and methods Slack told us to slow down."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last_post: dict[str, float] = {}
        self.blocked_until: dict[str, float] = {}


_PACER = _Pacer()


def _backoff(attempts: int) -> float:
    return min(BACKOFF_MAX_S, BACKOFF_BASE_S ** max(1, attempts))


def _retry_after(error: SlackApiError) -> float:
    headers = getattr(error.response, "headers", {}) or {}
    for name, value in headers.items():
        if name.lower() == "retry-after":
            value = value[0] if isinstance(value, list) else value
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                break
    return 30.0


def _call(client: Any, method: str, payload: dict[str, Any], key: str) -> Any:
    kwargs = dict(payload)
    if method == "files_upload_v2":
        if "content_b64" in kwargs:
            kwargs["content"] = base64.b64decode(kwargs.pop("content_b64"))
        if kwargs.get("channel"):
            # Slack shares a file only into a conversation (C/G/D/Z...): a user id is refused
            # with invalid_arguments, so open (or find) the bot's DM with that user first.
            kwargs["channel"] = _lookup_channel(client, str(kwargs["channel"]))
    if method == "chat_postMessage":
        # The key travels with the post, so a retry can tell whether Slack already has it.
        kwargs["metadata"] = {"event_type": METADATA_EVENT_TYPE, "event_payload": {"key": key}}
    return getattr(client, method)(**kwargs)


class LookupUnavailable(Exception):
    """The read-back cannot work for this row (e.g. a missing scope): posting is the fallback."""


def _lookup_channel(client: Any, channel: str) -> str:
    """The conversation id for ``channel``: a user id becomes the bot's DM with them (only
    ``chat.postMessage`` accepts a user id; reading history and sharing files need the DM)."""
    if channel[:1] in ("U", "W"):
        response = client.conversations_open(users=channel)
        return str(response["channel"]["id"])
    return channel


def _matches(message: dict[str, Any], method: str, key: str, payload: dict[str, Any]) -> bool:
    if method == "chat_postMessage":
        metadata = message.get("metadata") or {}
        event_payload = metadata.get("event_payload") or {}
        return metadata.get("event_type") == METADATA_EVENT_TYPE and event_payload.get("key") == key
    # files_upload_v2: uploads carry no metadata; the shared file's name and title identify the
    # row's file (a plot's filename names its submission and attempt).
    for shared in message.get("files") or []:
        if shared.get("name") == payload.get("filename") and (
            payload.get("title") is None or shared.get("title") == payload.get("title")
        ):
            return True
    return False


def _find_sent(
    *, client: Any, method: str, key: str, payload: dict[str, Any], since: datetime
) -> tuple[str, str] | None:
    """Our earlier post of this row, if Slack holds it: ``(channel, ts)``; else None.

    Raises ``LookupUnavailable`` when the lookup itself cannot be made (the row is then posted,
    as before this existed); any other error propagates (the attempt is retried later).
    """
    channel = payload.get("channel")
    if not channel:
        raise LookupUnavailable("no channel")
    try:
        channel = _lookup_channel(client, str(channel))
        kwargs: dict[str, Any] = {
            "channel": channel,
            "include_all_metadata": True,
            "oldest": f"{since.timestamp() - LOOKUP_MARGIN_S:.6f}",
            "limit": LOOKUP_PAGE,
        }
        thread_ts = payload.get("thread_ts")  # replies come oldest first; DM threads are short
        cursor = None
        for _ in range(LOOKUP_PAGES):
            if cursor:
                kwargs["cursor"] = cursor
            if thread_ts:
                response = client.conversations_replies(ts=thread_ts, **kwargs)
            else:  # newest first: an earlier attempt of this row is among the latest messages
                response = client.conversations_history(**kwargs)
            for message in response.get("messages") or []:
                if _matches(message, method, key, payload) and message.get("ts"):
                    return channel, str(message["ts"])
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
    except SlackApiError as exc:
        code = exc.response.get("error") if exc.response is not None else None
        if code in FATAL_ERRORS:
            raise LookupUnavailable(str(code)) from exc
        raise
    log.warning(
        "outbox %s: not found in the last %d messages; posting", key, LOOKUP_PAGES * LOOKUP_PAGE
    )
    return None


def dispatch_pending(
    *,
    session_factory: sessionmaker[Session],
    client: Any,
    now: datetime | None = None,
    limit: int = 50,
    per_channel_interval: float = PER_CHANNEL_INTERVAL_S,
    clock: Callable[[], float] = time.monotonic,
    held_channels: set[str] | None = None,
) -> int:
    """Send due pending rows (oldest first); returns how many Slack accepted.

    Rows whose channel had a post less than ``per_channel_interval`` seconds ago, or whose
    ``thread_key`` parent is not sent yet, stay pending for the next call; the channels held
    back are added to ``held_channels`` (so a caller can come back as soon as they are free).
    """
    now = now or utcnow()
    with session_scope(session_factory) as session:
        due = session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.status == OutboxStatus.PENDING)
            .where(OutboxMessage.next_attempt_at <= now)
            .order_by(OutboxMessage.id)
            .limit(limit)
        ).all()
        ids = [row.id for row in due]
    sent = 0
    held_channels = set() if held_channels is None else held_channels
    for row_id in ids:
        outcome = _dispatch_one(
            session_factory=session_factory,
            client=client,
            row_id=row_id,
            now=now,
            held_channels=held_channels,
            per_channel_interval=per_channel_interval,
            clock=clock,
        )
        sent += outcome
    return sent


def _dispatch_one(
    *,
    session_factory: sessionmaker[Session],
    client: Any,
    row_id: int,
    now: datetime,
    held_channels: set[str],
    per_channel_interval: float,
    clock: Callable[[], float],
) -> int:
    with session_scope(session_factory) as session:
        row = session.get(OutboxMessage, row_id)
        if row is None or row.status != OutboxStatus.PENDING:
            return 0
        payload = dict(row.payload)
        method = row.method
        if row.thread_key:
            parent = get(session=session, key=row.thread_key)
            if parent is not None and parent.status == OutboxStatus.PENDING:
                return 0  # wait for the parent's ts
            if parent is not None and parent.status == OutboxStatus.SENT and parent.slack_ts:
                if method == "chat_update":
                    payload["ts"] = parent.slack_ts
                    payload["channel"] = parent.slack_channel or payload.get("channel")
                elif method == "pins_add":
                    payload["timestamp"] = parent.slack_ts
                    payload["channel"] = parent.slack_channel or payload.get("channel")
                else:
                    payload["thread_ts"] = parent.slack_ts
                    channel = str(payload.get("channel") or "")
                    if parent.slack_channel and (not channel or channel[:1] in ("U", "W")):
                        # The reply goes where the parent is (a user id's post landed in a DM).
                        payload["channel"] = parent.slack_channel
            elif method in ("chat_update", "pins_add"):
                row.status = OutboxStatus.FAILED
                what = "update" if method == "chat_update" else "pin"
                row.last_error = f"nothing to {what}: {row.thread_key} was not sent"
                return 0
        channel = payload.get("channel")
        pace_key = channel if method in PACED_METHODS and channel else None
        mono = clock()
        with _PACER.lock:
            if _PACER.blocked_until.get(method, 0.0) > mono:
                return 0
            if pace_key is not None:
                if pace_key in held_channels:
                    return 0
                last = _PACER.last_post.get(pace_key)
                if last is not None and mono - last < per_channel_interval:
                    held_channels.add(pace_key)
                    return 0
        # Claim the row so a second dispatcher (another process) skips it while we send.
        attempts = row.attempts + 1
        key = row.idempotency_key
        created_at = row.created_at
        # An earlier attempt may have reached Slack (its process died before recording it, or the
        # answer was lost): read back before posting again.
        maybe_sent = row.attempts > 0 and method in READ_BACK_METHODS
        claimed = session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row.id)
            .where(OutboxMessage.status == OutboxStatus.PENDING)
            .where(OutboxMessage.attempts == row.attempts)
            .where(
                or_(OutboxMessage.next_attempt_at <= now, OutboxMessage.next_attempt_at.is_(None))
            )
            .values(attempts=attempts, next_attempt_at=now + timedelta(seconds=CLAIM_S))
            .execution_options(synchronize_session=False)
        ).rowcount
    if not claimed:
        return 0

    if pace_key is not None:
        with _PACER.lock:
            _PACER.last_post[pace_key] = clock()
    error: str | None = None
    retry_at: datetime | None = None
    fatal = False
    response: Any = None
    found: tuple[str, str] | None = None
    try:
        if maybe_sent:
            try:
                found = _find_sent(
                    client=client, method=method, key=key, payload=payload, since=created_at
                )
            except LookupUnavailable as exc:
                log.error("outbox %s: cannot check for an earlier post (%s); posting", key, exc)
        if found is None:
            response = _call(client, method, payload, key)
    except SlackApiError as exc:
        code = (exc.response.get("error") if exc.response is not None else None) or str(exc)
        status = getattr(exc.response, "status_code", None)
        error = f"{code} (HTTP {status})"
        if method == "pins_add" and code == "already_pinned":
            error = None  # pinning is idempotent: an earlier attempt did it
        elif code == "ratelimited" or status == 429:
            wait = _retry_after(exc)
            with _PACER.lock:
                _PACER.blocked_until[method] = clock() + wait
            retry_at = utcnow() + timedelta(seconds=wait)
            attempts -= 1  # being told to wait is not a failed attempt
        elif code in FATAL_ERRORS:
            fatal = True
        else:
            retry_at = utcnow() + timedelta(seconds=_backoff(attempts))
    except Exception as exc:  # network errors, timeouts: try again later
        error = f"{type(exc).__name__}: {exc}"
        retry_at = utcnow() + timedelta(seconds=_backoff(attempts))

    with session_scope(session_factory) as session:
        row = session.get(OutboxMessage, row_id)
        assert row is not None
        if error is None:
            row.status = OutboxStatus.SENT
            row.sent_at = utcnow()
            row.last_error = None
            data = getattr(response, "data", None) or {}
            if found is not None:
                row.slack_channel, row.slack_ts = found
                log.info("outbox %s was already sent (ts %s): not posting again", key, found[1])
            elif isinstance(data, dict):
                row.slack_ts = data.get("ts") or (data.get("message") or {}).get("ts")
                row.slack_channel = data.get("channel") or payload.get("channel")
            return 1
        row.last_error = error[:2000]
        row.attempts = attempts
        if fatal or attempts >= MAX_ATTEMPTS:
            row.status = OutboxStatus.FAILED
            log.error("outbox %s gave up after %d attempts: %s", key, attempts, error)
        else:
            row.next_attempt_at = retry_at or utcnow()
            log.warning("outbox %s failed (%s); retrying at %s", key, error, row.next_attempt_at)
    return 0


def seconds_until_free(
    channels: set[str],
    *,
    per_channel_interval: float = PER_CHANNEL_INTERVAL_S,
    clock: Callable[[], float] = time.monotonic,
) -> float | None:
    """How long until the first of ``channels`` may have its next post (None: none is held)."""
    if not channels:
        return None
    now = clock()
    with _PACER.lock:
        last = [_PACER.last_post.get(c) for c in channels]
    return max(0.0, min((t + per_channel_interval - now) if t else 0.0 for t in last))


class Dispatcher:
    """A daemon thread sending the outbox; ``wake()`` after a commit that queued posts sends them
    without waiting. Between wakes it looks every ``interval`` seconds (for rows committed by
    processes that cannot wake it), and sooner when a paced channel frees up."""

    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        client: Any,
        interval: float = 0.5,
        per_channel_interval: float = PER_CHANNEL_INTERVAL_S,
    ) -> None:
        self.session_factory = session_factory
        self.client = client
        self.interval = interval
        self.per_channel_interval = per_channel_interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Dispatcher:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="outbox", daemon=True)
            self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_once(self, held_channels: set[str] | None = None) -> int:
        return dispatch_pending(
            session_factory=self.session_factory,
            client=self.client,
            per_channel_interval=self.per_channel_interval,
            held_channels=held_channels,
        )

    def _run(self) -> None:
        while not self._stop.is_set():
            # Cleared before the pass: a wake during it (a commit it may have missed) runs
            # another pass at once instead of waiting for the interval.
            self._wake.clear()
            held: set[str] = set()
            try:
                self.run_once(held)
            except Exception:  # the database may be briefly unavailable; keep the thread alive
                log.exception("outbox dispatch failed")
            free_in = seconds_until_free(held, per_channel_interval=self.per_channel_interval)
            wait = self.interval if free_in is None else min(self.interval, free_in + 0.005)
            self._wake.wait(wait)
