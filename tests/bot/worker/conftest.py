"""A database + broker pair for the queue tests: SQLite with kombu's SQL transport on the same file
(the embedded default), or PostgreSQL with the real Redis (the distributed setup)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy.orm import Session, sessionmaker
from support.queue import SMALL_VERIFY, seed_round

from bot.settings import Settings, get_settings
from storage.db import make_engine, session_factory, upgrade_database


@dataclass
class QueueSetup:
    name: str
    settings: Settings
    factory: sessionmaker[Session]
    round_id: int


def _configure(monkeypatch, *, database_url: str, broker_url: str, **extra: str) -> Settings:
    env = {
        "CIRCUITBOARD_DATABASE_URL": database_url,
        "CIRCUITBOARD_BROKER_URL": broker_url,
        # short enough that a killed worker's job is retaken within seconds, long enough that a
        # live worker on a machine at load 20 still renews it (every lease/4 s) before it expires
        "CIRCUITBOARD_LEASE_SECONDS": "10",
        "CIRCUITBOARD_TASK_TIME_LIMIT": "60",
        "CIRCUITBOARD_VERIFY_OVERRIDES": SMALL_VERIFY,
        "CIRCUITBOARD_DAILY_SUBMISSION_LIMIT": "1000",
        # re-send a queued job whose message vanished (e.g. another test FLUSHDBs the shared Redis)
        "CIRCUITBOARD_REQUEUE_AFTER": "30",
        # one torch thread per worker process: two workers share the two cores fairly
        "OMP_NUM_THREADS": "1",
        **extra,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    return get_settings()


def _setup(name: str, settings: Settings) -> QueueSetup:
    upgrade_database(settings.db_url)
    engine = make_engine(settings.db_url)
    factory = session_factory(engine)
    return QueueSetup(name=name, settings=settings, factory=factory, round_id=seed_round(factory))


@pytest.fixture
def sqlite_queue(tmp_path, monkeypatch) -> QueueSetup:
    db = tmp_path / "data" / "circuitboard.db"
    settings = _configure(
        monkeypatch, database_url=f"sqlite:///{db}", broker_url=f"sqla+sqlite:///{db}"
    )
    return _setup("sqlite", settings)


@pytest.fixture
def redis_queue(postgres_url, redis_url, monkeypatch) -> QueueSetup:
    settings = _configure(monkeypatch, database_url=postgres_url, broker_url=redis_url)
    return _setup("redis", settings)


@pytest.fixture(
    params=["sqlite", pytest.param("redis", marks=[pytest.mark.redis, pytest.mark.postgres])]
)
def queue_setup(request) -> QueueSetup:
    """Runs a test on the embedded SQLite broker and on Redis + PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_queue")
