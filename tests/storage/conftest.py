"""A migrated database (SQLite and PostgreSQL) and a few parent rows for storage tests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool
from storage_seed import OPENS, Seed, make_blob

from storage.db import make_engine, upgrade_database
from storage.models import PuzzleVersion, Round, SlackUser


@pytest.fixture
def migrated_url(database_url: str) -> str:
    upgrade_database(database_url)
    return database_url


@pytest.fixture
def engine(migrated_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_url, poolclass=NullPool)
    yield engine
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
