"""Holding a job: the lease renewed while the engine runs, and the time limit enforced."""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy.orm import Session, sessionmaker

from bot.flows import submission as submission_flow
from bot.services import leases
from bot.settings import Settings
from bot.worker.sender import send_posts
from storage.db import session_scope

log = logging.getLogger(__name__)


def time_limit_message(limit: float) -> str:
    return (
        f"Verification took longer than the {limit:.0f} s limit and was stopped. Make sure "
        "`predict` handles a whole batch quickly (vectorised torch, no per-example Python loops), "
        "then upload again; this run does not count toward your daily limit."
    )


INTERNAL_ERROR = (
    "The verifier hit an internal error on our side (not in your solution); admins can see it "
    "in the worker log. This run does not count toward your daily limit; please upload again later."
)


class LeaseKeeper(threading.Thread):
    """Renews the lease while the engine runs; fails the job at the time limit.

    Recording the time-limit failure here (not only when Celery's soft limit raises) means the
    user gets an answer even if the engine swallows the exception or sits in C code; Celery's
    hard limit then kills the child process and the pool replaces it.
    """

    def __init__(
        self,
        *,
        factory: sessionmaker[Session],
        settings: Settings,
        submission_id: int,
        owner: str,
        attempt: int,
    ) -> None:
        super().__init__(name=f"lease-{submission_id}", daemon=True)
        self.factory = factory
        self.settings = settings
        self.submission_id = submission_id
        self.owner = owner
        self.attempt = attempt
        self.deadline = time.monotonic() + settings.task_time_limit
        self.finished = threading.Event()
        self.lost = threading.Event()
        self.timed_out = threading.Event()

    def run(self) -> None:
        interval = max(0.2, self.settings.lease_seconds / 4)
        while True:
            left = self.deadline - time.monotonic()
            if self.finished.wait(max(0.0, min(interval, left))):
                return
            if time.monotonic() >= self.deadline:
                self._time_out()
                return
            try:
                with session_scope(self.factory) as session:
                    held = leases.renew_lease(
                        session=session,
                        submission_id=self.submission_id,
                        owner=self.owner,
                        attempt=self.attempt,
                        settings=self.settings,
                    )
            except Exception:  # a busy or unreachable database: try again next tick
                log.warning("lease renewal for %s failed", self.submission_id, exc_info=True)
                continue
            if not held:
                if not self.finished.is_set():
                    log.warning("lost the lease on submission %s", self.submission_id)
                    self.lost.set()
                return

    def _time_out(self) -> None:
        self.timed_out.set()
        failed = submission_flow.fail_run(
            session_factory=self.factory,
            submission_id=self.submission_id,
            owner=self.owner,
            attempt=self.attempt,
            message=time_limit_message(self.settings.task_time_limit),
            settings=self.settings,
        )
        if failed:
            send_posts(self.settings)
            log.warning("submission %s exceeded the time limit", self.submission_id)

    def stop(self) -> None:
        self.finished.set()
