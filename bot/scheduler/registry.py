"""The scheduler service running in this process, if any: what the job bodies act for.

Jobs are referenced by name in the job store, so they take no arguments and look the service up
here. One slot per process: a second scheduler in the same process is refused.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from bot.scheduler.lock import SchedulerLock
from bot.settings import Settings


class RunningService(Protocol):
    """What the jobs need of ``service.SchedulerService``."""

    settings: Settings
    session_factory: sessionmaker[Session]
    client: Any
    lock: SchedulerLock

    def demote(self) -> None: ...


_ACTIVE: RunningService | None = None
_ACTIVE_LOCK = threading.Lock()


def active() -> RunningService | None:
    with _ACTIVE_LOCK:
        return _ACTIVE


def claim(service: RunningService) -> None:
    """Take the process's slot; RuntimeError when another service holds it."""
    global _ACTIVE
    with _ACTIVE_LOCK:
        if _ACTIVE is not None and _ACTIVE is not service:
            raise RuntimeError("a scheduler is already running in this process")
        _ACTIVE = service


def release(service: RunningService) -> None:
    """Give the slot back (a no-op unless ``service`` holds it)."""
    global _ACTIVE
    with _ACTIVE_LOCK:
        if _ACTIVE is service:
            _ACTIVE = None
