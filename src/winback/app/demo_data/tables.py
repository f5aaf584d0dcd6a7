"""The tables the demo fills: the business's source tables, plus `demo_truth`, the hidden state to check against."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    func,
    select,
)

from winback.warehouse.models import NAMING_CONVENTION, DemoConsent, DemoCustomer, DemoOrder, DemoServiceFailure

truth_metadata = MetaData(naming_convention=NAMING_CONVENTION)

demo_truth = Table(
    "demo_truth",
    truth_metadata,
    Column("customer_id", String(64), primary_key=True),
    Column("daily_rate", Float, nullable=False, comment="λ: expected orders per day while alive"),
    Column("alive_at_as_of", Boolean, nullable=False, comment="has not dropped out by as_of"),
    Column("spend_scale", Float, nullable=False, comment="expected order value, currency units"),
)

# Orders a contact talked a customer out of, in a replayed past run (demo_data.replay): kept, so that simulating
# the run again first puts them back and the simulation stays repeatable.
withheld_orders = Table(
    "demo_withheld_orders",
    truth_metadata,
    Column("order_id", String(64), primary_key=True),
    Column("run_id", Integer, nullable=False, index=True),
    Column("customer_id", String(64), nullable=False),
    Column("ordered_at", DateTime(timezone=True), nullable=False),
    Column("amount", Numeric(12, 2), nullable=False),
    Column("coupon_code", String(32)),
)

TABLES: dict[str, Table] = {
    "customers": DemoCustomer.__table__,  # type: ignore[dict-item]
    "orders": DemoOrder.__table__,  # type: ignore[dict-item]
    "service_failures": DemoServiceFailure.__table__,  # type: ignore[dict-item]
    "consents": DemoConsent.__table__,  # type: ignore[dict-item]
    "demo_truth": demo_truth,
}


def with_truth(decided: pd.DataFrame, warehouse: Connection, run_id: int) -> pd.DataFrame:
    """`decided` (read from winback's state) with each customer's hidden state from the warehouse's demo_truth.

    Joined here, in Python, not in SQL: the state and the warehouse may be two databases. Refuses customers
    without a truth row (not a demo warehouse).
    """
    t = demo_truth
    rows = warehouse.execute(select(t.c.customer_id, t.c.daily_rate, t.c.alive_at_as_of, t.c.spend_scale)).all()
    truth = pd.DataFrame([tuple(r) for r in rows], columns=["customer_id", "daily_rate", "alive", "spend_scale"])
    frame = decided.merge(truth, on="customer_id", how="left")
    missing = frame["daily_rate"].isna()
    if missing.any():
        raise ValueError(
            f"run {run_id}: {int(missing.sum())} decided customers have no demo_truth row "
            f"(e.g. {frame.loc[missing, 'customer_id'].iloc[0]}); is this a demo warehouse?"
        )
    return frame


def table_counts(engine: Engine) -> dict[str, int]:
    """Row counts of the demo tables, for reports and tests."""
    with engine.connect() as conn:
        return {name: int(conn.execute(select(func.count()).select_from(t)).scalar_one()) for name, t in TABLES.items()}
