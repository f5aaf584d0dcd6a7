"""decisions keep the incremental spend the uplift model predicted for the message decided

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 07:30:00

Beside the return, the uplift model predicts what the message adds to the customer's spend inside the
attribution window (`segments.uplift.decision_model`); the decision's expected gain counts it, `winback
explain` shows it and the report checks it on the run's holdout (the spend Qini). Decisions recorded before
this revision, or made without a validated spend model, keep NULL.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("wb_decisions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("predicted_spend_uplift", sa.Double(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("wb_decisions", schema=None) as batch_op:
        batch_op.drop_column("predicted_spend_uplift")
