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

Only one process may run the scheduler for a database (APScheduler does not support sharing a
job store): ``start_scheduler`` takes a PostgreSQL advisory lock or, for SQLite, a file lock next
to the database file. A second instance runs no jobs, logs why, and stands by to take over.

The bot process calls ``start_scheduler(settings=..., client=...)`` once and ``.stop()`` on exit;
``circuitboard rounds scheduler`` runs the scheduler alone in the foreground.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from bot import outbox
from bot.flows import submission as submission_flow
from bot.flows import upload as upload_flow
from bot.services import admins, hints, rounds
from bot.settings import Settings, get_settings
from storage.db import make_engine, session_scope
from storage.db import session_factory as make_session_factory
from storage.models import Hint, HintStatus, Round, RoundStatus, utcnow

log = logging.getLogger(__name__)

JOB_PREFIX = "circuitboard:"
CYCLE_JOB_ID = JOB_PREFIX + "cycle"
OUTBOX_JOB_ID = JOB_PREFIX + "outbox"
SWEEP_JOB_ID = JOB_PREFIX + "sweep"
JOB_TABLE = "apscheduler_jobs"
OUTBOX_INTERVAL_S = 2.0
SWEEP_INTERVAL_S = 60.0
STANDBY_RETRY_S = 30.0
ADVISORY_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"circuitboard scheduler").digest()[:8], "big", signed=True
)

# At equal due times: close a round (its solutions) before opening the next, and open a round
# before releasing a hint due at its opening.
_ORDER = {"close": 0, "open": 1, "hint": 2}


@dataclass
class CycleReport:
    """What one cycle did, by kind: keys queued, items posted late, items missed."""

    posted: list[str] = field(default_factory=list)
    late: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def grace_window(settings: Settings) -> timedelta:
    return timedelta(hours=settings.schedule_grace_hours)


def late_threshold(settings: Settings) -> timedelta:
    """Later than this a post counts as "after downtime" and admins hear about it."""
    return max(timedelta(seconds=3 * settings.schedule_tick_seconds), timedelta(minutes=2))


def _due_events(session: Session, now: datetime) -> list[tuple[datetime, int, str, int]]:
    events: list[tuple[datetime, int, str, int]] = []
    for round_ in session.scalars(
        select(Round).where(Round.status == RoundStatus.SCHEDULED, Round.opens_at <= now)
    ):
        events.append((round_.opens_at, _ORDER["open"], "open", round_.id))
    for round_ in session.scalars(
        select(Round).where(Round.status.in_(rounds.ACTIVE), Round.closes_at <= now)
    ):
        events.append((round_.closes_at, _ORDER["close"], "close", round_.id))
    for hint in session.scalars(
        select(Hint)
        .join(Round, Round.id == Hint.round_id)
        .where(
            Hint.status == HintStatus.SCHEDULED,
            Hint.release_at <= now,
            Round.status != RoundStatus.CANCELLED,
        )
    ):
        events.append((hint.release_at, _ORDER["hint"], "hint", hint.id))
    return sorted(events)


def _notify_admins(
    *, session: Session, settings: Settings, key: str, text_: str, now: datetime
) -> None:
    """Queue a notice to the admin channel, or to each admin's DM when none is configured."""
    log.warning("scheduler notice: %s", text_)
    admins.notify(session=session, settings=settings, key=key, text=text_)


