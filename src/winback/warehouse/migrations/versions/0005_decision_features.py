"""decisions keep the features they were made with, the uplift the model predicted, and the variant drawn

Revision ID: 0005
Revises: 0002
Create Date: 2026-12-04 18:00:00

An uplift model learns from past runs' treated and held-out customers; it must see each customer as the
decision saw them, not as they look after the campaign (a return would leak into its own features). So each
decision stores its features (JSON), the uplift model's prediction for the message decided (the report checks
it on the run's holdout), and the message/offer variant the customer was randomised to. Decisions recorded
before this revision keep NULL in all three: they are not used to train, and the report says so.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("wb_decisions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("features", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("predicted_uplift", sa.Double(), nullable=True))
        batch_op.add_column(sa.Column("variant", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("wb_decisions", schema=None) as batch_op:
        batch_op.drop_column("variant")
        batch_op.drop_column("predicted_uplift")
        batch_op.drop_column("features")
