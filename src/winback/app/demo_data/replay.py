"""The demo's response to a run with heterogeneous true effects (`effects`), in the past or at the end of history.

A run at the end of the generated history (the demo's current run) has no future yet: whether each decided
customer would have returned uncontacted is drawn from their hidden state, p0 = alive × (1 − exp(−λ·window)),
as `response.simulate_campaign_response` does. A run in the past (the demo's earlier campaigns) has its
future in the warehouse already: who ordered in its window is who would have returned uncontacted. Contact
then changes it per customer: a persuaded customer gets an order in the window (added, "R<run>-…"), a
sleeping dog pushed away loses the window's orders (moved to `demo_withheld_orders`, so that a later run
sees a customer who did not come back). Held-out customers keep what they would have done.

Simulating a run again first undoes the previous simulation (its added orders deleted, its withheld ones put
back), so the same seed gives the same orders. A pushed-away customer whose window orders carry a service
failure keeps them (the failure happened): rare, and counted as returned.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, Text, and_, cast, delete, func, insert, select

from winback.app.demo_data import effects
from winback.app.demo_data.response import ResponseSummary, _return_orders, run_and_codes
from winback.app.demo_data.tables import with_truth, withheld_orders
from winback.segments.decision_features import features_frame
from winback.warehouse.models import Decision, DemoOrder, DemoServiceFailure
from winback.warehouse.timeutil import utc

END_SLACK = dt.timedelta(days=1)  # a run this close to the last generated order is at the end of history


def _decided(state: Connection, run_id: int) -> pd.DataFrame:
    """The run's treated and held-out customers as the decision saw them (columns and features), from the state."""
    d = Decision.__table__
    rows = state.execute(
        select(d.c.customer_id, d.c.arm, d.c.segment, d.c.severity, d.c.customer_value, d.c.offer_kind,
               cast(d.c.features, Text))
        .where(d.c.run_id == run_id, d.c.arm.in_(("treatment", "holdout")))
        .order_by(d.c.customer_id)
    ).all()  # fmt: skip
    columns = ["customer_id", "arm", "segment", "severity", "customer_value", "offer_kind", "features"]
    return pd.DataFrame([tuple(r) for r in rows], columns=columns)


def _known(decided: pd.DataFrame, warehouse: Connection, run_id: int) -> pd.DataFrame:
    """The decided customers with their truth (from the warehouse) and their decision features unpacked."""
    frame = with_truth(decided, warehouse, run_id)
    for col in ("severity", "customer_value", "daily_rate", "spend_scale"):
        frame[col] = frame[col].astype(float)
    known = features_frame(frame["features"]).set_axis(frame.index)
    return frame.drop(columns=["features"]).join(known.drop(columns=frame.columns, errors="ignore"))


def _undo(conn: Connection, run_id: int) -> int:
    """Remove an earlier simulation of the run: its added orders deleted, its withheld orders put back."""
    orders = DemoOrder.__table__
    withheld_orders.create(conn, checkfirst=True)
    back = conn.execute(
        select(withheld_orders.c.order_id, withheld_orders.c.customer_id, withheld_orders.c.ordered_at,
               withheld_orders.c.amount, withheld_orders.c.coupon_code).where(withheld_orders.c.run_id == run_id)
    ).mappings().all()  # fmt: skip
    if back:
        conn.execute(insert(orders), [dict(r) for r in back])
        conn.execute(delete(withheld_orders).where(withheld_orders.c.run_id == run_id))
    return conn.execute(delete(orders).where(orders.c.order_id.like(f"R{run_id}-%"))).rowcount or 0


def _window_returners(conn: Connection, start: dt.datetime, end: dt.datetime) -> set[str]:
    """Customers with an order in (start, end], read from the warehouse (the caller keeps the run's own)."""
    o = DemoOrder.__table__
    stmt = select(o.c.customer_id).distinct().where(o.c.ordered_at > start, o.c.ordered_at <= end)
    return set(conn.execute(stmt).scalars())


