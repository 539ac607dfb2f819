"""Sending the outbox: due rows, oldest first, paced per channel, retried with backoff.

Failures back off exponentially; Slack's ``ratelimited`` answer is honoured by waiting its
``Retry-After``; posts to one channel are paced to about one per second, Slack's documented limit
for ``chat.postMessage``. A row is claimed (``CLAIM_S``) before it is sent, so a second dispatcher
skips it; a claim that expires (its process died) lets another dispatcher retry the row, after
reading back whether Slack already has it (``readback``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from slack_sdk.errors import SlackApiError
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.outbox.readback import FATAL_ERRORS, LookupUnavailable, call, find_sent
from bot.outbox.store import get
from storage.db import session_scope
from storage.models import OutboxMessage, OutboxStatus, utcnow

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
BACKOFF_BASE_S = 2.0
BACKOFF_MAX_S = 300.0
CLAIM_S = 60.0
PER_CHANNEL_INTERVAL_S = 1.0
# Paced per channel: the methods that add a message (Slack's one-per-second guidance is for
# posting). Edits and pins are limited per workspace, not per channel: a status edit must not
# hold the verdict behind it for a second.
PACED_METHODS = frozenset({"chat_postMessage", "chat_postEphemeral", "files_upload_v2"})
# Methods whose earlier attempt is looked up in Slack before a retry (the others are idempotent,
# or, for ephemeral messages, cannot be read back).
READ_BACK_METHODS = frozenset({"chat_postMessage", "files_upload_v2"})


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


@dataclass
class _Claimed:
    """A row this dispatcher claimed, with the payload to send (its parent's ts filled in)."""

    row_id: int
    key: str
    method: str
    payload: dict[str, Any]
    attempts: int
    created_at: datetime
    maybe_sent: bool
    pace_key: str | None


@dataclass
class _Result:
    error: str | None = None
    retry_at: datetime | None = None
    fatal: bool = False
    response: Any = None
    found: tuple[str, str] | None = None


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
        claimed = _claim(
            session,
            row_id,
            now=now,
            held_channels=held_channels,
            per_channel_interval=per_channel_interval,
            clock=clock,
        )
    if claimed is None:
        return 0
    if claimed.pace_key is not None:
        with _PACER.lock:
            _PACER.last_post[claimed.pace_key] = clock()
    result = _send(client, claimed, clock)
    with session_scope(session_factory) as session:
        return _record(session, claimed, result)


def _with_parent(session: Session, row: OutboxMessage, payload: dict[str, Any]) -> bool:
    """Fill in what the ``thread_key`` parent's post gave (its ts, channel); False while the row
    must wait for it (or, for an edit or a pin of a parent never sent, is failed)."""
    method = row.method
    parent = get(session=session, key=row.thread_key) if row.thread_key else None
    if parent is not None and parent.status == OutboxStatus.PENDING:
        return False  # wait for the parent's ts
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
    elif row.thread_key and method in ("chat_update", "pins_add"):
        row.status = OutboxStatus.FAILED
        what = "update" if method == "chat_update" else "pin"
        row.last_error = f"nothing to {what}: {row.thread_key} was not sent"
        return False
    return True


def _held_back(
    method: str,
    pace_key: str | None,
    *,
    held_channels: set[str],
    per_channel_interval: float,
    clock: Callable[[], float],
) -> bool:
    """Slack asked us to wait for this method, or the channel had a post too recently."""
    mono = clock()
    with _PACER.lock:
        if _PACER.blocked_until.get(method, 0.0) > mono:
            return True
        if pace_key is None:
            return False
        if pace_key in held_channels:
            return True
        last = _PACER.last_post.get(pace_key)
        if last is not None and mono - last < per_channel_interval:
            held_channels.add(pace_key)
            return True
    return False


def _claim(
    session: Session,
    row_id: int,
    *,
    now: datetime,
    held_channels: set[str],
    per_channel_interval: float,
    clock: Callable[[], float],
) -> _Claimed | None:
    """Claim a due row so a second dispatcher (another process) skips it while we send."""
    row = session.get(OutboxMessage, row_id)
    if row is None or row.status != OutboxStatus.PENDING:
        return None
    payload = dict(row.payload)
    if not _with_parent(session, row, payload):
        return None
    channel = payload.get("channel")
    pace_key = channel if row.method in PACED_METHODS and channel else None
    if _held_back(
        row.method,
        pace_key,
        held_channels=held_channels,
        per_channel_interval=per_channel_interval,
        clock=clock,
    ):
        return None
    claimed = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == row.id)
        .where(OutboxMessage.status == OutboxStatus.PENDING)
        .where(OutboxMessage.attempts == row.attempts)
        .where(or_(OutboxMessage.next_attempt_at <= now, OutboxMessage.next_attempt_at.is_(None)))
        .values(attempts=row.attempts + 1, next_attempt_at=now + timedelta(seconds=CLAIM_S))
        .execution_options(synchronize_session=False)
    ).rowcount
    if not claimed:
        return None
    return _Claimed(
        row_id=row.id,
        key=row.idempotency_key,
        method=row.method,
        payload=payload,
        attempts=row.attempts + 1,
        created_at=row.created_at,
        # An earlier attempt may have reached Slack (its process died before recording it, or
        # the answer was lost): read back before posting again.
        maybe_sent=row.attempts > 0 and row.method in READ_BACK_METHODS,
        pace_key=pace_key,
    )