def _act(
    *, session: Session, settings: Settings, kind: str, item_id: int, now: datetime
) -> tuple[str, str | None]:
    """Do one due thing; returns ``(outcome, key)`` with outcome posted|late|missed|skipped."""
    tz = settings.timezone
    fmt = rounds.format_time
    grace = grace_window(settings)
    if kind == "hint":
        hint = session.get(Hint, item_id, with_for_update=True)
        if hint is None or hint.status != HintStatus.SCHEDULED or hint.release_at > now:
            return "skipped", None
        due, what = hint.release_at, f"hint #{hint.id} of round #{hint.round_id}"
        base = hints.release_key(hint.id)
        if now - due > grace:
            hints.mark_missed(session=session, hint_id=hint.id)
            _notify_admins(
                session=session,
                settings=settings,
                key=f"notice:{base}:missed",
                now=now,
                text_=(
                    f"{what} was due {fmt(due, tz)} but the bot was down until "
                    f"{fmt(now, tz)}, past the {settings.schedule_grace_hours:g} h grace window, "
                    f"so it was NOT posted. Post it now with `/puzzle admin hint release "
                    f"{hint.id}` (or `circuitboard rounds hints release {hint.id}`)."
                ),
            )
            return "missed", base
        key = hints.release(session=session, hint_id=hint.id, now=now)
    else:
        round_ = session.get(Round, item_id, with_for_update=True)
        if round_ is None:
            return "skipped", None
        if kind == "open":
            if round_.status != RoundStatus.SCHEDULED or round_.opens_at > now:
                return "skipped", None
            due, what = round_.opens_at, f"the announcement of round #{round_.id}"
            base = rounds.announce_key(round_.id)
            how = f"round announce {round_.id}"
        else:
            if round_.status not in rounds.ACTIVE or round_.closes_at > now:
                return "skipped", None
            due, what = round_.closes_at, f"the solutions post of round #{round_.id}"
            base = rounds.solutions_key(round_.id)
            how = f"round post-solutions {round_.id}"
        if now - due > grace:
            round_.status = RoundStatus.OPEN if kind == "open" else RoundStatus.CLOSED
            _notify_admins(
                session=session,
                settings=settings,
                key=f"notice:{base}:missed",
                now=now,
                text_=(
                    f"{what} was due {fmt(due, tz)} but the bot was down until {fmt(now, tz)}, "
                    f"past the {settings.schedule_grace_hours:g} h grace window, so it was NOT "
                    f"posted (the round is now {round_.status.value}). Post it with "
                    f"`/puzzle admin {how}` (or `circuitboard {how.replace('round', 'rounds', 1)}`)."
                ),
            )
            return "missed", base
        if kind == "open":
            key = rounds.post_announcement(session=session, round_id=round_.id, now=now)
        else:
            key = rounds.post_solutions(session=session, round_id=round_.id, now=now)
    if now - due > late_threshold(settings):
        _notify_admins(
            session=session,
            settings=settings,
            key=f"notice:{key}:late",
            now=now,
            text_=(
                f"{what} was due {fmt(due, tz)}; the bot was down, so it was posted late, at "
                f"{fmt(now, tz)} (within the {settings.schedule_grace_hours:g} h grace window)."
            ),
        )
        return "late", key
    return "posted", key


def run_cycle(
    *, session_factory: sessionmaker[Session], settings: Settings, now: datetime | None = None
) -> CycleReport:
    """Open due rounds, release due hints, close due rounds: oldest due first, one transaction each."""
    now = now or utcnow()
    report = CycleReport()
    with session_scope(session_factory) as session:
        events = _due_events(session, now)
    for _due, _order, kind, item_id in events:
        try:
            with session_scope(session_factory) as session:
                outcome, key = _act(
                    session=session, settings=settings, kind=kind, item_id=item_id, now=now
                )
        except Exception as exc:  # one bad row must not stop the rest of the month
            log.exception("scheduler: %s %s failed", kind, item_id)
            report.errors.append(f"{kind} {item_id}: {exc}")
            continue
        if outcome == "skipped" or key is None:
            continue
        if outcome == "missed":
            report.missed.append(key)
        else:
            report.posted.append(key)
        if outcome == "late":
            report.late.append(key)
    return report


def run_sweep(*, session_factory: sessionmaker[Session], settings: Settings, now: datetime) -> Any:
    """Recover verification jobs the queue lost (expired leases, lost messages)."""
    return submission_flow.sweep(session_factory=session_factory, now=now, settings=settings)


