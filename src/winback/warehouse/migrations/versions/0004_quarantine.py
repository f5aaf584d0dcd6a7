"""the data-quality quarantine: source rows and values a run set aside, with the problem of each

Revision ID: 0004_quarantine
Revises: 0002
Create Date: 2026-12-04 17:00:00

A new table only: runs decided before it have no quarantine (they used every row they read).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "wb_quarantine",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("source_table", sa.String(length=128), nullable=False),
        sa.Column("record_id", sa.String(length=128), nullable=True),
        sa.Column("customer_id", sa.String(length=128), nullable=True),
        sa.Column("field", sa.String(length=128), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("problem", sa.Text(), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["wb_campaign_runs.id"], name=op.f("fk_wb_quarantine_run_id_wb_campaign_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wb_quarantine")),
    )
    op.create_index("ix_wb_quarantine_run_table", "wb_quarantine", ["run_id", "source_table"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_wb_quarantine_run_table", table_name="wb_quarantine")
    op.drop_table("wb_quarantine")
