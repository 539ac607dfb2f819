"""The migrations build exactly the models' schema, atomically, on SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool
from storage_seed import OPENS

from storage.db import (
    MIGRATIONS_DIR,
    alembic_config,
    database_revision,
    head_revision,
    include_object,
    make_engine,
    upgrade_database,
)
from storage.models import Base, Hint, PuzzleVersion, Round

ROOT = Path(__file__).resolve().parents[2]


def _schema_diff(url: str) -> list:  # type: ignore[type-arg]
    engine = make_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "include_object": include_object}
            )
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = make_engine(url, poolclass=NullPool)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_schema_after_upgrade_equals_the_models(database_url: str) -> None:
    upgrade_database(database_url)
    assert _schema_diff(database_url) == []
    assert _tables(database_url) == set(Base.metadata.tables) | {"alembic_version"}
    assert database_revision(database_url) == head_revision()


def test_tables_owned_by_libraries_are_left_alone(database_url: str) -> None:
    upgrade_database(database_url)
    engine = make_engine(database_url, poolclass=NullPool)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE apscheduler_jobs (id VARCHAR(191) PRIMARY KEY)"))
        connection.execute(text("CREATE INDEX ix_kombu_like ON apscheduler_jobs (id)"))
    engine.dispose()
    assert _schema_diff(database_url) == []
    upgrade_database(database_url)  # and a later upgrade does not touch them
    assert "apscheduler_jobs" in _tables(database_url)


def test_downgrade_to_base_then_upgrade_again(database_url: str) -> None:
    """Rebuilding a development database after the pre-release migration is regenerated."""
    upgrade_database(database_url)
    command.downgrade(alembic_config(database_url), "base")
    assert _tables(database_url) == {"alembic_version"}
    upgrade_database(database_url)
    assert _schema_diff(database_url) == []


def test_history_is_linear_and_frozen() -> None:
    """One head; revisions never import our models, so changing a model never rewrites history."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        source = path.read_text()
        assert "import storage" not in source and "from storage" not in source, path.name


def _migrations_plus(tmp_path: Path, url: str, upgrade_body: str) -> Config:
    """A copy of our migrations with one more revision on top, for testing the environment."""
    scripts = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / "9999_test.py").write_text(
        textwrap.dedent(
            f"""
            import sqlalchemy as sa
            from alembic import op

            revision = "9999"
            down_revision = {head_revision()!r}

            def upgrade():
            """
        )
        + textwrap.indent(textwrap.dedent(upgrade_body), "    ")
    )
    config = alembic_config(url)
    config.set_main_option("script_location", str(scripts))
    return config


