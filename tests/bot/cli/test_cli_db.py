"""``circuitboard db upgrade`` / ``db check`` as an operator runs them, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.pool import NullPool
from typer.testing import CliRunner

from bot.cli import app
from bot.settings import get_settings
from storage.db import head_revision, make_engine
from storage.models import Base

runner = CliRunner()


@pytest.fixture
def configured_url(database_url: str, monkeypatch) -> str:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CIRCUITBOARD_DATABASE_URL", database_url)
    get_settings.cache_clear()
    return database_url


def _invoke(*args: str):  # type: ignore[no-untyped-def]
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_upgrade_on_an_empty_database_then_again_is_a_no_op(configured_url: str) -> None:
    code, output = _invoke("db", "upgrade")
    assert code == 0, output
    engine = make_engine(configured_url, poolclass=NullPool)
    try:
        assert set(inspect(engine).get_table_names()) == set(Base.metadata.tables) | {
            "alembic_version"
        }
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO processed_events (key, received_at) VALUES ('Ev1', '2026-11-25 12:00:00+00:00')"
                )
            )

        code, output = _invoke("db", "upgrade")
        assert code == 0, output
        with engine.connect() as connection:
            assert connection.execute(text("SELECT key FROM processed_events")).scalars().all() == [
                "Ev1"
            ]
            assert connection.execute(
                text("SELECT version_num FROM alembic_version")
            ).scalars().all() == [head_revision()]
    finally:
        engine.dispose()


def test_check_fails_until_the_database_is_migrated(configured_url: str) -> None:
    code, output = _invoke("db", "check")
    assert code == 1
    assert "circuitboard db upgrade" in output
    assert _invoke("db", "upgrade")[0] == 0
    code, output = _invoke("db", "check")
    assert code == 0, output
    assert f"is at {head_revision()}" in output


def test_check_never_creates_the_sqlite_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    code, _ = _invoke("db", "check")
    assert code == 1
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())


def test_default_upgrade_creates_the_database_under_the_data_dir(tmp_path) -> None:  # type: ignore[no-untyped-def]
    code, output = _invoke("db", "upgrade")
    assert code == 0, output
    assert (tmp_path / "data" / "circuitboard.db").is_file()
    assert _invoke("db", "check")[0] == 0


def test_messages_never_show_the_database_password(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(
        "CIRCUITBOARD_DATABASE_URL", "postgresql+psycopg://bot:hunter2@127.0.0.1:1/nowhere"
    )
    get_settings.cache_clear()
    code, output = _invoke("db", "check")
    assert code == 1
    assert "hunter2" not in output and "bot:***@127.0.0.1:1/nowhere" in output


def test_upgrade_on_an_existing_zero_byte_sqlite_file(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    database = tmp_path / "empty.db"
    database.touch()
    monkeypatch.setenv("CIRCUITBOARD_DATABASE_URL", f"sqlite:///{database}")
    get_settings.cache_clear()
    code, output = _invoke("db", "upgrade")
    assert code == 0, output
    assert _invoke("db", "check")[0] == 0
