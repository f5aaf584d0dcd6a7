"""the outbox's due index on (status, not_before), without the message id

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 00:10:00

The id (32 characters) nearly doubled the index: for the 322,579 messages of a million-customer campaign,
5,849 pages with it against 3,221 without (SQLite, built afresh), and each message's entry is written
again at every status change (queued, sending, sent). A sender spent 168–169 µs a message with it and
143–145 µs without (`bench/send_rate.py`, 100,000 messages, the same state, alternating). `due` still takes
the oldest due first; ties come in the order the index holds them, with no sort (on SQLite the order they
were queued, each batch in id order: `outbox.enqueue_columns`).
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain index statements, not a batch: SQLite drops and creates an index in place, no table copy
    op.drop_index("ix_wb_outbox_status", table_name="wb_outbox")
    op.create_index("ix_wb_outbox_status", "wb_outbox", ["status", "not_before"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_wb_outbox_status", table_name="wb_outbox")
    op.create_index("ix_wb_outbox_status", "wb_outbox", ["status", "not_before", "id"], unique=False)
