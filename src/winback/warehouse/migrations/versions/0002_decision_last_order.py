"""decisions keep the customer's last order time and the offer's capped amount, indexed by run and action

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 19:30:00

Queueing a run's messages used to aggregate the orders again for each contacted customer's last order;
the decision stage already knows it. Decisions recorded before this revision keep NULL: their messages,
if still to be queued, say nothing about the last order rather than guess it. The index serves the reads
of one action of a run: the contacts to queue, and the holdouts whose window is still open. The offer's
amount (after the policy's caps) is what the shop must limit a percent code to.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("wb_decisions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_order_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("offer_amount", sa.Double(), nullable=True))
        batch_op.create_index("ix_wb_decisions_run_action", ["run_id", "action"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("wb_decisions", schema=None) as batch_op:
        batch_op.drop_index("ix_wb_decisions_run_action")
        batch_op.drop_column("offer_amount")
        batch_op.drop_column("last_order_at")
