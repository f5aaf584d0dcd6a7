"""Assemble the customers a campaign considers: its segments, their scores and what limits contact."""

from __future__ import annotations

import pandas as pd

from winback.config import CampaignConfig
from winback.segments.aggrieved import aggrieved_segment
from winback.segments.lapsed import lapsed_segment

EPOCH = pd.Timestamp(0, tz="UTC")


def build_candidates(
    scored: pd.DataFrame,
    failures: pd.DataFrame,
    reach: pd.DataFrame,
    history: pd.DataFrame,
    config: CampaignConfig,
    as_of_day: float,
    typical_gap: float | None = None,
) -> pd.DataFrame:
    """One row per customer in any requested segment, ready for `segments.decision.decide`.

    A customer who is both lapsed and aggrieved is treated as aggrieved: the failure is what the
    message must address. Customers with a failure but no order history get neutral scores.

    Parameters
    ----------
    scored
        Output of `segments.scoring.score_customers`, plus `last_day` (epoch days of the last order).
    failures
        Output of `warehouse.queries.open_failures`.
    reach
        Output of `messages.channel_choice.choose_channels`.
    history
        Output of `warehouse.runs.contact_history`.
    as_of_day
        The decision time in epoch days.
    typical_gap
        The whole run's median gap between orders (`scoring.Scorer`), when `scored` is one partition.
    """
    parts = []
    if "aggrieved" in config.segments:
        agg = aggrieved_segment(failures, config.aggrieved)
        agg = agg.merge(scored, on="customer_id", how="left")
        agg["segment"] = "aggrieved"
        # unit-agnostic (pandas 3: µs); typed first, as a part of a run may have no failure at all
        failure_day = (pd.to_datetime(agg["occurred_at"], utc=True) - EPOCH).dt.total_seconds() / 86_400.0
        agg["returned_since_failure"] = (~agg["unresolved"].astype(bool)) & (agg["last_day"] > failure_day + 1)
        parts.append(agg)
    if "lapsed" in config.segments:
        lapsed = lapsed_segment(scored, config.lapsed, typical_gap)
        if parts:
            lapsed = lapsed.loc[~lapsed["customer_id"].isin(parts[0]["customer_id"])]
        lapsed = lapsed.assign(segment="lapsed", returned_since_failure=False)
        parts.append(lapsed)
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["customer_id"])
    for col, default in (("p_active", 0.5), ("customer_value", 0.0), ("mean_spend", 0.0)):
        frame[col] = frame[col].astype(float).fillna(default)
    for col in ("failure_id", "failure_category", "order_id", "description"):
        if col not in frame.columns:
            frame[col] = None
    for col in ("severity", "order_amount"):  # numbers even when no failure came (its empty frame is untyped)
        frame[col] = frame[col].astype(float) if col in frame.columns else float("nan")
    if "unresolved" not in frame.columns:
        frame["unresolved"] = False
    frame["unresolved"] = frame["unresolved"].fillna(False).astype(bool)
    frame = frame.merge(reach, on="customer_id", how="left")
    frame = frame.merge(history, on="customer_id", how="left")
    frame["messages_30d"] = frame["messages_30d"].fillna(0).astype("int64")
    for col in ("do_not_contact", "fraud_flag"):
        frame[col] = frame[col].fillna(False).astype(bool)
    frame["returned_since_failure"] = frame["returned_since_failure"].fillna(False).astype(bool)
    for col in ("past_contacts", "past_returns"):
        frame[col] = frame[col].fillna(0).astype("int64") if col in frame.columns else 0
    return _failure_days(frame, as_of_day)


def _failure_days(frame: pd.DataFrame, as_of_day: float) -> pd.DataFrame:
    """Days since the failure, and days it took to resolve (missing while unresolved at decision time)."""
    if "occurred_at" not in frame.columns:
        frame["days_since_failure"] = frame["days_to_resolve"] = float("nan")
        return frame
    occurred = pd.to_datetime(frame["occurred_at"], utc=True)
    frame["days_since_failure"] = as_of_day - (occurred - EPOCH).dt.total_seconds() / 86_400.0
    if "resolved_at" in frame.columns:
        resolved = pd.to_datetime(frame["resolved_at"], utc=True).where(~frame["unresolved"])
        frame["days_to_resolve"] = (resolved - occurred).dt.total_seconds() / 86_400.0
    else:
        frame["days_to_resolve"] = float("nan")
    return frame
