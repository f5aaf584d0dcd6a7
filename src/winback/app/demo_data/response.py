"""The demo's "future": the orders decided customers place after a run, with a known true lift.

A real campaign waits weeks to see who came back; the demo writes those orders at once, from each
customer's hidden state in `demo_truth`, so `winback track` and `winback report` have something to measure
and the measured lift can be checked against the truth.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, delete, select

from winback.app.demo_data.parameters import ORDER_SHAPE
from winback.app.demo_data.tables import with_truth
from winback.warehouse.models import CampaignRun, Decision, DemoOrder, Offer
from winback.warehouse.timeutil import utc


@dataclass(frozen=True)
class ResponseSummary:
    """What `simulate_campaign_response` inserted, per arm, and the truth it used.

    `true_lift` is the nominal absolute lift added to each treated customer's return probability;
    `true_ate` is the exact average treatment effect over the decided customers after clipping at 1
    (mean of min(1, b + true_lift) − b over treatment and holdout alike), i.e. what the measured
    treatment-minus-holdout return rate estimates.
    """

    run_id: int
    as_of: dt.datetime
    window_days: int
    true_lift: float
    true_ate: float
    decided_treatment: int
    decided_holdout: int
    returned_treatment: int
    returned_holdout: int
    orders_inserted: int
    coupons_used: int
    replaced_orders: int  # "R<run>-" orders deleted first because of an earlier simulation of this run
    kinds: dict[str, int] = field(default_factory=dict)  # heterogeneous effects: decided customers per kind

    @property
    def measured_lift(self) -> float:
        """Treatment return rate minus holdout return rate (NaN when an arm is empty)."""
        if not self.decided_treatment or not self.decided_holdout:
            return float("nan")
        return self.returned_treatment / self.decided_treatment - self.returned_holdout / self.decided_holdout


def _decided(state: Connection, run_id: int) -> pd.DataFrame:
    """Treatment and holdout customers of the run, from winback's state (their truth is in the warehouse)."""
    d = Decision.__table__
    rows = state.execute(
        select(d.c.customer_id, d.c.arm)
        .where(d.c.run_id == run_id, d.c.arm.in_(("treatment", "holdout")))
        .order_by(d.c.customer_id)
    ).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=["customer_id", "arm"])


def run_and_codes(state: Connection, run_id: int) -> tuple[dt.datetime, dict[str, str]]:
    """The run's as-of and its customers' coupon codes, from winback's state."""
    runs, offers = CampaignRun.__table__, Offer.__table__
    as_of_raw = state.execute(select(runs.c.as_of).where(runs.c.id == run_id)).scalar_one_or_none()
    if as_of_raw is None:
        raise ValueError(f"no campaign run {run_id}")
    codes = dict(state.execute(select(offers.c.customer_id, offers.c.code).where(offers.c.run_id == run_id)).all())
    return utc(as_of_raw), codes


def _return_orders(
    rng: np.random.Generator,
    frame: pd.DataFrame,
    codes: dict[str, str],
    as_of: dt.datetime,
    window_days: int,
    redemption_share: float,
    run_id: int,
) -> list[dict[str, Any]]:
    """One or two orders per returner inside (as_of, as_of + window]; treated ones may use their coupon.

    Treated returners come back sooner (the message prompts them), holdout returners uniformly; a second
    order follows at the customer's own rate.
    """
    rows: list[dict[str, Any]] = []
    window_s = window_days * 86_400
    for rec in frame.itertuples(index=False):
        treated = rec.arm == "treatment"
        first = 60 + int((rng.beta(1.0, 2.0) if treated else rng.random()) * (window_s - 60))
        seconds = [first]
        if rng.random() < 1.0 - np.exp(-rec.daily_rate * (window_s - first) / 86_400):
            seconds.append(first + 1 + int(rng.random() * (window_s - first - 1)))
        use_coupon = treated and rec.customer_id in codes and rng.random() < redemption_share
        for k, offset in enumerate(seconds):
            amount = max(float(rng.gamma(ORDER_SHAPE, rec.spend_scale / ORDER_SHAPE)), 1.0)
            rows.append({
                "order_id": f"R{run_id}-{len(rows) + 1:07d}",
                "customer_id": rec.customer_id,
                "ordered_at": as_of + dt.timedelta(seconds=offset),
                "amount": Decimal(f"{amount:.2f}"),
                "coupon_code": codes[rec.customer_id] if use_coupon and k == 0 else None,
            })  # fmt: skip
    return rows


def simulate_campaign_response(
    engine: Engine,
    run_id: int,
    *,
    window_days: int = 30,
    true_lift: float = 0.05,
    redemption_share: float = 0.6,
    seed: int = 11,
    warehouse: Engine | None = None,
) -> ResponseSummary:
    """Write the orders the decided customers place in the `window_days` after the run's as_of.

    Baseline return probability b = alive × (1 − exp(−λ·window_days)) from demo_truth (a customer who
    dropped out never returns); a treated customer returns with min(1, b + true_lift). Assignment to
    treatment/holdout was random, so treatment-minus-holdout return rate estimates the true average
    treatment effect on the return probability over the decided customers, `ResponseSummary.true_ate`
    (= true_lift unless clipping at 1 bites). Idempotent: orders "R<run_id>-…" from an earlier call are
    deleted first and the same seed regenerates the same orders. Offers are not marked redeemed — only
    the business's orders carry the coupon code, as in a real warehouse. `warehouse`: a writable engine on
    the demo's source tables when they live apart from winback's state (`engine`).
    """
    if not 0.0 <= true_lift <= 1.0:
        raise ValueError("true_lift must be an absolute probability lift in [0, 1]")
    orders = DemoOrder.__table__
    shop = warehouse or engine
    with engine.connect() as state:
        as_of, codes = run_and_codes(state, run_id)
        decided = _decided(state, run_id)
    with shop.begin() as conn:
        frame = with_truth(decided, conn, run_id)  # refuses customers the demo did not make
        replaced = conn.execute(delete(orders).where(orders.c.order_id.like(f"R{run_id}-%"))).rowcount
        rng = np.random.default_rng(np.random.SeedSequence([seed, run_id]))
        base = frame["alive"].astype(float).to_numpy() * (1.0 - np.exp(-frame["daily_rate"].to_numpy() * window_days))
        treated = (frame["arm"] == "treatment").to_numpy()
        prob = np.where(treated, np.minimum(base + true_lift, 1.0), base)
        returned = rng.random(len(frame)) < prob
        rows = _return_orders(rng, frame[returned], codes, as_of, window_days, redemption_share, run_id)
        if rows:
            conn.execute(orders.insert(), rows)
    effect = np.minimum(base + true_lift, 1.0) - base
    return ResponseSummary(
        run_id=run_id, as_of=as_of, window_days=window_days, true_lift=true_lift,
        true_ate=float(effect.mean()) if len(effect) else 0.0,
        decided_treatment=int(treated.sum()), decided_holdout=int((~treated).sum()),
        returned_treatment=int((returned & treated).sum()), returned_holdout=int((returned & ~treated).sum()),
        orders_inserted=len(rows), coupons_used=sum(r["coupon_code"] is not None for r in rows),
        replaced_orders=max(replaced or 0, 0),
    )  # fmt: skip
