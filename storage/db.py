"""Engines and sessions for SQLite (embedded default) and PostgreSQL, and applying migrations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# Tables created and owned by libraries (APScheduler's job store, kombu's SQLAlchemy broker, Celery's
# result backend) in the same database: our migrations neither create nor compare them.
LIBRARY_TABLES = frozenset(
    {
        "apscheduler_jobs",
        "kombu_message",
        "kombu_queue",
        "celery_taskmeta",
        "celery_tasksetmeta",
    }
)


class DatabaseNotReady(RuntimeError):
    """The database is unreachable, missing, or not migrated to the code's schema."""


def _sqlite_pragmas(dbapi_connection: Any, _record: object) -> None:
    # Foreign keys are off by default in SQLite; WAL + busy timeout let the bot, the scheduler
    # and a local worker share one file without "database is locked" on every overlap.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin_before_savepoint(conn: Connection, _name: object) -> None:
    """Open the transaction before a SAVEPOINT, so releasing it commits nothing.

    pysqlite emits BEGIN lazily, before the first INSERT/UPDATE/DELETE. A transaction whose first
    write sits in a savepoint (``session.begin_nested()``, e.g. ``outbox.enqueue``) would
    otherwise start with the SAVEPOINT itself, and SQLite commits such an outermost savepoint
    on RELEASE: the row would be committed on its own, before (and even without) the rest of
    its transaction.
    """
    dbapi_connection = conn.connection.dbapi_connection
    if dbapi_connection is not None and not dbapi_connection.in_transaction:
        conn.exec_driver_sql("BEGIN")


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL; None for in-memory databases and other backends."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def redact_url(url: str) -> str:
    """The URL with its password masked, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine with the pragmas and pool settings each backend needs."""
    if is_sqlite(url):
        connect_args = {"timeout": 30, **kwargs.pop("connect_args", {})}
        engine = create_engine(url, connect_args=connect_args, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "savepoint", _sqlite_begin_before_savepoint)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


@lru_cache(maxsize=8)
def get_engine(url: str) -> Engine:
    """One engine per URL per process."""
    return make_engine(url)


def session_factory(url_or_engine: str | Engine) -> sessionmaker[Session]:
    engine = get_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A unit of work: commit on success, roll back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Alembic filter: leave the libraries' tables (and their indexes) alone."""
    if type_ == "table" and name in LIBRARY_TABLES:
        return False
    table = getattr(obj, "table", None)
    return not (table is not None and table.name in LIBRARY_TABLES)


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade_database(url: str, *, revision: str = "head") -> None:
    """Apply migrations; a database already at ``revision`` is left untouched.

    Safe to run from several processes at once: the migration holds a lock (an advisory lock on
    PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite) and runs in one transaction, so the second runner
    waits and then finds nothing to do, and a failure leaves the schema as it was.
    """
    from alembic import command

    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), revision)


def head_revision() -> str:
    """The newest migration this code ships."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None, "no migrations found"
    return head


def database_revision(url: str) -> str | None:
    """The migration a database is at (None: never migrated); never creates a SQLite file."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy.pool import NullPool

    path = sqlite_path(url)
    if path is not None and not path.exists():
        raise DatabaseNotReady(f"no database file at {path}; run `circuitboard db upgrade`")
    # A health check must answer quickly, not wait out the driver's default connect timeout.
    options: dict[str, Any] = {} if is_sqlite(url) else {"connect_args": {"connect_timeout": 5}}
    engine = make_engine(url, poolclass=NullPool, **options)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except Exception as exc:  # a health check reports why, whatever the driver raised
        raise DatabaseNotReady(f"cannot reach {redact_url(url)}: {exc}") from exc
    finally:
        engine.dispose()


def check_database(url: str) -> str:
    """The database's revision if it is reachable and at head; DatabaseNotReady otherwise."""
    current = database_revision(url)
    head = head_revision()
    if current != head:
        raise DatabaseNotReady(
            f"database {redact_url(url)} is at {current or 'no revision'}, the code needs {head};"
            " run `circuitboard db upgrade`"
        )
    return current
