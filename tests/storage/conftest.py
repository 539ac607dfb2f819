"""A migrated database (SQLite and PostgreSQL) and a few parent rows for storage tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool
from storage_seed import OPENS, Seed, make_blob

from storage.db import make_engine, upgrade_database
from storage.models import Base, PuzzleVersion, Round, SlackUser


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def migrated_url(request, tmp_path_factory) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """One migrated database per test module and backend (migrating per test is slow on PostgreSQL);
    the ``engine`` fixture empties it after each test."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('storage') / 'shared.db'}"
        upgrade_database(url)
        yield url
        return
    import psycopg

    server = make_url(request.getfixturevalue("postgres_server_url"))
    name = f"cb_storage_{uuid.uuid4().hex[:12]}"
    admin_dsn = server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = server.set(database=name).render_as_string(hide_password=False)
        upgrade_database(url)
        yield url
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def engine(migrated_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_url, poolclass=NullPool)
    yield engine
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@pytest.fixture
def session(sessions: sessionmaker[Session]) -> Iterator[Session]:
    with sessions() as session:
        yield session


@pytest.fixture
def seed(session: Session) -> Seed:
    """A user, an open round of one puzzle, and one stored file, committed."""
    user = SlackUser(id="U0001", display_name="ada")
    puzzle = PuzzleVersion(slug="modular-add", version=1, weights_sha256="0" * 64, title="Add")
    round_ = Round(
        puzzle_version=puzzle,
        channel_id="C0001",
        opens_at=OPENS,
        closes_at=OPENS + timedelta(days=31),
    )
    blob = make_blob(b"def predict(tokens):\n    return tokens[:, -1]\n")
    session.add_all([user, round_, blob])
    session.commit()
    return Seed(user=user, round=round_, blob=blob)