def _send(client: Any, claimed: _Claimed, clock: Callable[[], float]) -> _Result:
    result = _Result()
    method, key, payload = claimed.method, claimed.key, claimed.payload
    try:
        if claimed.maybe_sent:
            try:
                result.found = find_sent(
                    client=client, method=method, key=key, payload=payload, since=claimed.created_at
                )
            except LookupUnavailable as exc:
                log.error("outbox %s: cannot check for an earlier post (%s); posting", key, exc)
        if result.found is None:
            result.response = call(client, method, payload, key)
    except SlackApiError as exc:
        _slack_error(exc, claimed, result, clock)
    except Exception as exc:  # network errors, timeouts: try again later
        result.error = f"{type(exc).__name__}: {exc}"
        result.retry_at = utcnow() + timedelta(seconds=_backoff(claimed.attempts))
    return result


def _slack_error(
    exc: SlackApiError, claimed: _Claimed, result: _Result, clock: Callable[[], float]
) -> None:
    code = (exc.response.get("error") if exc.response is not None else None) or str(exc)
    status = getattr(exc.response, "status_code", None)
    result.error = f"{code} (HTTP {status})"
    if claimed.method == "pins_add" and code == "already_pinned":
        result.error = None  # pinning is idempotent: an earlier attempt did it
    elif code == "ratelimited" or status == 429:
        wait = _retry_after(exc)
        with _PACER.lock:
            _PACER.blocked_until[claimed.method] = clock() + wait
        result.retry_at = utcnow() + timedelta(seconds=wait)
        claimed.attempts -= 1  # being told to wait is not a failed attempt
    elif code in FATAL_ERRORS:
        result.fatal = True
    else:
        result.retry_at = utcnow() + timedelta(seconds=_backoff(claimed.attempts))


def _record(session: Session, claimed: _Claimed, result: _Result) -> int:
    """Mark the row sent (with Slack's ts), or keep why it failed and when to retry it."""
    row = session.get(OutboxMessage, claimed.row_id)
    assert row is not None
    key = claimed.key
    if result.error is None:
        row.status = OutboxStatus.SENT
        row.sent_at = utcnow()
        row.last_error = None
        data = getattr(result.response, "data", None) or {}
        if result.found is not None:
            row.slack_channel, row.slack_ts = result.found
            log.info("outbox %s was already sent (ts %s): not posting again", key, result.found[1])
        elif isinstance(data, dict):
            row.slack_ts = data.get("ts") or (data.get("message") or {}).get("ts")
            row.slack_channel = data.get("channel") or claimed.payload.get("channel")
        return 1
    row.last_error = result.error[:2000]
    row.attempts = claimed.attempts
    if result.fatal or claimed.attempts >= MAX_ATTEMPTS:
        row.status = OutboxStatus.FAILED
        log.error("outbox %s gave up after %d attempts: %s", key, claimed.attempts, result.error)
    else:
        row.next_attempt_at = result.retry_at or utcnow()
        log.warning("outbox %s failed (%s); retrying at %s", key, result.error, row.next_attempt_at)
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
