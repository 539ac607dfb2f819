"""Alembic environment: the models' metadata is the target; tables owned by libraries are ignored."""

from __future__ import annotations

from alembic import context

from storage.db import make_engine
from storage.models import Base

# Tables created and owned by libraries, not by our migrations.
LIBRARY_TABLES = {
    "apscheduler_jobs",
    "kombu_message",
    "kombu_queue",
    "celery_taskmeta",
    "celery_tasksetmeta",
}


def include_object(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    if type_ == "table" and name in LIBRARY_TABLES:
        return False
    table = getattr(obj, "table", None)
    return not (table is not None and table.name in LIBRARY_TABLES)


def run_migrations() -> None:
    config = context.config
    url = config.get_main_option("sqlalchemy.url")
    connectable = config.attributes.get("connection")
    options = dict(
        target_metadata=Base.metadata,
        include_object=include_object,
        compare_type=True,
        render_as_batch=True,  # SQLite can only ALTER by copying the table
    )
    if connectable is not None:
        context.configure(connection=connectable, **options)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, **options)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


run_migrations()
