"""submission timings: when each submission reached each stage

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 04:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "submission_timings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["submissions.id"],
            name=op.f("fk_submission_timings_submission_id_submissions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_submission_timings")),
    )
    with op.batch_alter_table("submission_timings", schema=None) as batch_op:
        batch_op.create_index(
            "ix_submission_timings_submission_at", ["submission_id", "at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("submission_timings", schema=None) as batch_op:
        batch_op.drop_index("ix_submission_timings_submission_at")
    op.drop_table("submission_timings")
