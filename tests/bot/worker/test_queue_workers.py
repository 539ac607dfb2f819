"""Real ``circuitboard worker`` processes on the embedded SQLite broker and on Redis + PostgreSQL,
verifying real submissions through ``puzzles.verify.verify_submission`` (small held-out sizes).

What the brokers lose, the row and the sweeper recover: kombu's SQL transport forgets a message a
worker had taken when that worker is killed (and can fail a publish when SQLite is busy); Redis
hands an unacked message back only after its visibility timeout (an hour). The sweeper runs during
every wait here, as the scheduler runs it in production.
"""

from __future__ import annotations

import json

from support.queue import (
    SMALL_VERIFY,
    all_final,
    outbox_keys,
    solution,
    submit,
    verdicts_by_submission,
    wait_for,
)
from support.workers import running_workers

from bot.queue import get_app, queue_depth
from bot.settings import get_settings


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
