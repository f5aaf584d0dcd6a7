"""Reads of the business's data, aggregated inside the warehouse: pandas receives one row per customer.

Every function takes an open `Connection` (the caller owns the transaction) and an optional customer-id
range `[lo, hi)`, the unit a campaign batches on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

import numpy as np
import pandas as pd
from sqlalchemy import Connection, and_, case, func, or_, select

# the reads about particular customers and the id ranges live apart; callers find them here too
from winback.warehouse.customer_context import (  # noqa: F401
    CONTACT_COLUMNS,
    SendTimeFlags,
    consent_records,
    contact_details,
    contacts_to_queue,
    send_time_flags,
)
from winback.warehouse.frames import fetch_frame, shared_values
from winback.warehouse.partitions import first_customers, id_partitions  # noqa: F401
from winback.warehouse.quality import EARLIEST, Findings, QualityRules
from winback.warehouse.quality_customers import judge_customers
from winback.warehouse.quality_failures import judge_failures
from winback.warehouse.quality_orders import _untyped, judge_orders, orders_of
from winback.warehouse.quality_sql import SourceSql
from winback.warehouse.source import SourceTables
from winback.warehouse.summaries import (  # noqa: F401 (the summaries are read through this module too)
    SUMMARY_DTYPES,
    IdRange,
    customer_summary,
    order_summary,
    rules_for,
    typed_summary,
)
from winback.warehouse.summaries import in_range as _in_range
from winback.warehouse.timeutil import to_epoch_days


def summary_to_rfm(summary: pd.DataFrame, as_of: dt.datetime) -> pd.DataFrame:
    """Frequency / recency / T in whole days and mean order value, the customer-base models' inputs.

    frequency counts repeat purchase days: orders placed on one day count as one purchase (recency 0
    means no repeat, as the models require). Days are whole numbers, as in the literature's
    day-counted data, which also lets the CLV step share work between customers with equal (x, T).
    mean_spend averages all orders (the first included), which keeps the aggregation to one pass; see
    README "Models" for the effect on Gamma-Gamma.
    """
    now_day = to_epoch_days(as_of)
    first = np.floor(summary["first_day"])
    last = np.floor(summary["last_day"])
    out = pd.DataFrame({"customer_id": summary["customer_id"]})
    out["recency"] = (last - first).clip(lower=0.0)
    repeat = (summary["n_days"] > 1) & (out["recency"] > 0)
    out["frequency"] = np.where(repeat, summary["n_days"] - 1, 0).astype("int64")
    out["T"] = (np.floor(now_day) - first).clip(lower=0.0)
    out["recency"] = out["recency"].where(repeat, 0.0)
    out["days_since_last"] = (now_day - summary["last_day"]).clip(lower=0.0)
    out["mean_spend"] = summary["total_spend"] / summary["n_orders"].clip(lower=1)
    out["total_spend"] = summary["total_spend"]
    return out[["customer_id", "frequency", "recency", "T", "days_since_last", "mean_spend", "total_spend"]]


def open_failures(
    conn: Connection,
    src: SourceTables,
    as_of: dt.datetime,
    lookback_days: int,
    id_range: IdRange | None = None,
    *,
    rules: QualityRules | None = None,
    findings: Findings | None = None,
    known: Collection | None = None,
) -> pd.DataFrame:
    """Service failures that still weigh on a customer: recent ones, and unresolved ones of any age.

    Columns: failure_id, customer_id, order_id, category, severity, occurred_at, resolved_at, description,
    order_amount (of the failed order, NaN when the failure has none). The warehouse selects the window
    and the rows whose dates it cannot read; each row is judged in Python (`judge_failures`), a bad one
    quarantined in `findings`. With `known` (customer ids), failures of anyone else are bad.
    """
    rules = rules_for(as_of, rules)
    findings = findings if findings is not None else Findings()
    sql = SourceSql(conn, src, rules)
    f = src.failures
    c = {name: src.col(f, name) for name in f.winback_names}  # type: ignore[attr-defined]
    occurred, resolved = sql.time(f, "occurred_at"), sql.time(f, "resolved_at")
    since = as_of - dt.timedelta(days=lookback_days)
    weighs = and_(occurred <= as_of, or_(occurred >= since, resolved.is_(None), resolved > as_of))
    to_judge = or_(
        occurred.is_(None),
        occurred > rules.read_at,
        occurred < EARLIEST,
        resolved > rules.read_at,
        sql.time_unreadable(f, "occurred_at"),
        sql.time_unreadable(f, "resolved_at"),
    )
    stmt = select(*(_untyped(col).label(name) for name, col in c.items())).where(
        or_(weighs, to_judge), _in_range(c["customer_id"], id_range)
    )
    frame = fetch_frame(conn, stmt, list(c))
    return judge_failures(conn, src, frame, as_of, lookback_days, rules, findings, known)


def reachability(
    conn: Connection, src: SourceTables, id_range: IdRange | None = None, *, findings: Findings | None = None
) -> pd.DataFrame:
    """Per customer: flags and whether each channel has an address and a granted consent.

    Columns: customer_id, do_not_contact, fraud_flag, preferred_channel, locale, time_zone,
    has_email, has_phone, email_consent, sms_consent. Addresses themselves are read later, only for
    the customers actually messaged. Flags and consents are read strictly ("no" is no), and a customer
    whose record is ambiguous (id missing, padded or repeated; a flag that is not yes/no) is left out and
    named in `findings` (`judge_customers`).
    """
    findings = findings if findings is not None else Findings()
    cu, co = src.customers, src.consents
    cc = {name: src.col(cu, name) for name in cu.winback_names}  # type: ignore[attr-defined]
    # one primary-key lookup per customer and channel: cheaper than aggregating the consents table
    email, sms = co.alias("email_consent"), co.alias("sms_consent")

    def consent_of(alias, channel: str):  # type: ignore[no-untyped-def]
        return and_(
            alias.c[src.col(co, "customer_id").name] == cc["customer_id"],
            alias.c[src.col(co, "channel").name] == channel,
        )

    granted = src.col(co, "granted").name
    stmt = (
        select(
            _untyped(cc["customer_id"]).label("customer_id"),
            _untyped(cc["do_not_contact"]),
            _untyped(cc["fraud_flag"]),
            _untyped(cc["preferred_channel"]),
            cc["locale"],
            cc["time_zone"],
            (cc["email"].is_not(None) & (cc["email"] != "")).label("has_email"),
            (cc["phone"].is_not(None) & (cc["phone"] != "")).label("has_phone"),
            _untyped(email.c[granted]).label("email_consent"),  # read strictly, in Python
            _untyped(sms.c[granted]).label("sms_consent"),
        )
        .select_from(cu.outerjoin(email, consent_of(email, "email")).outerjoin(sms, consent_of(sms, "sms")))
        .where(_in_range(cc["customer_id"], id_range))
    )
    columns = [
        "customer_id",
        "do_not_contact",
        "fraud_flag",
        "preferred_channel",
        "locale",
        "time_zone",
        "has_email",
        "has_phone",
        "email_consent",
        "sms_consent",
    ]
    frame = fetch_frame(conn, stmt, columns)
    for few_values in ("preferred_channel", "locale", "time_zone"):  # a few distinct values a million times
        frame[few_values] = shared_values(frame[few_values])
    return judge_customers(conn, src, frame, findings)


def last_orders(
    conn: Connection, src: SourceTables, customer_ids: list[str], as_of: dt.datetime, rules: QualityRules | None = None
) -> pd.DataFrame:
    """Each customer's last good order time up to `as_of` (for "since your last order on …").

    For the few customers about to be messaged: their rows are judged as the summary judges them, so a
    bad date ("31/12/2025", 2099) is never the one a message names.
    """
    rules = rules_for(as_of, rules)
    good, _ = judge_orders(orders_of(conn, src, customer_ids), rules, duplicates={}, known=None)
    frame = good.groupby("customer_id", sort=True)["at"].max().rename("last_order_at").reset_index()
    frame["last_order_at"] = pd.to_datetime(frame["last_order_at"], utc=True)
    return frame


def failure_profile(conn: Connection, src: SourceTables, since: dt.datetime, until: dt.datetime) -> pd.DataFrame:
    """Per failure category in [since, until): failures, customers affected, repeats and the share resolved.

    Repeat customers failed more than once, in any category. Columns: failure_category, volume, customers,
    repeat_customers, resolved_share.
    """
    f = src.failures
    sql = SourceSql(conn, src, rules_for(until, None))
    cid, cat, at = src.col(f, "customer_id"), src.col(f, "category"), sql.time(f, "occurred_at")
    window = and_(at >= since, at < until)
    per_customer = select(cid.label("customer_id"), func.count().label("n")).where(window).group_by(cid).subquery()
    stmt = (
        select(
            cat.label("failure_category"),
            func.count().label("volume"),
            func.count(func.distinct(cid)).label("customers"),
            func.count(func.distinct(case((per_customer.c.n > 1, cid)))).label("repeat_customers"),
            func.avg(case((sql.time(f, "resolved_at").is_not(None), 1.0), else_=0.0)).label("resolved_share"),
        )
        .select_from(f.join(per_customer, per_customer.c.customer_id == cid))
        .where(window)
        .group_by(cat)
    )
    cols = ["failure_category", "volume", "customers", "repeat_customers", "resolved_share"]
    return pd.DataFrame.from_records(conn.execute(stmt).fetchall(), columns=cols)


def orders_after(
    conn: Connection, src: SourceTables, start: dt.datetime, end: dt.datetime, id_range: IdRange | None = None
) -> pd.Series:
    """Orders per customer in (start, end], indexed by customer_id: the holdout period's actuals.

    Rows the gate would quarantine for their amount are not counted (their dates are in the window already).
    """
    o = src.orders
    sql = SourceSql(conn, src, rules_for(end, None))
    cid, at, amount = src.col(o, "customer_id"), sql.time(o, "ordered_at"), sql.number(o, "amount")
    good = and_(amount > 0, amount <= sql.rules.max_amount)
    rows = conn.execute(
        select(_untyped(cid), func.count()).where(at > start, at <= end, good, _in_range(cid, id_range)).group_by(cid)
    ).all()
    return pd.Series({c: int(n) for c, n in rows}, dtype="int64")