def run_upload_recovery(
    *, session_factory: sessionmaker[Session], settings: Settings, now: datetime
) -> int:
    """Store the acknowledged uploads whose processing was lost (pending ``inbound_uploads``)."""
    return upload_flow.recover(session_factory=session_factory, settings=settings, now=now)


def sweep_interval(settings: Settings) -> float:
    """Half a worker lease, so a dead worker's submission is re-queued soon after it expires."""
    lease = float(getattr(settings, "lease_seconds", 2 * SWEEP_INTERVAL_S))
    return max(lease / 2, settings.schedule_tick_seconds, 1.0)


def tick(
    *,
    session_factory: sessionmaker[Session],
    settings: Settings | None = None,
    client: Any = None,
    now: datetime | None = None,
    per_channel_interval: float = outbox.PER_CHANNEL_INTERVAL_S,
    sweep: bool = True,
) -> CycleReport:
    """Everything the scheduler does once: the cycle, then the outbox flush, then the sweeper."""
    settings = settings or get_settings()
    now = now or utcnow()
    report = run_cycle(session_factory=session_factory, settings=settings, now=now)
    if client is not None:
        try:
            outbox.dispatch_pending(
                session_factory=session_factory,
                client=client,
                now=now,
                per_channel_interval=per_channel_interval,
            )
        except Exception as exc:
            log.exception("scheduler: outbox flush failed")
            report.errors.append(f"outbox: {exc}")
    if sweep:
        try:
            run_sweep(session_factory=session_factory, settings=settings, now=now)
        except Exception as exc:
            log.exception("scheduler: sweeper failed")
            report.errors.append(f"sweep: {exc}")
        try:
            run_upload_recovery(session_factory=session_factory, settings=settings, now=now)
        except Exception as exc:
            log.exception("scheduler: upload recovery failed")
            report.errors.append(f"uploads: {exc}")
    return report


# --- one scheduler per database ----------------------------------------------------------------


