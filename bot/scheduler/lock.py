"""One scheduler per database: the lock the scheduling process holds.

APScheduler does not support sharing a job store, so ``SchedulerService`` takes this lock first:
a PostgreSQL advisory lock or, for SQLite, a file lock next to the database file. A second
instance runs no jobs, says why, and stands by to take over.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
from typing import Any

from filelock import FileLock, Timeout
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from storage.db import make_engine
from storage.models import utcnow

log = logging.getLogger(__name__)

ADVISORY_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"circuitboard scheduler").digest()[:8], "big", signed=True
)


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
