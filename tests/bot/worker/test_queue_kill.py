"""kill -9 the worker mid-job, ten times: nothing lost, one verdict each (a module of its own so the
suite runs it beside the other long queue tests)."""

from __future__ import annotations

import os
import signal

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
