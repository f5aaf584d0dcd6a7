"""Past runs' randomized customers with what their decisions knew and whether they came back: an uplift model's data.

Only runs whose attribution window has closed, and been tracked since it closed, by the moment asked about
(`returns.window_closed`, the rule the per-offer-kind learning uses): a window still filling counts only
the quick returners. Only decisions that stored their features (revision 0005 on) are returned.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import Connection, Text, and_, cast, select

from winback.warehouse.frames import frame_from_rows, raw_rows
from winback.warehouse.models import CampaignRun, Decision, Return
from winback.warehouse.returns import window_closed
from winback.warehouse.timeutil import epoch_days, to_epoch_days, utc

COLUMNS = [
    "run_id",
    "customer_id",
    "arm",
    "segment",
    "failure_category",
    "severity",
    "p_active",
    "customer_value",
    "channel",
    "offer_kind",
    "offer_value",
    "offer_amount",
    "offer_cost",
    "features",
    "returned",
    "revenue",
]
FLOATS = ("severity", "p_active", "customer_value", "offer_value", "offer_amount", "offer_cost", "revenue")


def closed_run_arms(conn: Connection, campaign_id: str, before: dt.datetime) -> pd.DataFrame:
    """Treated and held-out customers of the campaign's runs whose window closed (and was tracked) by `before`.

    Returns
    -------
    DataFrame
        :data:`COLUMNS`: the decision's own columns, ``features`` as stored (JSON text), ``returned`` (bool)
        and ``revenue`` in the window; one row per (run, customer), ordered by run and customer.
    """
    before = utc(before)
    stmt = (
        select(
            Decision.run_id,
            Decision.customer_id,
            Return.arm,
            Decision.segment,
            Decision.failure_category,
            Decision.severity,
            Decision.p_active,
            Decision.customer_value,
            Decision.channel,
            Decision.offer_kind,
            Decision.offer_value,
            Decision.offer_amount,
            Decision.offer_cost,
            cast(Decision.features, Text),  # the stored text: parsed for the whole run at once, not per row
            Return.returned,
            Return.revenue,
        )
        .join(Return, and_(Return.run_id == Decision.run_id, Return.customer_id == Decision.customer_id))
        .join(CampaignRun, CampaignRun.id == Decision.run_id)
        .where(
            CampaignRun.campaign_id == campaign_id,
            CampaignRun.as_of < before,
            Decision.features.is_not(None),
            window_closed(
                epoch_days(CampaignRun.as_of), Return.window_days, epoch_days(Return.tracked_at), to_epoch_days(before)
            ),
        )
        .order_by(Decision.run_id, Decision.customer_id)
    )
    frame = frame_from_rows(raw_rows(conn, stmt), COLUMNS, dict.fromkeys(FLOATS, "float64"))
    frame["returned"] = frame["returned"].astype(bool)
    return frame
