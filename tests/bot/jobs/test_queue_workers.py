"""Real ``circuitboard worker`` processes on the embedded SQLite broker and on Redis + PostgreSQL,
verifying real submissions through ``puzzles.verify.verify_submission`` (small held-out sizes).

What the brokers lose, the row and the sweeper recover: kombu's SQL transport forgets a message a
worker had taken when that worker is killed (and can fail a publish when SQLite is busy); Redis
hands an unacked message back only after its visibility timeout (an hour). The sweeper runs during
every wait here, as the scheduler runs it in production.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from jobs_support import (
    SMALL_VERIFY,
    Gate,
    all_final,
    rows,
    running_workers,
    solution,
    submit,
    verdicts_by_submission,
    wait_for,
)
from sqlalchemy import select

from bot.queue import enqueue_verification, get_app, queue_depth
from bot.settings import get_settings
from storage.db import session_scope
from storage.models import OutboxMessage


def outbox_keys(factory) -> set[str]:
    with session_scope(factory) as session:
        return set(session.scalars(select(OutboxMessage.idempotency_key)))


@pytest.mark.timeout(1200)
def test_twenty_jobs_on_two_workers_are_each_verified_once(queue_setup, tmp_path) -> None:
    setup = queue_setup
    gate = Gate()
    try:
        with running_workers(tmp_path) as workers:
            pair = workers.start(), workers.start()
            workers.wait_ready(*pair)
            # The first two jobs wait in their sandboxes until both run: each worker runs one job
            # at a time, so both workers are taking jobs (made so, not left to the scheduler).
            gate.close()
            ids = [
                submit(
                    setup.factory,
                    round_id=setup.round_id,
                    user_id=f"U{i}",
                    content=solution(tag=str(i), gate=gate if i < 2 else None),
                )
                for i in range(20)
            ]
            running = wait_for(
                lambda: (
                    (found := rows(setup.factory, ids[:2]))
                    and all(row.status == "running" for row in found)
                    and found
                ),
                timeout=600,
                what="the two gated jobs to run at once",
                factory=setup.factory,
            )
            holders = [workers.holding(row.lease_owner) for row in running]
            assert None not in holders, [r.lease_owner for r in running]
            assert len({worker.pid for worker in holders}) == 2, [r.lease_owner for r in running]
            gate.open()
            done = wait_for(
                lambda: all_final(setup.factory, ids),
                timeout=900,
                what="20 verdicts",
                factory=setup.factory,
            )
            assert [row.status for row in done] == ["verified"] * 20, [r.message for r in done]
            assert verdicts_by_submission(setup.factory) == {r.id: [r.attempts] for r in done}

            # A message delivered twice (Redis after its visibility timeout, a sweeper re-send racing
            # a slow worker) finds the job done and changes nothing.
            for row in done[:3]:
                enqueue_verification(submission_id=row.id, queue=row.queue)
            wait_for(
                lambda: sum(queue_depth(setup.settings).values()) == 0,
                timeout=300,
                what="the duplicates to be consumed",
            )
            time.sleep(1.0)
            assert verdicts_by_submission(setup.factory) == {row.id: [row.attempts] for row in done}
            assert all(worker.alive() for worker in pair)
    finally:
        gate.open()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_kill_9_mid_job_loses_nothing(queue_setup, tmp_path) -> None:
    """Ten times: kill -9 the worker running a job (its whole process group on even rounds, only
    the pool child on odd ones); another worker or the restarted one finishes it with exactly one
    verdict. The job waits inside its sandbox on a closed gate until the kill, so every kill lands
    mid-job whatever the machine's load; the gate opens after the kill for the retry."""
    setup = queue_setup
    gate = Gate()
    try:
        with running_workers(tmp_path) as workers:
            pair = workers.start(), workers.start()
            workers.wait_ready(*pair)
            for round_no in range(10):
                gate.close()
                sid = submit(
                    setup.factory,
                    round_id=setup.round_id,
                    user_id=f"K{round_no}",
                    content=solution(tag=f"kill {round_no}", gate=gate),
                )

                def mid_job(sid: int = sid):
                    (row,) = rows(setup.factory, [sid])
                    return row if row.status == "running" and row.stage == "replication" else None

                row = wait_for(
                    mid_job, timeout=300, what=f"job {sid} to run", factory=setup.factory
                )
                victim = workers.holding(row.lease_owner)
                assert victim is not None, f"no worker holds {row.lease_owner}"
                if round_no % 2 == 0:
                    victim.kill()
                    workers.start()  # the restarted worker
                else:
                    os.kill(int(row.lease_owner.split("/")[1]), signal.SIGKILL)
                gate.open()

                (final,) = wait_for(
                    lambda sid=sid: all_final(setup.factory, [sid]),
                    timeout=300,
                    what=f"job {sid} to be finished after the kill",
                    factory=setup.factory,
                )
                assert final.status == "verified", final.message
                assert final.attempts >= 2
                assert verdicts_by_submission(setup.factory)[sid] == [final.attempts]
            everything = rows(setup.factory)
            assert [row.status for row in everything] == ["verified"] * 10
            assert set(verdicts_by_submission(setup.factory)) == {row.id for row in everything}
    finally:
        gate.open()


