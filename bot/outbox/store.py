"""The outbox's rows: a Slack call queued under an idempotency key, in the caller's transaction
(so a post exists iff the state change that caused it committed); big posts split in parts."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.models import OutboxMessage, OutboxStatus, utcnow

# Slack's size rules for one message: at most 50 blocks whose JSON stays under about 12k
# characters (else msg_blocks_too_long), and text of about 12k characters at most. A bigger post
# is queued as several (``split_message``), never retried as it is.
MESSAGE_BLOCKS_MAX = 50
MESSAGE_BLOCKS_JSON_MAX = 11_500
MESSAGE_TEXT_MAX = 12_000


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
