"""What one tick of the scheduler does: the cycle of due actions, the outbox flush, the sweeper.

The database is the plan (rounds, hints); the scheduler only wakes up. The cycle finds what is due
and acts in order of due time, each action in its own transaction (``actions``): a crash mid-cycle
loses nothing, what was not committed is still due on the next run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from bot import outbox
from bot.flows import submission as submission_flow
from bot.flows import upload as upload_flow
from bot.scheduler.actions import act, due_events
from bot.settings import Settings, get_settings
from storage.db import session_scope
from storage.models import utcnow

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 60.0


@dataclass
class CycleReport:
    """What one cycle did, by kind: keys queued, items posted late, items missed."""

    posted: list[str] = field(default_factory=list)
    late: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def run_cycle(
    *, session_factory: sessionmaker[Session], settings: Settings, now: datetime | None = None
) -> CycleReport:
    """Open due rounds, release due hints, close due rounds: oldest due first, one transaction each."""
    now = now or utcnow()
    report = CycleReport()
    with session_scope(session_factory) as session:
        events = due_events(session, now)
    for _due, _order, kind, item_id in events:
        try:
            with session_scope(session_factory) as session:
                outcome, key = act(
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
        _sweep_and_recover(session_factory, settings, now, report)
    return report


def _sweep_and_recover(
    session_factory: sessionmaker[Session], settings: Settings, now: datetime, report: CycleReport
) -> None:
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
