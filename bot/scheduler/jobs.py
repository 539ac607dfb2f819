"""The scheduler's job bodies, referenced by name (``bot.scheduler.jobs:cycle_job``) in the job
store, so they take no arguments: each acts for the service ``registry.active()`` returns."""

from __future__ import annotations

import logging
import threading

from bot import outbox
from bot.scheduler import registry
from bot.scheduler.cycle import run_cycle, run_sweep, run_upload_recovery
from storage.models import utcnow

log = logging.getLogger(__name__)


def cycle_job() -> None:
    """Open, release and close what is due; flush the outbox at once when something was posted."""
    service = registry.active()
    if service is None:
        log.warning("scheduler job ran without a running scheduler service; ignored")
        return
    if not service.lock.still_held():
        # Another instance may hold the lock now: stop acting and stand by (not from this job's
        # own thread, which the scheduler's shutdown would wait for).
        log.error("scheduler: lost the scheduler lock (database connection dropped); standing by")
        threading.Thread(target=service.demote, name="scheduler-demote", daemon=True).start()
        return
    report = run_cycle(session_factory=service.session_factory, settings=service.settings)
    if report.posted or report.missed or report.errors:
        log.info(
            "scheduler cycle: posted %s, late %s, missed %s, errors %s",
            report.posted,
            report.late,
            report.missed,
            report.errors,
        )
    if report.posted and service.client is not None:
        outbox_job()


def outbox_job() -> None:
    """Send what the outbox holds (only when the scheduler was given a Slack client)."""
    service = registry.active()
    if service is None or service.client is None:
        return
    outbox.dispatch_pending(session_factory=service.session_factory, client=service.client)


def sweep_job() -> None:
    """Re-queue the verification jobs whose lease expired, then recover lost uploads."""
    service = registry.active()
    if service is None:
        return
    now = utcnow()
    try:
        run_sweep(session_factory=service.session_factory, settings=service.settings, now=now)
    finally:
        run_upload_recovery(
            session_factory=service.session_factory, settings=service.settings, now=now
        )
