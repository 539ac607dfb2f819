"""Fixtures for the monthly-cycle tests (scheduler, rounds and hints services): the test catalog,
a migrated database, the fake Slack. Conftests import them (``tests/bot/scheduler``,
``tests/bot/services``); the catalog is autouse only where the conftest says so."""

from __future__ import annotations

from pathlib import Path

import pytest
from slack_sdk import WebClient

from bot.settings import Settings
from storage.db import make_engine, session_factory, session_scope, upgrade_database
from support.scheduler import CHANNEL, make_settings, utc, write_catalog

PLANNED_AT = utc(2026, 11, 25, 12)  # a Wednesday; 13:00 in Berlin


@pytest.fixture
def catalog(tmp_path, monkeypatch) -> Path:
    root = write_catalog(tmp_path / "catalog")
    monkeypatch.setenv("CIRCUITBOARD_CATALOG_PATH", str(root))
    return root


@pytest.fixture
def url(sqlite_url) -> str:
    upgrade_database(sqlite_url)
    return sqlite_url


@pytest.fixture
def any_url(database_url) -> str:
    """SQLite and the real PostgreSQL."""
    upgrade_database(database_url)
    return database_url


@pytest.fixture
def settings(url) -> Settings:
    return make_settings(url)


@pytest.fixture
def factory(url):
    engine = make_engine(url)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def any_factory(any_url):
    """A session factory on SQLite and on the real PostgreSQL."""
    engine = make_engine(any_url)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def slack_server():
    from fakes.slack import FakeSlack

    fake = FakeSlack().start()
    yield fake
    fake.stop()


@pytest.fixture
def client(slack_server) -> WebClient:
    return WebClient(token=slack_server.token, base_url=slack_server.api_url)


@pytest.fixture
def round_id(factory, settings) -> int:
    """The test catalog's ``alpha`` planned at ``PLANNED_AT`` in the puzzle channel, no hints."""
    from bot.services import rounds

    with session_scope(factory) as s:
        return rounds.plan(
            session=s,
            slug="alpha",
            channel_id=CHANNEL,
            now=PLANNED_AT,
            seed_hints=False,
            settings=settings,
        ).id
