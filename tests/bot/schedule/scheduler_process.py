"""A fork server for the restart tests: imports the bot once, then forks a scheduler per command.

Each child is a real process running ``bot.schedule.run_scheduler_forever`` (settings from the
environment); the test kills it with SIGKILL or stops it with SIGTERM. Forking from a warm parent
keeps each restart to milliseconds, so the kill loop stays fast on a busy CI machine.

Protocol on stdin/stdout, one line each: ``start`` -> ``started <pid>`` (parent), then
``ready <pid> <message>`` (child, once its scheduler runs or stands by); ``quit``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

import apscheduler.executors.pool  # noqa: F401  (warm the imports the child needs)
import apscheduler.jobstores.sqlalchemy  # noqa: F401
import apscheduler.schedulers.background  # noqa: F401

from bot import schedule

with contextlib.suppress(ImportError):  # the sweeper the scheduler registers, when present
    import bot.services.submissions  # noqa: F401


def main() -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped automatically
    for line in sys.stdin:
        command = line.strip()
        if command == "quit":
            return
        if command != "start":
            continue
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            try:
                schedule.run_scheduler_forever(
                    ready=lambda message: print(f"ready {os.getpid()} {message}", flush=True)
                )
            finally:
                os._exit(0)
        print(f"started {pid}", flush=True)


if __name__ == "__main__":
    main()