def test_lost_message_is_resent_by_the_sweeper(queue_setup, tmp_path, monkeypatch) -> None:
    """The row says queued but the broker has nothing (a publish failed on a busy SQLite, or a
    worker died between taking the message and claiming the row)."""
    setup = queue_setup
    monkeypatch.setenv("CIRCUITBOARD_REQUEUE_AFTER", "1")
    get_settings.cache_clear()
    sid = submit(setup.factory, round_id=setup.round_id, user_id="U1", content=solution())
    with get_app().connection_for_write() as connection:
        connection.default_channel.queue_purge("cpu")
    assert queue_depth()["cpu"] == 0
    with running_workers(tmp_path) as workers:
        workers.wait_ready(workers.start())
        (row,) = wait_for(
            lambda: all_final(setup.factory, [sid]),
            timeout=300,
            what="the lost job to be re-sent and verified",
            factory=setup.factory,
        )
    assert (row.status, row.attempts) == ("verified", 1)
    assert verdicts_by_submission(setup.factory) == {sid: [1]}


def test_time_limit_fails_the_job_and_the_worker_keeps_serving(
    sqlite_queue, tmp_path, monkeypatch
) -> None:
    setup = sqlite_queue
    # the limit only a real failure reaches for the fine job (a few seconds of work, even at load
    # 20); the slow one sleeps far past it
    monkeypatch.setenv("CIRCUITBOARD_TASK_TIME_LIMIT", "45")
    # the sandbox's own clock further out, so the job's time limit is what stops the slow one
    monkeypatch.setenv(
        "CIRCUITBOARD_VERIFY_OVERRIDES",
        json.dumps({**json.loads(SMALL_VERIFY), "timeout_s": 900, "cpu_seconds": 900}),
    )
    get_settings.cache_clear()
    with running_workers(tmp_path) as workers:
        worker = workers.start()
        workers.wait_ready(worker)
        slow = submit(
            setup.factory,
            round_id=setup.round_id,
            user_id="U1",
            content=solution(sleep=600, tag="slow"),
        )
        fine = submit(setup.factory, round_id=setup.round_id, user_id="U2", content=solution())
        done = wait_for(
            lambda: all_final(setup.factory, [slow, fine]),
            timeout=300,
            what="the slow job to time out and the next one to be verified",
            factory=setup.factory,
        )
        assert worker.alive()
    by_id = {row.id: row for row in done}
    assert by_id[slow].status == "failed"
    assert "longer than the 45 s limit" in by_id[slow].message
    assert by_id[slow].attempts == 1
    assert by_id[fine].status == "verified"
    assert verdicts_by_submission(setup.factory) == {fine: [1]}
    # the worker told the Slack side after each change: the user hears about both outcomes
    keys = outbox_keys(setup.factory)
    assert f"submission:{slow}:failed:1" in keys
    assert f"submission:{fine}:verdict:1" in keys