def _withhold(conn: Connection, run_id: int, customers: list[str], start: dt.datetime, end: dt.datetime) -> set[str]:
    """Move the customers' window orders aside; returns the customers kept (an order there carries a failure)."""
    o, f = DemoOrder.__table__, DemoServiceFailure.__table__
    if not customers:
        return set()
    in_window = and_(o.c.customer_id.in_(customers), o.c.ordered_at > start, o.c.ordered_at <= end)
    failed = set(conn.execute(select(o.c.customer_id).join(f, f.c.order_id == o.c.order_id).where(in_window)).scalars())
    moving = [c for c in customers if c not in failed]
    if moving:
        chosen = and_(o.c.customer_id.in_(moving), o.c.ordered_at > start, o.c.ordered_at <= end)
        rows = conn.execute(select(o.c.order_id, o.c.customer_id, o.c.ordered_at, o.c.amount, o.c.coupon_code)
                            .where(chosen)).mappings().all()  # fmt: skip
        conn.execute(insert(withheld_orders), [{**dict(r), "run_id": run_id} for r in rows])
        conn.execute(delete(o).where(chosen))
    return failed


def simulate_heterogeneous_response(
    engine: Engine,
    run_id: int,
    *,
    window_days: int = 30,
    redemption_share: float = 0.6,
    seed: int = 11,
    warehouse: Engine | None = None,
) -> ResponseSummary:
    """Write (or, for a past run, rewrite) what the run's decided customers do in its window; see the module.

    `engine` is winback's state (the run, its decisions and offers); `warehouse` a writable engine on the demo's
    source tables when they live apart from it (the orders are written there), else `engine` holds both.

    Returns
    -------
    ResponseSummary
        ``true_ate`` is the average true effect of contact over the decided customers (given, for a past run,
        whether each would have returned uncontacted); ``true_lift`` is NaN (the effect is not one number).
    """
    orders = DemoOrder.__table__
    shop = warehouse or engine
    with engine.connect() as state:
        as_of, codes = run_and_codes(state, run_id)
        decided = _decided(state, run_id)
    end = as_of + dt.timedelta(days=window_days)
    with shop.begin() as conn:
        replaced = _undo(conn, run_id)
        frame = _known(decided, conn, run_id)
        last = conn.execute(select(func.max(orders.c.ordered_at)).where(~orders.c.order_id.like("R%"))).scalar_one()
        last = utc(last) if last is not None else as_of
        rng = np.random.default_rng(np.random.SeedSequence([seed, run_id, 1]))
        p0 = frame["alive"].astype(float).to_numpy() * (1.0 - np.exp(-frame["daily_rate"].to_numpy() * window_days))
        if end <= last:  # the future is in the warehouse: who ordered in the window would have returned anyway
            untreated = frame["customer_id"].isin(_window_returners(conn, as_of, end)).to_numpy()
        elif as_of >= last - END_SLACK:
            untreated = rng.random(len(frame)) < p0
        else:
            raise ValueError(
                f"run {run_id}: its window ends after the generated history ({last:%Y-%m-%d}) but starts before it"
            )
        treated = (frame["arm"] == "treatment").to_numpy()
        kinds = effects.draw_kinds(rng, frame)
        returned = np.where(treated, effects.contacted_outcome(rng, frame, kinds, untreated), untreated)
        replay = end <= last
        new_orders = returned & ~untreated if replay else returned
        rows = _return_orders(rng, frame[new_orders], codes, as_of, window_days, redemption_share, run_id)
        if rows:
            conn.execute(insert(orders), rows)
        if replay:
            pushed = frame.loc[untreated & ~returned, "customer_id"].tolist()
            kept = _withhold(conn, run_id, pushed, as_of, end)
            returned = returned | frame["customer_id"].isin(kept).to_numpy()
    if replay:  # the effect given whether each would have returned uncontacted
        probs = effects.kind_probabilities(frame)
        effect = probs[:, 0] * effects.persuaded_share(frame) * ~untreated - probs[:, 3] * effects.PUSHED * untreated
    else:
        effect = effects.true_effect(frame, p0)
    counts = np.bincount(kinds, minlength=len(effects.KINDS))
    return ResponseSummary(
        run_id=run_id, as_of=as_of, window_days=window_days, true_lift=float("nan"),
        true_ate=float(effect.mean()) if len(effect) else 0.0,
        decided_treatment=int(treated.sum()), decided_holdout=int((~treated).sum()),
        returned_treatment=int((returned & treated).sum()), returned_holdout=int((returned & ~treated).sum()),
        orders_inserted=len(rows), coupons_used=sum(r["coupon_code"] is not None for r in rows),
        replaced_orders=max(replaced, 0), kinds=dict(zip(effects.KINDS, counts.tolist(), strict=True)),
    )  # fmt: skip
