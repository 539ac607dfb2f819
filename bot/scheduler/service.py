"""The APScheduler runtime: the scheduler of this process, or a standby for another's.

APScheduler 3 keeps its job store in the project database. The jobs (``jobs``) run every tick;
after downtime each runs once, however late (the cycle itself applies the grace window). Only the
process holding ``SchedulerLock`` runs them; another one stands by to take over.

The bot process calls ``start_scheduler(settings=..., client=...)`` once and ``.stop()`` on exit;
``circuitboard rounds scheduler`` runs the scheduler alone in the foreground
(``run_scheduler_forever``).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from slack_sdk import WebClient
from sqlalchemy import Engine, inspect, text
from sqlalchemy.orm import Session, sessionmaker

from bot.scheduler import registry
from bot.scheduler.cycle import CycleReport, sweep_interval, tick
from bot.scheduler.jobs import cycle_job, outbox_job, sweep_job
from bot.scheduler.lock import SchedulerLock
from bot.settings import Settings, get_settings
from storage.db import session_factory as make_session_factory

log = logging.getLogger(__name__)

JOB_PREFIX = "circuitboard:"
CYCLE_JOB_ID = JOB_PREFIX + "cycle"
OUTBOX_JOB_ID = JOB_PREFIX + "outbox"
SWEEP_JOB_ID = JOB_PREFIX + "sweep"
JOB_TABLE = "apscheduler_jobs"
OUTBOX_INTERVAL_S = 2.0
STANDBY_RETRY_S = 30.0


class SchedulerService:
    """The scheduler of this process, or a standby waiting for the lock held by another one."""

    def __init__(
        self,
        *,
        settings: Settings,
        session_factory: sessionmaker[Session],
        client: Any = None,
        standby: bool = True,
        standby_retry_s: float = STANDBY_RETRY_S,
    ) -> None:
        self.settings = settings
        self.session_factory = session_factory
        self.client = client
        self.lock = SchedulerLock(settings.db_url)
        self.scheduler: Any = None
        self.message = ""
        self.lock_losses = 0
        self._standby = standby
        self._standby_retry_s = standby_retry_s
        self._stopped = threading.Event()
        self._standby_thread: threading.Thread | None = None

    @property
    def is_running(self) -> bool:
        """True when this process runs the jobs (holds the lock)."""
        return self.scheduler is not None

    def start(self) -> SchedulerService:
        if self._try_start():
            return self
        self.message = (
            f"The scheduler is already running in {self.lock.holder()}; this instance runs no "
            "scheduled jobs (rounds, hints and posts are handled there)"
            + (" and will take over if that one stops." if self._standby else ".")
        )
        log.warning(self.message)
        if self._standby:
            self._standby_thread = threading.Thread(
                target=self._wait_for_lock, name="scheduler-standby", daemon=True
            )
            self._standby_thread.start()
        return self

    def _wait_for_lock(self) -> None:
        while not self._stopped.wait(self._standby_retry_s):
            try:
                started = self._try_start()
            except Exception:  # e.g. the database is briefly unreachable: try again later
                log.exception("scheduler: taking over failed; retrying")
                continue
            if started:
                log.warning("scheduler: the other instance stopped; this one took over")
                return

    def _try_start(self) -> bool:
        if self._stopped.is_set() or not self.lock.acquire():
            return False
        try:
            self._start_locked()
        except BaseException:
            self._forget()
            raise
        return True

    def _forget(self) -> None:
        """Drop the scheduler, the process slot and the lock (after a failure or a lost lock)."""
        scheduler, self.scheduler = self.scheduler, None
        if scheduler is not None:
            with contextlib.suppress(Exception):
                scheduler.shutdown(wait=False)
        registry.release(self)
        self.lock.release()

    def _start_locked(self) -> None:
        registry.claim(self)
        tick_s = self.settings.schedule_tick_seconds
        engine = self.session_factory.kw["bind"]
        _forget_stored_jobs(engine)
        scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=engine, tablename=JOB_TABLE)},
            executors={"default": ThreadPoolExecutor(max_workers=3)},
            job_defaults={
                # After downtime run once, however late: the cycle itself applies the grace window.
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": None,
            },
            timezone=UTC,
        )
        now = datetime.now(UTC)
        jobs: list[tuple[str, Any, float]] = [(CYCLE_JOB_ID, cycle_job, tick_s)]
        if self.client is not None:
            jobs.append((OUTBOX_JOB_ID, outbox_job, min(OUTBOX_INTERVAL_S, tick_s)))
        jobs.append((SWEEP_JOB_ID, sweep_job, sweep_interval(self.settings)))
        wanted = {job_id for job_id, _, _ in jobs}
        scheduler.start(paused=True)
        self.scheduler = scheduler
        for job in scheduler.get_jobs():
            if job.id.startswith(JOB_PREFIX) and job.id not in wanted:
                job.remove()  # a job registered by an older version or another configuration
        for job_id, func, seconds in jobs:
            scheduler.add_job(
                f"{func.__module__}:{func.__name__}",
                trigger="interval",
                seconds=seconds,
                id=job_id,
                name=job_id,
                replace_existing=True,
                next_run_time=now,
            )
        scheduler.resume()
        self.message = (
            f"scheduler running (cycle every {tick_s:g} s, grace window "
            f"{self.settings.schedule_grace_hours:g} h)"
        )
        log.info(self.message)

    def demote(self) -> None:
        """Stop running jobs here (the lock was lost) and stand by to take the lock again."""
        self._forget()
        self.lock_losses += 1
        self.message = "lost the scheduler lock; standing by"
        if self._standby and not self._stopped.is_set():
            self._standby_thread = threading.Thread(
                target=self._wait_for_lock, name="scheduler-standby", daemon=True
            )
            self._standby_thread.start()

    def run_now(self) -> CycleReport:
        """Run one full tick in the calling thread (tests, `rounds tick`)."""
        return tick(
            session_factory=self.session_factory, settings=self.settings, client=self.client
        )

    def stop(self, *, wait: bool = True) -> None:
        self._stopped.set()
        if self.scheduler is not None:
            # Pausing first keeps the scheduler thread from submitting a job to an executor that
            # shutdown() has just closed (APScheduler logs that as an error).
            self.scheduler.pause()
            self.scheduler.shutdown(wait=wait)
            self.scheduler = None
        registry.release(self)
        self.lock.release()


def _forget_stored_jobs(engine: Engine) -> None:
    """Delete our jobs from the job store before it loads them: they are all added again below
    (due now), and one stored by an older version may name a job body that no longer exists
    (``bot.schedule:cycle_job`` before ``bot.scheduler``), which APScheduler logs as an error."""
    with engine.begin() as connection:
        if inspect(connection).has_table(JOB_TABLE):
            connection.execute(
                text(f"DELETE FROM {JOB_TABLE} WHERE id LIKE :prefix"), {"prefix": JOB_PREFIX + "%"}
            )


def start_scheduler(
    *,
    settings: Settings | None = None,
    client: Any = None,
    session_factory: sessionmaker[Session] | None = None,
    standby: bool = True,
) -> SchedulerService:
    """Start this process's scheduler, or stand by if another process holds the lock.

    ``client`` (a slack_sdk ``WebClient``) lets the scheduler flush the outbox; leave it None when
    something else (the bot's outbox dispatcher) sends it. Check ``.is_running``/``.message``.
    """
    settings = settings or get_settings()
    factory = session_factory or make_session_factory(settings.db_url)
    return SchedulerService(
        settings=settings, session_factory=factory, client=client, standby=standby
    ).start()


def slack_client(settings: Settings) -> Any:
    """A Web API client from the settings, or None in console mode (no token)."""
    if settings.slack_bot_token is None:
        return None
    return WebClient(
        token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url
    )


def run_scheduler_forever(
    *, settings: Settings | None = None, client: Any = None, ready: Callable[[str], None] = print
) -> None:
    """Run the scheduler in the foreground until SIGINT/SIGTERM (``circuitboard rounds scheduler``)."""
    settings = settings or get_settings()
    service = start_scheduler(settings=settings, client=client)
    ready(service.message)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            pass
    finally:
        service.stop()