class SchedulerLock:
    """Held by the one process that runs the scheduler for a database URL.

    PostgreSQL: a session advisory lock on a dedicated connection (released if the process dies).
    SQLite: an OS file lock on ``<database file>.scheduler.lock`` (released if the process dies).
    An in-memory SQLite database is private to its process and needs none.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = make_url(url)
        self.backend = parsed.get_backend_name()
        self._file_lock: Any = None
        self._connection: Any = None
        self._engine: Engine | None = None
        self.path: str | None = None
        if self.backend == "sqlite" and parsed.database not in (None, "", ":memory:"):
            self.path = f"{os.path.abspath(parsed.database)}.scheduler.lock"

    @property
    def held(self) -> bool:
        return self._file_lock is not None or self._connection is not None

    def acquire(self) -> bool:
        """Take the lock without waiting; False when another process holds it."""
        if self.held:
            return True
        if self.backend == "postgresql":
            engine = make_engine(self.url, poolclass=NullPool)
            connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            got = connection.scalar(
                text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_LOCK_KEY}
            )
            if not got:
                connection.close()
                engine.dispose()
                return False
            self._engine, self._connection = engine, connection
            return True
        if self.path is None:
            self._file_lock = True  # nothing to share with: no other process can open it
            return True
        from filelock import FileLock, Timeout

        lock = FileLock(self.path, is_singleton=False)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return False
        self._file_lock = lock
        owner = f"{socket.gethostname()} pid {os.getpid()} since {utcnow():%Y-%m-%d %H:%M UTC}"
        try:
            with open(self.path + ".owner", "w", encoding="utf-8") as fh:
                fh.write(owner)
        except OSError:
            pass
        return True

    def holder(self) -> str:
        """Who holds the lock, as far as we can tell (for the "not running here" message)."""
        if self.backend == "postgresql":
            try:
                engine = make_engine(self.url, poolclass=NullPool)
                with engine.connect() as conn:
                    row = conn.execute(
                        text(
                            "SELECT a.pid, a.client_addr, a.application_name FROM pg_locks l "
                            "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = "
                            "'advisory' AND l.granted AND "
                            "((l.classid::bigint << 32) | l.objid::bigint) = :k"
                        ),
                        {"k": ADVISORY_LOCK_KEY},
                    ).first()
                engine.dispose()
            except Exception:  # only used for a message
                row = None
            if row is None:
                return f"another session (PostgreSQL advisory lock {ADVISORY_LOCK_KEY})"
            return f"PostgreSQL backend pid {row.pid} (client {row.client_addr or 'local'})"
        if self.path is not None:
            try:
                with open(self.path + ".owner", encoding="utf-8") as fh:
                    return f"{fh.read().strip()} (lock file {self.path})"
            except OSError:
                return f"another process (lock file {self.path})"
        return "another process"

    def still_held(self) -> bool:
        """False when the lock was lost: its PostgreSQL connection dropped (the server restarted)."""
        if self._connection is None:
            return self._file_lock is not None
        try:
            self._connection.scalar(text("SELECT 1"))
        except Exception:
            return False
        return True

    def release(self) -> None:
        if self._connection is not None:
            try:
                self._connection.scalar(
                    text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_LOCK_KEY}
                )
            except Exception:
                log.warning("scheduler lock: unlock failed (the lock goes with the connection)")
            with contextlib.suppress(Exception):
                self._connection.close()
            if self._engine is not None:
                self._engine.dispose()
            self._connection = self._engine = None
        if self._file_lock is not None:
            if self._file_lock is not True:
                self._file_lock.release()
            self._file_lock = None


# --- the APScheduler runtime ---------------------------------------------------------------------

_ACTIVE: SchedulerService | None = None
_ACTIVE_LOCK = threading.Lock()


def _active() -> SchedulerService | None:
    with _ACTIVE_LOCK:
        return _ACTIVE


def cycle_job() -> None:
    """Job body (referenced by name in the job store, so it takes no arguments)."""
    service = _active()
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
    service = _active()
    if service is None or service.client is None:
        return
    outbox.dispatch_pending(session_factory=service.session_factory, client=service.client)


def sweep_job() -> None:
    service = _active()
    if service is None:
        return
    now = utcnow()
    try:
        run_sweep(session_factory=service.session_factory, settings=service.settings, now=now)
    finally:
        run_upload_recovery(
            session_factory=service.session_factory, settings=service.settings, now=now
        )


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
        global _ACTIVE
        scheduler, self.scheduler = self.scheduler, None
        if scheduler is not None:
            with contextlib.suppress(Exception):
                scheduler.shutdown(wait=False)
        with _ACTIVE_LOCK:
            if _ACTIVE is self:
                _ACTIVE = None
        self.lock.release()

    def _start_locked(self) -> None:
        global _ACTIVE
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        from apscheduler.schedulers.background import BackgroundScheduler

        with _ACTIVE_LOCK:
            if _ACTIVE is not None and _ACTIVE is not self:
                raise RuntimeError("a scheduler is already running in this process")
            _ACTIVE = self
        tick_s = self.settings.schedule_tick_seconds
        engine = self.session_factory.kw["bind"]
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
                f"{__name__}:{func.__name__}",
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
        global _ACTIVE
        self._stopped.set()
        if self.scheduler is not None:
            # Pausing first keeps the scheduler thread from submitting a job to an executor that
            # shutdown() has just closed (APScheduler logs that as an error).
            self.scheduler.pause()
            self.scheduler.shutdown(wait=wait)
            self.scheduler = None
        with _ACTIVE_LOCK:
            if _ACTIVE is self:
                _ACTIVE = None
        self.lock.release()


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
    from slack_sdk import WebClient

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
