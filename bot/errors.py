"""One place that turns the errors a person can fix into one line: what happened, what to do.

Used by the ``circuitboard`` entry point and by the console's read-eval loop, so a missing or
unmigrated database, a busy SQLite file or an unreachable server reads the same everywhere
instead of as a SQLAlchemy traceback. Anything not recognised here is a bug and keeps its traceback.
"""

from __future__ import annotations

from sqlalchemy.exc import OperationalError, ProgrammingError

from bot.settings import Settings, get_settings
from storage.db import DatabaseNotReady, is_sqlite, redact_url

UPGRADE = "run `circuitboard db upgrade` (or `circuitboard run`, which migrates on start)"


def where(settings: Settings) -> str:
    """The database as a person should read it: the resolved file for SQLite, else the URL."""
    if settings.database_url is None:
        path = (settings.data_dir / "circuitboard.db").resolve()
        note = "" if settings.data_dir.is_absolute() else " (data dir relative to this folder)"
        return f"{path}{note}"
    return redact_url(settings.database_url)


def describe(exc: BaseException, settings: Settings | None = None) -> str | None:
    """A one-line message with the fix for errors a user can act on; None for anything else."""
    settings = settings or get_settings()
    if isinstance(exc, DatabaseNotReady):
        return f"{exc}. To fix: {UPGRADE}."
    if not isinstance(exc, (OperationalError, ProgrammingError)):
        return None
    text = str(getattr(exc, "orig", exc)).lower()
    sqlite = is_sqlite(settings.db_url)
    if "no such table" in text or ("relation" in text and "does not exist" in text):
        return f"no circuitboard database at {where(settings)} (or it is not migrated): {UPGRADE}."
    if sqlite and "unable to open database file" in text:
        return f"no circuitboard database at {where(settings)}: {UPGRADE}."
    if sqlite and "database is locked" in text:
        return (
            f"the database {where(settings)} stayed busy (another process held its write lock "
            "for 30 s); try again, and stop other circuitboard processes if it persists."
        )
    if isinstance(exc, OperationalError):
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        return (
            f"cannot use the database at {where(settings)}: {reason}. Check "
            "CIRCUITBOARD_DATABASE_URL and that the server is running."
        )
    return None
