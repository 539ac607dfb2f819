"""Twenty jobs on two real workers: each verified exactly once (a module of its own so the
suite runs it beside the other long queue tests)."""

from __future__ import annotations

import time

import pytest
from support.queue import (
    Gate,
    all_final,
    rows,
    solution,
    submit,
    verdicts_by_submission,
    wait_for,
)
from support.workers import running_workers

from bot.queue import enqueue_verification, queue_depth


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
