"""A fork server for the restart tests: imports the bot once, then forks a scheduler per command.

Each child is a real process running ``bot.scheduler.run_scheduler_forever`` (settings from the
environment); the test kills it with SIGKILL or stops it with SIGTERM. Forking from a warm parent
keeps each restart to milliseconds, so the kill loop stays fast on a busy CI machine.

Protocol on stdin/stdout, one line each: ``start`` -> ``started <pid>`` (parent), then
``ready <pid> <message>`` (child, once its scheduler runs or stands by); ``quit``.

``start-paused K`` starts a child that commits K hint releases and stops in the middle of the next
one: that release is written in its (uncommitted) transaction, the child prints
``paused <pid> <hint id>`` and waits there until it is killed. A kill after that line lands
mid-release by construction, whatever the machine's speed or load, instead of by luck; and such a
child never releases more than K hints, so a kill loop cannot run out of work to interrupt.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

import apscheduler.executors.pool  # noqa: F401  (warm the imports the child needs)
import apscheduler.jobstores.sqlalchemy  # noqa: F401
import apscheduler.schedulers.background  # noqa: F401

from bot import scheduler as schedule
from bot.scheduler import actions

with contextlib.suppress(ImportError):  # the sweeper the scheduler registers, when present
    import bot.services.submissions  # noqa: F401


def _pause_in_release(after: int) -> None:
    """Let this process commit ``after`` hint releases, then stop inside the next one (the
    scheduler's hint handler calls ``actions.release_hint``)."""
    release = actions.release_hint
    calls = 0

    def paused_release(*, session, hint_id, **kwargs):
        nonlocal calls
        key = release(session=session, hint_id=hint_id, **kwargs)
        calls += 1
        if calls <= after:
            return key
        session.flush()  # the release is written in the open transaction, not committed
        print(f"paused {os.getpid()} {hint_id}", flush=True)
        while True:  # until the test kills this process
            time.sleep(3600)
        return key  # pragma: no cover

    actions.release_hint = paused_release


def main() -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped automatically
    for line in sys.stdin:
        command = line.strip()
        if command == "quit":
            return
        name, _, arg = command.partition(" ")
        if name not in ("start", "start-paused"):
            continue
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            if name == "start-paused":
                _pause_in_release(int(arg or 0))
            try:
                schedule.run_scheduler_forever(
                    ready=lambda message: print(f"ready {os.getpid()} {message}", flush=True)
                )
            finally:
                os._exit(0)
        print(f"started {pid}", flush=True)


if __name__ == "__main__":
    main()
