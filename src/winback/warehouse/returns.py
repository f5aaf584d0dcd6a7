"""Who came back: orders in the attribution window, for treated and held-out customers alike.

Both arms are measured from the same decision time (the run's as-of), so the comparison is fair. The
aggregation runs in SQL; re-tracking a run (daily, while its window fills) replaces its rows.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Select, and_, case, delete, func, select

from winback.warehouse.bulk import insert_columns, update_by_key
from winback.warehouse.crossread import CHUNK, by_ids
from winback.warehouse.models import CampaignRun, Decision, Offer, Return
from winback.warehouse.source import SourceTables
from winback.warehouse.timeutil import epoch_days, to_epoch_days, utc, utcnow

WINDOW_SLACK_DAYS = 1 / 86_400  # one second: absorbs float rounding of epoch days, immaterial next to a window


def window_closed(as_of: Any, window_days: Any, tracked: Any, by: Any = None) -> Any:
    """Whether a run's attribution window had closed (by `by`, when given) and was tracked once it had.

    A window still filling counts the quick returners only, which understates lift (0.008 at day 1 against
    0.107 at day 30 on the demo), and one last tracked on day 29 still misses a day of returns: reports and
    learning trust closed windows only, and this is the one test of it they share.

    Parameters
    ----------
    as_of, tracked, by
        The run's decision time, its last tracking, and the moment asked about, in days on one scale:
        epoch days (`epoch_days` in SQL, `to_epoch_days` in Python), or days since `as_of` (then 0).
    window_days
        The attribution window its returns were tracked with.

    Returns
    -------
    The test in the arguments' kind: an SQL boolean expression, a pandas boolean Series, or a bool.
    """
    closes = as_of + window_days - WINDOW_SLACK_DAYS
    closed = tracked >= closes
    return closed if by is None else closed & (by >= closes)


def redeem_offers(conn: Connection, src: SourceTables, run_id: int, warehouse: Connection | None = None) -> int:
    """Mark a run's coupons redeemed by the first order that used them; an expired code does not count.

    The time and the order id come from the same (earliest) order: taking the minimum of each separately
    would pair one order's time with another order's id. Ties in time go to the smaller order id. The
    offers come from winback's state (`conn`), the orders carrying their codes from the warehouse
    (`warehouse`, default `conn`) by batches of codes: the two may be different databases.
    """
    warehouse = warehouse if warehouse is not None else conn
    offers = pd.DataFrame.from_records(
        conn.execute(
            select(Offer.id, Offer.code, Offer.issued_at, Offer.expires_at).where(
                Offer.run_id == run_id, Offer.redeemed_at.is_(None)
            )
        ).all(),
        columns=["offer_id", "code", "issued_at", "expires_at"],
    )
    if offers.empty:
        return 0
    o = src.orders
    code, at, oid = src.col(o, "coupon_code"), src.col(o, "ordered_at"), src.col(o, "order_id")
    uses = by_ids(
        warehouse,
        lambda codes: select(code.label("code"), at.label("at"), oid.label("order_id")).where(code.in_(codes)),
        offers["code"].tolist(),
        ["code", "at", "order_id"],
    )
    uses = uses.merge(offers, on="code")
    for column in ("at", "issued_at", "expires_at"):
        uses[column] = pd.to_datetime(uses[column], utc=True, format="mixed")
    uses = uses.loc[(uses["at"] >= uses["issued_at"]) & (uses["at"] <= uses["expires_at"])]
    first = uses.sort_values(["offer_id", "at", "order_id"]).drop_duplicates("offer_id")
    whens = [t.to_pydatetime() for t in first["at"]]
    update_by_key(
        conn,
        Offer.__table__,
        "id",
        {"id": first["offer_id"].tolist(), "redeemed_at": whens, "redeemed_order_id": first["order_id"].tolist()},
    )
    return len(first)


def track_run(
    conn: Connection,
    src: SourceTables,
    run_id: int,
    window_days: int,
    now: dt.datetime | None = None,
    warehouse: Connection | None = None,
) -> int:
    """Rebuild wb_returns for a run; returns the number of customers measured.

    The run's measured customers come from winback's state (`conn`), their orders in the window from the
    warehouse (`warehouse`, default `conn`), aggregated there per customer by batches of ids.
    """
    if window_days < 1:
        raise ValueError(f"attribution window of {window_days} days: must be at least 1")
    run = conn.execute(select(CampaignRun.as_of).where(CampaignRun.id == run_id)).scalar_one_or_none()
    if run is None:
        raise ValueError(f"campaign run {run_id} does not exist")
    warehouse = warehouse if warehouse is not None else conn
    start = utc(run)
    tracked_at = utc(now) if now is not None else utcnow()
    # orders up to the window's end, and none past the moment tracked: what the report calls observed
    end = min(start + dt.timedelta(days=window_days), tracked_at)
    redeem_offers(conn, src, run_id, warehouse)
    measured = conn.execute(
        select(Decision.customer_id, Decision.arm).where(Decision.run_id == run_id, Decision.arm.is_not(None))
    ).all()
    o = src.orders
    cid, at, amount = src.col(o, "customer_id"), src.col(o, "ordered_at"), src.col(o, "amount")

    def window_orders(ids: list) -> Select:
        return (
            select(
                cid.label("customer_id"),
                func.count(src.col(o, "order_id")).label("orders"),
                func.coalesce(func.sum(amount), 0).label("revenue"),
                func.min(at).label("first_return_at"),
            )
            .where(cid.in_(ids), at > start, at <= end)
            .group_by(cid)
        )

    returned = {
        str(c): (n, rev, first)
        for start_at in range(0, len(measured), CHUNK)
        for c, n, rev, first in warehouse.execute(
            window_orders([m[0] for m in measured[start_at : start_at + CHUNK]])
        ).all()
    }
    redeemed = set(
        conn.execute(select(Offer.customer_id).where(Offer.run_id == run_id, Offer.redeemed_at.is_not(None))).scalars()
    )
    conn.execute(delete(Return).where(Return.run_id == run_id))
    columns: dict[str, list] = {"customer_id": [], "arm": [], "returned": [], "first_return_at": [], "orders": [],
                                 "revenue": [], "redeemed": []}  # fmt: skip
    for c, arm in measured:
        n, rev, first = returned.get(str(c), (0, 0, None))
        for name, value in zip(columns, (c, arm, int(n) > 0, utc(first) if first is not None else None, int(n),
                                         round(float(rev), 2), c in redeemed), strict=True):  # fmt: skip
            columns[name].append(value)
    constants = {"run_id": run_id, "window_days": window_days, "tracked_at": tracked_at}
    insert_columns(conn, Return.__table__, columns, constants)
    return len(measured)


def measured_customers(
    conn: Connection,
    run_id: int,
    contact_cost: dict[str, float],
    margin: float,
    shipping_cost: float = 0.0,
    *,
    src: SourceTables,
    warehouse: Connection | None = None,
) -> pd.DataFrame:
    """One row per measured customer of a run, the input of `reports.stats.lift_table`.

    Columns: customer_id, arm, returned, revenue, margin, offer_cost (cost actually incurred, see
    `_offer_cost`), message_cost, days_to_return, segment, channel, offer_kind, failure_category.
    `src` locates the order that redeemed each code, read from `warehouse` (default `conn`) by batches of ids.
    """
    stmt = (
        select(
            Return.customer_id,
            Return.arm,
            Return.returned,
            Return.revenue,
            Return.first_return_at,
            Return.window_days,
            Decision.segment,
            Decision.channel,
            Decision.offer_kind,
            Decision.failure_category,
            Offer.expected_cost,
            Offer.value,
            Offer.kind,
            Offer.redeemed_at,
            Offer.redeemed_order_id,
            CampaignRun.as_of,
        )
        .join(Decision, and_(Decision.run_id == Return.run_id, Decision.customer_id == Return.customer_id))
        .join(CampaignRun, CampaignRun.id == Return.run_id)
        .outerjoin(Offer, and_(Offer.run_id == Return.run_id, Offer.customer_id == Return.customer_id))
        .where(Return.run_id == run_id)
    )
    cols = [
        "customer_id",
        "arm",
        "returned",
        "revenue",
        "first_return_at",
        "window_days",
        "segment",
        "channel",
        "offer_kind",
        "failure_category",
        "expected_cost",
        "value",
        "kind",
        "redeemed_at",
        "redeemed_order_id",
        "as_of",
    ]
    frame = pd.DataFrame.from_records(conn.execute(stmt).fetchall(), columns=cols)
    frame["redeemed_amount"] = _redeemed_amounts(warehouse if warehouse is not None else conn, src, frame)
    frame["returned"] = frame["returned"].astype(bool)
    frame["revenue"] = frame["revenue"].astype(float)
    frame["margin"] = frame["revenue"] * margin
    start = pd.to_datetime(frame["as_of"], utc=True)
    frame["offer_cost"] = _offer_cost(frame, start, shipping_cost)
    frame["message_cost"] = frame["channel"].map(contact_cost).fillna(0.0).where(frame["arm"] == "treatment", 0.0)
    first = pd.to_datetime(frame["first_return_at"], utc=True)
    frame["days_to_return"] = (first - start).dt.total_seconds() / 86400.0
    frame["offer_kind"] = frame["offer_kind"].fillna("none")
    frame["failure_category"] = frame["failure_category"].fillna("(lapsed)")
    dropped = ["expected_cost", "value", "kind", "redeemed_at", "redeemed_order_id", "redeemed_amount", "as_of",
               "first_return_at"]  # fmt: skip
    return frame.drop(columns=[*dropped, "window_days"])


def _redeemed_amounts(warehouse: Connection, src: SourceTables, frame: pd.DataFrame) -> pd.Series:
    """Each row's redeemed order's amount, summed so a source with one row per order line gives one value."""
    o = src.orders
    oid, amount = src.col(o, "order_id"), src.col(o, "amount")
    ids = frame["redeemed_order_id"].dropna().tolist()
    totals = by_ids(
        warehouse,
        lambda chunk: (
            select(oid.label("order_id"), func.sum(amount).label("amount")).where(oid.in_(chunk)).group_by(oid)
        ),
        ids,
        ["order_id", "amount"],
    )
    by_order = dict(zip(totals["order_id"].astype(str), totals["amount"].astype(float), strict=True))
    return frame["redeemed_order_id"].map(lambda i: by_order.get(str(i)) if i is not None else None).astype(float)


def _offer_cost(frame: pd.DataFrame, start: pd.Series, shipping_cost: float) -> pd.Series:
    """What each treated customer's offer actually cost the business (holdout customers got none).

    - refund_share: the refund (its expected cost, priced with use = 1): paid outright, returned or not;
    - percent_discount: that share of the order that redeemed it, and only when it was redeemed inside the
      attribution window: later revenue is not measured, and other orders were paid in full;
    - free_shipping: the shipping it waives; store credit and the rest: their face value, once redeemed.
    """
    kind = frame["kind"]
    face = frame["value"].astype(float).fillna(0.0)
    redeemed_at = pd.to_datetime(frame["redeemed_at"], utc=True)
    end = start + pd.to_timedelta(frame["window_days"].astype(float), unit="D")
    in_window = redeemed_at.notna() & (redeemed_at >= start) & (redeemed_at <= end)
    discount = face / 100.0 * frame["redeemed_amount"].astype(float).fillna(0.0)
    cost = face.where(kind != "free_shipping", shipping_cost).where(redeemed_at.notna(), 0.0)
    cost = cost.where(kind != "percent_discount", discount.where(in_window, 0.0))
    cost = cost.where(kind != "refund_share", frame["expected_cost"].astype(float).fillna(0.0))
    return cost.where(kind.notna() & (frame["arm"] == "treatment"), 0.0)


def measured_lift_by_offer_kind(conn: Connection, campaign_id: str, before: dt.datetime) -> pd.DataFrame:
    """Past runs' tracked results per offer kind (holdout rows carry the kind they would have received).

    Only runs of `campaign_id` whose attribution window (the one their returns were tracked with) closed by
    `before`, and whose returns were tracked after it closed (`window_closed`). A run never learns from
    itself, since its own window is still open when it decides.
    """
    stmt = (
        select(
            Return.run_id,
            CampaignRun.as_of,
            Return.window_days,
            Return.tracked_at,
            Decision.offer_kind,
            Return.arm,
            func.count().label("n"),
            func.sum(case((Return.returned, 1), else_=0)).label("returned"),
        )
        .join(Decision, and_(Decision.run_id == Return.run_id, Decision.customer_id == Return.customer_id))
        .join(CampaignRun, CampaignRun.id == Return.run_id)
        .where(
            CampaignRun.campaign_id == campaign_id,
            CampaignRun.as_of < before,
            window_closed(
                epoch_days(CampaignRun.as_of), Return.window_days, epoch_days(Return.tracked_at), to_epoch_days(before)
            ),
        )
        .group_by(
            Return.run_id, CampaignRun.as_of, Return.window_days, Return.tracked_at, Decision.offer_kind, Return.arm
        )
    )
    cols = ["run_id", "as_of", "window_days", "tracked_at", "offer_kind", "arm", "n", "returned"]
    rows = pd.DataFrame.from_records(conn.execute(stmt).fetchall(), columns=cols)
    columns = ["offer_kind", "n_treated", "returned_treated", "n_holdout", "returned_holdout"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    wide = rows.pivot_table(index="offer_kind", columns="arm", values=["n", "returned"], aggfunc="sum", fill_value=0)
    out = pd.DataFrame({"offer_kind": wide.index})
    for arm in ("treatment", "holdout"):
        label = "treated" if arm == "treatment" else "holdout"
        out[f"n_{label}"] = wide["n"][arm].to_numpy() if arm in wide["n"] else 0
        out[f"returned_{label}"] = wide["returned"][arm].to_numpy() if arm in wide["returned"] else 0
    return out[columns]
