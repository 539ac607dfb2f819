"""The monthly cycle's clock: APScheduler 3 with its job store in the project database.

The database is the plan (rounds, hints); the scheduler only wakes up. A periodic *cycle* job finds
what is due (rounds to open or close, hints to release) and acts in order of due time, each action
in its own transaction that changes the row's status and queues the post in the outbox under a
fixed key. So a job that runs twice (APScheduler re-runs a job whose next run time it had not
saved before a crash; two ticks overlap) posts once, and a crash mid-cycle loses nothing: what was
not committed is still due on the next run.

Downtime: a post found due at most ``settings.schedule_grace_hours`` late is posted, and admins
are told it went out late; later than that it is not posted (a hint becomes ``missed``, a round
is opened or closed without its post) and admins are told how to post it by hand.

- ``actions``: one handler per scheduled action (open a round, release a hint, close a round);
- ``cycle``: one tick (the due actions, the outbox flush, the lease sweeper, upload recovery);
- ``jobs``: the job bodies the job store names; ``registry``: the service they act for;
- ``lock``: one scheduler per database; ``service``: the APScheduler runtime and its standby.
"""

from bot.scheduler.cycle import (
    CycleReport,
    run_cycle,
    run_sweep,
    run_upload_recovery,
    sweep_interval,
    tick,
)
from bot.scheduler.jobs import cycle_job, outbox_job, sweep_job
from bot.scheduler.lock import SchedulerLock
from bot.scheduler.service import (
    CYCLE_JOB_ID,
    JOB_PREFIX,
    OUTBOX_JOB_ID,
    SWEEP_JOB_ID,
    SchedulerService,
    run_scheduler_forever,
    slack_client,
    start_scheduler,
)

__all__ = [
    "CYCLE_JOB_ID",
    "JOB_PREFIX",
    "OUTBOX_JOB_ID",
    "SWEEP_JOB_ID",
    "CycleReport",
    "SchedulerLock",
    "SchedulerService",
    "cycle_job",
    "outbox_job",
    "run_cycle",
    "run_scheduler_forever",
    "run_sweep",
    "run_upload_recovery",
    "slack_client",
    "start_scheduler",
    "sweep_interval",
    "sweep_job",
    "tick",
]
