"""outbox rows record when their provider call started; an outbox history of settled crashes and decisions

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 10:00:00

`started_at` is committed just before a row's own provider call, so after a crash only the rows whose call
had started can be `unknown`; a claimed row that never started goes back to `queued`. Rows a sender left
in `sending` before this revision carry no such mark: they are treated as started (their `claimed_at`),
which keeps them `unknown` as the older code would have, rather than sending them again.

`wb_outbox_history` records the moves outside a plain send: a crash settled by reconcile, a provider
lookup's finding, an operator's re-queue.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("wb_outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("started_at", sa.DateTime(timezone=True), nullable=True))
    outbox = sa.table("wb_outbox", sa.column("status"), sa.column("claimed_at"), sa.column("started_at"))
    op.execute(outbox.update().where(outbox.c.status == "sending").values(started_at=outbox.c.claimed_at))
    op.create_table(
        "wb_outbox_history",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("outbox_id", sa.String(length=40), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("from_status", sa.String(length=12), nullable=False),
        sa.Column("to_status", sa.String(length=12), nullable=False),
        sa.Column("actor", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wb_outbox_history")),
    )
    with op.batch_alter_table("wb_outbox_history", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_wb_outbox_history_outbox_id"), ["outbox_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("wb_outbox_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_wb_outbox_history_outbox_id"))
    op.drop_table("wb_outbox_history")
    with op.batch_alter_table("wb_outbox", schema=None) as batch_op:
        batch_op.drop_column("started_at")
