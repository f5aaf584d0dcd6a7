"""winback's own past with each customer, as it stood at a decision: earlier contacts and returns.

Counted only from what had happened before the decision's as-of, so a feature never carries news from after
it: a contact counts if its run decided before the as-of, a return if it happened before the as-of (a
return inside an earlier run's window that falls after this as-of is still in the future here).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import Connection, func, select

from winback.warehouse.models import CampaignRun, Decision, Return
from winback.warehouse.timeutil import utc

COLUMNS = ["customer_id", "past_contacts", "past_returns"]


def past_outcomes(conn: Connection, as_of: dt.datetime, exclude_run_id: int | None = None) -> pd.DataFrame:
    """Per customer with any: campaign contacts decided before `as_of`, and returns recorded before it.

    Parameters
    ----------
    as_of
        The decision time; nothing at or after it counts.
    exclude_run_id
        The run deciding now (its own decisions are not its past).

    Returns
    -------
    DataFrame
        customer_id, past_contacts (runs of any campaign that decided to contact them), past_returns
        (tracked returns after any run, by their first order's time), both int64; customers with neither
        are absent.
    """
    as_of = utc(as_of)
    contacts = (
        select(Decision.customer_id, func.count().label("n"))
        .join(CampaignRun, CampaignRun.id == Decision.run_id)
        .where(Decision.action == "contact", CampaignRun.as_of < as_of)
        .group_by(Decision.customer_id)
    )
    returns = (
        select(Return.customer_id, func.count().label("n"))
        .join(CampaignRun, CampaignRun.id == Return.run_id)
        .where(Return.returned.is_(True), Return.first_return_at < as_of, CampaignRun.as_of < as_of)
        .group_by(Return.customer_id)
    )
    if exclude_run_id is not None:
        contacts = contacts.where(Decision.run_id != exclude_run_id)
        returns = returns.where(Return.run_id != exclude_run_id)
    counted = [
        pd.DataFrame.from_records(conn.execute(stmt).fetchall(), columns=["customer_id", name]).set_index("customer_id")
        for stmt, name in ((contacts, "past_contacts"), (returns, "past_returns"))
    ]
    frame = counted[0].join(counted[1], how="outer").fillna(0).astype("int64").reset_index()
    return frame.reindex(columns=COLUMNS)
