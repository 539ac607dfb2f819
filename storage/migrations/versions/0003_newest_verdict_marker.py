"""newest verdict marker: submissions.newest_verdict_passed, kept by a trigger on verdicts

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 05:00:00

Verdicts are append-only: a new verdict is the submission's newest unless one with a higher
attempt exists. The trigger sets the marker on every insert, whoever inserts (the worker, an
admin script, a bulk COPY), so "who solved a round" is a scan of one partial index instead of
an anti-join over every passing verdict.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_IS_NEWEST = (
    "NOT EXISTS (SELECT 1 FROM verdicts AS v WHERE v.submission_id = NEW.submission_id"
    " AND v.attempt > NEW.attempt)"
)
_UPDATE = (
    "UPDATE submissions SET newest_verdict_passed = NEW.passed"
    f" WHERE id = NEW.submission_id AND {_IS_NEWEST}"
)


def upgrade() -> None:
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "newest_verdict_passed", sa.Boolean(), server_default=sa.false(), nullable=False
            )
        )
    op.execute(
        "UPDATE submissions SET newest_verdict_passed = COALESCE((SELECT v.passed FROM verdicts"
        " AS v WHERE v.submission_id = submissions.id ORDER BY v.attempt DESC LIMIT 1), false)"
    )
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_submissions_solved",
            ["round_id", "user_id", "status", "created_at"],
            unique=False,
            sqlite_where=sa.text("newest_verdict_passed = 1"),
            postgresql_where=sa.text("newest_verdict_passed"),
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION verdicts_mark_newest() RETURNS trigger LANGUAGE plpgsql AS $$"
            f" BEGIN {_UPDATE}; RETURN NULL; END $$"
        )
        op.execute(
            "CREATE TRIGGER trg_verdicts_mark_newest AFTER INSERT ON verdicts"
            " FOR EACH ROW EXECUTE FUNCTION verdicts_mark_newest()"
        )
    else:
        op.execute(
            f"CREATE TRIGGER trg_verdicts_mark_newest AFTER INSERT ON verdicts BEGIN {_UPDATE}; END"
        )


def downgrade() -> None:
    op.execute(
        "DROP TRIGGER IF EXISTS trg_verdicts_mark_newest"
        + (" ON verdicts" if op.get_bind().dialect.name == "postgresql" else "")
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS verdicts_mark_newest()")
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_submissions_solved",
            sqlite_where=sa.text("newest_verdict_passed = 1"),
            postgresql_where=sa.text("newest_verdict_passed"),
        )
        batch_op.drop_column("newest_verdict_passed")
