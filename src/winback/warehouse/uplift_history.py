"""Past runs' randomized customers with what their decisions knew and whether they came back: an uplift model's data.

Only runs whose attribution window has closed, and been tracked since it closed, by the moment asked about
(`returns.window_closed`, the rule the per-offer-kind learning uses): a window still filling counts only
the quick returners. Only decisions that stored their features (revision 0005 on) are returned.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import Connection, Text, and_, cast, func, select

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


def closed_run_arms(conn: Connection, campaign_id: str, before: dt.datetime, *, features: bool = True) -> pd.DataFrame:
    """Treated and held-out customers of the campaign's runs whose window closed (and was tracked) by `before`.

    Parameters
    ----------
    features
        False: without the stored features (``decision_id`` instead, for :func:`stored_feature_texts`), when
        only a sample's are needed: the JSON text is most of what a million rows weigh.

    Returns
    -------
    DataFrame
        :data:`COLUMNS`: the decision's own columns, ``features`` as stored (JSON text), ``returned`` (bool)
        and ``revenue`` in the window; one row per (run, customer), ordered by run and customer.
    """
    before = utc(before)
    stored = cast(Decision.features, Text) if features else Decision.id  # the text: parsed for many rows at once
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
            stored,
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
    columns = COLUMNS if features else [("decision_id" if c == "features" else c) for c in COLUMNS]
    frame = frame_from_rows(raw_rows(conn, stmt), columns, dict.fromkeys(FLOATS, "float64"))
    frame["returned"] = frame["returned"].astype(bool)
    return frame


def stored_feature_texts(conn: Connection, decision_ids: pd.Series, batch: int = 10_000) -> list[str | None]:
    """The stored features (JSON text) of these decisions, in the same order; None where none was stored."""
    ids = [int(i) for i in decision_ids]
    texts: dict[int, str | None] = {}
    for start in range(0, len(ids), batch):
        part = ids[start : start + batch]
        stmt = select(Decision.id, cast(Decision.features, Text)).where(Decision.id.in_(part))
        texts.update(raw_rows(conn, stmt))
    return [texts.get(i) for i in ids]


SCORED_COLUMNS = ["run_id", "customer_id", "arm", "returned", "revenue", "predicted_uplift", "offer_kind",
                  "customer_value", "offer_cost", "channel", "variant", "segment",
                  "predicted_spend_uplift"]  # fmt: skip


def scored_arms(conn: Connection, run_ids: list[int]) -> pd.DataFrame:
    """The runs' treated and held-out customers with their tracked outcome and the uplift predicted for them.

    Returns
    -------
    DataFrame
        :data:`SCORED_COLUMNS`; ``predicted_uplift`` is NaN where the run decided without an uplift model,
        ``predicted_spend_uplift`` where it had no validated spend model.
    """
    stmt = (
        select(
            Return.run_id,
            Return.customer_id,
            Return.arm,
            Return.returned,
            Return.revenue,
            Decision.predicted_uplift,
            Decision.offer_kind,
            Decision.customer_value,
            Decision.offer_cost,
            Decision.channel,
            Decision.variant,
            Decision.segment,
            Decision.predicted_spend_uplift,
        )
        .join(Decision, and_(Decision.run_id == Return.run_id, Decision.customer_id == Return.customer_id))
        .where(Return.run_id.in_(run_ids))
        .order_by(Return.run_id, Return.customer_id)
    )
    floats = dict.fromkeys(
        ("revenue", "predicted_uplift", "customer_value", "offer_cost", "predicted_spend_uplift"), "float64"
    )
    frame = frame_from_rows(raw_rows(conn, stmt), SCORED_COLUMNS, floats)
    frame["returned"] = frame["returned"].astype(bool)
    return frame


def closed_runs(conn: Connection, campaign_id: str, until: dt.datetime) -> pd.DataFrame:
    """The campaign's runs whose window has closed and been tracked since, by `until`: run_id, as_of, stats."""
    tracked = (
        select(Return.run_id, func.min(Return.window_days).label("days"), func.min(Return.tracked_at).label("at"))
        .group_by(Return.run_id)
        .subquery()
    )
    stmt = (
        select(CampaignRun.id, CampaignRun.as_of, CampaignRun.stats)
        .join(tracked, tracked.c.run_id == CampaignRun.id)
        .where(
            CampaignRun.campaign_id == campaign_id,
            window_closed(epoch_days(CampaignRun.as_of), tracked.c.days, epoch_days(tracked.c.at),
                          to_epoch_days(utc(until))),
        )
        .order_by(CampaignRun.as_of)
    )  # fmt: skip
    rows = conn.execute(stmt).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=["run_id", "as_of", "stats"])
