"""Engines, sessions and URL helpers in storage.db."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.pool import NullPool

from storage.db import (
    DatabaseNotReady,
    check_database,
    get_engine,
    make_engine,
    redact_url,
    session_factory,
    session_scope,
    sqlite_path,
    upgrade_database,
)
from storage.models import ProcessedEvent


def test_sqlite_connections_enforce_foreign_keys_and_use_wal(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url, poolclass=NullPool)
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 30000
    engine.dispose()


def test_a_savepoint_commits_nothing_before_its_transaction(database_url: str) -> None:
    """A write inside ``begin_nested`` (as ``outbox.enqueue`` does) is rolled back with the rest.

    On SQLite a SAVEPOINT issued before any other write used to open the transaction itself, and
    its RELEASE committed the row on its own: a post queued without the change it announced.
    """
    upgrade_database(database_url)
    factory = session_factory(make_engine(database_url, poolclass=NullPool))
    with pytest.raises(RuntimeError), session_scope(factory) as session:
        session.scalars(select(ProcessedEvent)).all()  # reads first, as the services do
        with session.begin_nested():
            session.add(ProcessedEvent(key="EvSavepoint"))
        session.add(ProcessedEvent(key="EvAfter"))
        session.flush()
        raise RuntimeError("the transaction fails after the savepoint was released")
    with session_scope(factory) as session:
        assert session.scalars(select(ProcessedEvent.key)).all() == []


def test_session_scope_commits_or_rolls_back(database_url: str) -> None:
    upgrade_database(database_url)
    factory = session_factory(make_engine(database_url, poolclass=NullPool))
    with session_scope(factory) as session:
        session.add(ProcessedEvent(key="Ev1"))
    with pytest.raises(RuntimeError), session_scope(factory) as session:
        session.add(ProcessedEvent(key="Ev2"))
        session.flush()
        raise RuntimeError("boom")
    with session_scope(factory) as session:
        assert session.scalars(select(ProcessedEvent.key)).all() == ["Ev1"]
    factory.kw["bind"].dispose()


def test_get_engine_is_one_engine_per_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    assert get_engine(url) is get_engine(url)
    get_engine(url).dispose()


def test_upgrade_creates_missing_parent_directories(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'deep' / 'er' / 'cb.db'}"
    upgrade_database(url)
    assert check_database(url)


def test_check_reports_an_unmigrated_database(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url, poolclass=NullPool)
    with engine.connect():
        pass  # creates an empty file
    engine.dispose()
    with pytest.raises(DatabaseNotReady, match="no revision"):
        check_database(sqlite_url)


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:////abs/cb.db", Path("/abs/cb.db")),
        ("sqlite:///rel/cb.db", Path("rel/cb.db")),
        ("sqlite://", None),
        ("sqlite:///:memory:", None),
        ("postgresql+psycopg://u@h/db", None),
    ],
)
def test_sqlite_path(url: str, path: Path | None) -> None:
    assert sqlite_path(url) == path


def test_redact_url_masks_only_the_password() -> None:
    assert (
        redact_url("postgresql+psycopg://bot:pw@db:5432/cb")
        == "postgresql+psycopg://bot:***@db:5432/cb"
    )
    assert redact_url("sqlite:////data/cb.db") == "sqlite:////data/cb.db"
