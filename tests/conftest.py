"""Shared fixtures: where the real PostgreSQL and Redis are, and a fresh database per test run.

PostgreSQL/Redis tests run when ``CIRCUITBOARD_TEST_POSTGRES_URL`` / ``CIRCUITBOARD_TEST_REDIS_URL``
are set (``.ci/run`` sets them) and skip with a loud reason otherwise.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator

import pytest
from fakes.slack import fake_slack  # noqa: F401  (fixture: the fake Slack Web API server)

POSTGRES_URL = os.environ.get("CIRCUITBOARD_TEST_POSTGRES_URL")


def _redis_url_for_this_worker(url: str | None) -> str | None:
    """Each pytest-xdist worker flushes its own Redis database: the given index plus its number.

    PostgreSQL needs nothing alike: every test gets a database of its own (``postgres_url``).
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not url or not worker.startswith("gw"):
        return url
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    index = int(parts.path.strip("/") or 0) + int(worker.removeprefix("gw"))
    if index > 15:
        raise RuntimeError(f"Redis database {index} for {worker}: pick a lower index in {url}")
    return parts._replace(path=f"/{index}").geturl()


REDIS_URL = _redis_url_for_this_worker(os.environ.get("CIRCUITBOARD_TEST_REDIS_URL"))

NO_POSTGRES = "PostgreSQL NOT TESTED: set CIRCUITBOARD_TEST_POSTGRES_URL (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)"
NO_REDIS = "Redis NOT TESTED: set CIRCUITBOARD_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379/0)"


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path, monkeypatch) -> Iterator[None]:
    """Every test gets its own data dir and no ambient .env or Slack tokens."""
    for key in list(os.environ):
        if key.startswith("CIRCUITBOARD_") and not key.startswith("CIRCUITBOARD_TEST_"):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("CIRCUITBOARD_DATA_DIR", str(tmp_path / "data"))
    from bot.settings import Settings, get_settings

    # A developer's .env (real Slack tokens, a production database) must never reach a test.
    monkeypatch.setitem(Settings.model_config, "env_file", None)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
    sender = sys.modules.get("bot.worker.sender")
    if sender is not None:  # a job body ran in this process: stop the outbox sender it started
        sender.stop_senders()


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    if not POSTGRES_URL:
        pytest.skip(NO_POSTGRES)
    return POSTGRES_URL


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A brand-new, empty PostgreSQL database for one test, dropped afterwards."""
    import psycopg
    from sqlalchemy.engine import make_url

    server = make_url(postgres_server_url)
    name = f"cb_test_{uuid.uuid4().hex[:12]}"
    admin_dsn = server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request) -> str:
    """Runs a test once on SQLite and once on the real PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The real Redis, on a database index flushed before and after the test."""
    if not REDIS_URL:
        pytest.skip(NO_REDIS)
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    yield REDIS_URL
    client.flushdb()
