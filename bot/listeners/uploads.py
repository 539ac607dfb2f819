"""Acknowledged uploads are downloaded and stored on their own threads, after the ack.

A download waits on Slack (seconds, up to its timeout): on Bolt's listener threads it would hold
up other events, and on the after-ack pool the answers to commands.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

from slack_bolt import BoltContext

from bot.flows import upload as upload_flow
from bot.listeners.after_ack import run_logged

_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="upload")


def hand_off(file_ids: list[str], context: BoltContext) -> Future[None] | None:
    """Store the recorded files soon, off the listener's thread; failures are logged (the files
    stay pending and the scheduler's sweep stores them)."""
    if not file_ids:
        return None
    return _POOL.submit(run_logged, _store, file_ids, context)


def _store(file_ids: list[str], context: BoltContext) -> None:
    for file_id in file_ids:
        upload_flow.store(
            session_factory=context["db"], settings=context["settings"], file_id=file_id
        )
    context["outbox"].wake()
