"""Alembic environment: the models' metadata is the target; tables owned by libraries are ignored.

Every upgrade runs in one transaction under a lock, so concurrent runners (the bot and a worker
starting together) serialise and a failed migration leaves the schema untouched:
- PostgreSQL: DDL is transactional; a transaction-scoped advisory lock serialises runners.
- SQLite: the driver's implicit transactions are replaced by an explicit ``BEGIN IMMEDIATE``
  (takes the write lock up front, waits for ``busy_timeout``), and foreign keys are switched off
  while migrating: batch migrations rebuild a table by copy-and-drop, and a DROP with foreign keys
  on would fire ON DELETE CASCADE into the child tables. ``PRAGMA foreign_key_check`` runs before
  the commit instead.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection, Enum, event, text
from sqlalchemy.pool import NullPool

from storage.db import include_object, make_engine, sqlite_path
from storage.models import Base, UTCDateTime

# Any constant: the key of the advisory lock held while migrating a PostgreSQL database.
POSTGRES_MIGRATION_LOCK = 0x63697263_62640001


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Render our column types as plain SQLAlchemy ones, so migrations never import the models."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _sqlite_migration_connection(dbapi_connection: Any, _record: object) -> None:
    dbapi_connection.isolation_level = None  # we say BEGIN ourselves
    dbapi_connection.execute("PRAGMA foreign_keys=OFF")
    # Batch ALTERs rebuild a table by copy, drop and rename; a trigger whose body names the
    # table (trg_verdicts_mark_newest updates submissions) would make the rename fail while the
    # name is briefly gone. The legacy rename leaves trigger bodies alone; the name is back after.
    dbapi_connection.execute("PRAGMA legacy_alter_table=ON")


def _sqlite_begin_immediate(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _before_migrations(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": POSTGRES_MIGRATION_LOCK}
        )


def _our_enum_type_names() -> set[str]:
    return {
        column.type.name
        for table in Base.metadata.tables.values()
        for column in table.columns
        if isinstance(column.type, Enum) and column.type.name
    }


def _drop_orphaned_enum_types(connection: Connection) -> None:
    """PostgreSQL keeps an enum type when its table is dropped; a downgrade must not leave it
    behind, or the next upgrade fails creating it again (``type ... already exists``)."""
    orphans = connection.execute(
        text(
            "SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace"
            " WHERE t.typtype = 'e' AND n.nspname = current_schema() AND NOT EXISTS ("
            "   SELECT 1 FROM pg_attribute a WHERE a.atttypid = t.oid AND NOT a.attisdropped)"
        )
    ).scalars()
    for name in set(orphans) & _our_enum_type_names():
        connection.execute(text(f'DROP TYPE "{name}"'))


def _after_migrations(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        _drop_orphaned_enum_types(connection)
    if connection.dialect.name == "sqlite":
        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(f"migration left rows violating foreign keys: {broken[:10]}")


def run_migrations() -> None:
    config = context.config
    options: dict[str, Any] = dict(
        target_metadata=Base.metadata,
        include_object=include_object,
        compare_type=True,
        render_as_batch=True,  # SQLite can only ALTER by copying the table
        render_item=render_item,
    )
    connectable = config.attributes.get("connection")
    if connectable is not None:  # the caller owns the connection and its transaction
        context.configure(connection=connectable, **options)
        with context.begin_transaction():
            context.run_migrations()
        return

    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError(
            "no sqlalchemy.url: run migrations through storage.migrate or alembic.ini"
        )
    path = sqlite_path(url)
    if path is not None:  # `alembic ...` run by hand against a fresh data dir
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url, poolclass=NullPool)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_migration_connection)
        event.listen(engine, "begin", _sqlite_begin_immediate)
        options["transactional_ddl"] = True
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, **options)
            with context.begin_transaction():
                _before_migrations(connection)
                context.run_migrations()
                _after_migrations(connection)
    finally:
        engine.dispose()


run_migrations()
