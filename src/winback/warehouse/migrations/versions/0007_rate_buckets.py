"""per-channel token buckets shared by every sender of a state database

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 07:20:00

Several senders (Prefect tasks, flow runs on several workers) drain one outbox; the providers' rate limits
are per account, so the senders take their tokens from one bucket per channel in the state database
(`warehouse.rate_buckets`), not one bucket each. A row is created by the first sender that needs it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "wb_rate_buckets",
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("tokens", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("channel", name=op.f("pk_wb_rate_buckets")),
    )


def downgrade() -> None:
    op.drop_table("wb_rate_buckets")