def test_a_failing_migration_leaves_the_database_untouched(database_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = _migrations_plus(
        tmp_path,
        database_url,
        """
        op.create_table("half_done", sa.Column("id", sa.Integer, primary_key=True))
        op.execute("SELECT * FROM no_such_table")
        """,
    )
    with pytest.raises(Exception, match="no_such_table"):
        command.upgrade(config, "head")
    # Everything ran in one transaction: not even the initial schema is left behind.
    assert _tables(database_url) <= {"alembic_version"}
    upgrade_database(database_url)
    assert _schema_diff(database_url) == []


def test_rebuilding_a_parent_table_keeps_its_children(database_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """SQLite ALTERs by copy-and-drop; with foreign keys on, the DROP would cascade into hints."""
    upgrade_database(database_url)
    engine = make_engine(database_url, poolclass=NullPool)
    with Session(engine) as session:
        puzzle = PuzzleVersion(slug="p", version=1, weights_sha256="0" * 64, title="P")
        round_ = Round(
            puzzle_version=puzzle,
            channel_id="C1",
            opens_at=OPENS,
            closes_at=OPENS.replace(year=2027),
        )
        session.add(Hint(round=round_, position=1, text="hint", release_at=OPENS))
        session.commit()
    config = _migrations_plus(
        tmp_path,
        database_url,
        """
        # What autogenerate emits: a copy on SQLite (forced here), a plain ALTER elsewhere.
        sqlite = op.get_bind().dialect.name == "sqlite"
        with op.batch_alter_table("rounds", recreate="always" if sqlite else "auto") as batch:
            batch.add_column(sa.Column("extra", sa.Integer, nullable=True))
        """,
    )
    command.upgrade(config, "head")
    with Session(engine) as session:
        assert session.scalars(select(Hint.text)).all() == ["hint"]
    engine.dispose()


def test_concurrent_upgrades_wait_for_each_other(database_url: str) -> None:
    """The bot and a worker starting together both migrate; neither fails, the schema is built once."""
    code = "import sys; from storage.db import upgrade_database; upgrade_database(sys.argv[1])"
    runners = [
        subprocess.Popen(
            [sys.executable, "-c", code, database_url],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [runner.communicate(timeout=120)[0] for runner in runners]
    assert [runner.returncode for runner in runners] == [0, 0], outputs
    assert _schema_diff(database_url) == []
    assert database_revision(database_url) == head_revision()


def test_the_newest_verdict_marker_is_backfilled_and_survives_a_rebuild(
    database_url: str, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """Migration 0003 fills the marker from the verdicts already stored; its trigger keeps
    working after a later migration rebuilds ``submissions`` (SQLite's copy-and-rename)."""
    from storage.models import Submission, Verdict

    upgrade_database(database_url, revision="0002")
    engine = make_engine(database_url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO slack_users (id, created_at) VALUES ('U1', :t)"), {"t": OPENS}
        )
        conn.execute(
            text(
                "INSERT INTO puzzle_versions (id, slug, version, weights_sha256, title, created_at)"
                " VALUES (1, 'p', 1, :w, 'P', :t)"
            ),
            {"w": "0" * 64, "t": OPENS},
        )
        conn.execute(
            text(
                "INSERT INTO rounds (id, puzzle_version_id, channel_id, opens_at, closes_at,"
                " status, created_at) VALUES (1, 1, 'C1', :o, :c, 'open', :o)"
            ),
            {"o": OPENS, "c": OPENS.replace(year=2027)},
        )
        conn.execute(
            text("INSERT INTO blobs (sha256, size, content, created_at) VALUES (:h, 1, :b, :t)"),
            {"h": "a" * 64, "b": b"x", "t": OPENS},
        )
        for sid in (1, 2, 3):
            conn.execute(
                text(
                    "INSERT INTO submissions (id, round_id, user_id, filename, blob_sha256,"
                    " status, attempts, created_at, updated_at) VALUES"
                    " (:i, 1, 'U1', 's.py', :h, 'verified', 1, :t, :t)"
                ),
                {"i": sid, "h": "a" * 64, "t": OPENS},
            )
        # 1: passed then failed; 2: failed then passed; 3: no verdict.
        for sid, attempt, passed in ((1, 1, True), (1, 2, False), (2, 1, False), (2, 2, True)):
            conn.execute(
                text(
                    "INSERT INTO verdicts (submission_id, attempt, passed, checks_passed, scores,"
                    " report_md, created_at) VALUES (:s, :a, :p, 0, '{}', '', :t)"
                ),
                {"s": sid, "a": attempt, "p": passed, "t": OPENS},
            )
    upgrade_database(database_url)

    def markers() -> dict[int, bool]:
        with Session(engine) as session:
            rows = session.execute(select(Submission.id, Submission.newest_verdict_passed))
            return {sid: bool(flag) for sid, flag in rows}

    assert markers() == {1: False, 2: True, 3: False}
    config = _migrations_plus(
        tmp_path,
        database_url,
        """
        sqlite = op.get_bind().dialect.name == "sqlite"
        with op.batch_alter_table("submissions", recreate="always" if sqlite else "auto") as b:
            b.add_column(sa.Column("extra", sa.Integer, nullable=True))
        """,
    )
    command.upgrade(config, "head")
    with Session(engine) as session:
        session.add(Verdict(submission_id=3, attempt=1, passed=True))
        session.commit()
    assert markers() == {1: False, 2: True, 3: True}
    engine.dispose()
