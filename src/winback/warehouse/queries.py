"""Reads of the business's data, aggregated inside the warehouse: pandas receives one row per customer.

Every function takes an open `Connection` (the caller owns the transaction) and an optional customer-id
range `[lo, hi)`, the unit a campaign batches on.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Collection, Iterator
from typing import NamedTuple

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Select, and_, case, func, or_, select

from winback.warehouse.crossread import by_ids
from winback.warehouse.frames import frame_from_rows, raw_rows
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
    frame = frame_from_rows(raw_rows(conn, stmt), list(c))
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
    frame = frame_from_rows(raw_rows(conn, stmt), columns)
    return judge_customers(conn, src, frame, findings)


def contact_details(conn: Connection, src: SourceTables, customer_ids: list[str]) -> pd.DataFrame:
    """Names and addresses for the customers about to be messaged, fetched in chunks of ids."""
    cu = src.customers
    cols = ["customer_id", "first_name", "email", "phone", "locale", "time_zone", "preferred_channel"]
    frames = []
    for start in range(0, len(customer_ids), 5000):
        chunk = customer_ids[start : start + 5000]
        stmt = select(*(src.col(cu, n).label(n) for n in cols)).where(src.col(cu, "customer_id").in_(chunk))
        frames.append(pd.DataFrame.from_records(conn.execute(stmt).fetchall(), columns=cols))
    if not frames:
        return pd.DataFrame(columns=cols)
    return pd.concat(frames, ignore_index=True)


def id_partitions(conn: Connection, src: SourceTables, batch_size: int) -> list[IdRange]:
    """Split the customer-id space into ranges of about `batch_size` customers (ordered by id).

    The boundaries come from the customers table's primary-key order, so each range is an index range
    scan and batches can run on separate workers later.
    """
    cid = src.col(src.customers, "customer_id")
    total = conn.execute(select(func.count()).select_from(src.customers)).scalar_one()
    bounds: list[str | None] = [None]
    for offset in range(batch_size, int(total), batch_size):
        bounds.append(conn.execute(select(cid).order_by(cid).offset(offset).limit(1)).scalar_one())
    bounds.append(None)
    return list(itertools.pairwise(bounds))


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


CONTACT_COLUMNS = [
    "customer_id",
    "segment",
    "channel",
    "failure_id",
    "failure_category",
    "decided_cost",
    "first_name",
    "email",
    "phone",
    "locale",
    "time_zone",
    "code",
    "offer_kind",
    "offer_value",
    "currency",
    "expires_at",
    "order_id",
    "occurred_at",
    "resolved_at",
    "description",
    "last_order_at",
    "variant",
]


def contacts_to_queue(
    conn: Connection, src: SourceTables, run_id: int, partition: int = 25_000, warehouse: Connection | None = None
) -> Iterator[pd.DataFrame]:
    """Everything a run's messages need, for contacted customers without an outbox row yet, in partitions.

    The warehouse and winback's state may be two databases, so nothing joins across them: each partition's
    decisions and offers come from the state (`conn`), then those customers' names and addresses and their
    failures from the warehouse (`warehouse`, default `conn`) by batches of ids, merged here. A customer no
    longer in the customers table gets no message, as before.
    """
    from winback.warehouse.models import Decision, Offer, OutboxMessage

    warehouse = warehouse if warehouse is not None else conn
    queued = select(OutboxMessage.id).where(
        OutboxMessage.run_id == Decision.run_id, OutboxMessage.customer_id == Decision.customer_id
    )
    stmt = (
        select(
            Decision.customer_id,
            Decision.segment,
            Decision.channel,
            Decision.failure_id,
            Decision.failure_category,
            Decision.offer_cost,
            Offer.code,
            Offer.kind,
            Offer.value,
            Offer.currency,
            Offer.expires_at,
            Decision.last_order_at,
            Decision.variant,
        )
        .outerjoin(Offer, and_(Offer.run_id == Decision.run_id, Offer.customer_id == Decision.customer_id))
        .where(Decision.run_id == run_id, Decision.action == "contact", ~queued.exists())
        .order_by(Decision.customer_id)
    )
    after = ""  # keyset pages on the customer id: flat memory on every database, no server-side cursor
    while rows := raw_rows(conn, stmt.where(Decision.customer_id > after).limit(partition)):
        after = rows[-1][0]
        state = frame_from_rows(rows, _STATE_COLUMNS, {"decided_cost": "float64", "offer_value": "float64"})
        people = by_ids(warehouse, _people_query(src), state["customer_id"].tolist(), _PEOPLE_COLUMNS)
        people["customer_id"] = people["customer_id"].astype(str)
        failure_ids = state["failure_id"].dropna().astype(str).unique().tolist()
        failures = by_ids(warehouse, _failures_query(src), failure_ids, _FAILURE_COLUMNS)
        failures["failure_id"] = failures["failure_id"].astype(str)
        frame = state.merge(people, on="customer_id", how="inner")
        frame = frame.merge(failures.drop_duplicates("failure_id"), on="failure_id", how="left")
        frame = frame[CONTACT_COLUMNS].sort_values("customer_id", ignore_index=True)
        for col in ("expires_at", "occurred_at", "resolved_at", "last_order_at"):
            frame[col] = pd.to_datetime(frame[col], utc=True)
        yield frame


_STATE_COLUMNS = ["customer_id", "segment", "channel", "failure_id", "failure_category", "decided_cost", "code",
                  "offer_kind", "offer_value", "currency", "expires_at", "last_order_at", "variant"]  # fmt: skip
_PEOPLE_COLUMNS = ["customer_id", "first_name", "email", "phone", "locale", "time_zone"]
_FAILURE_COLUMNS = ["failure_id", "order_id", "occurred_at", "resolved_at", "description"]


def _people_query(src: SourceTables) -> Callable[[list], Select]:
    cu = src.customers
    return lambda ids: select(*(src.col(cu, n).label(n) for n in _PEOPLE_COLUMNS)).where(
        src.col(cu, "customer_id").in_(ids)
    )


def _failures_query(src: SourceTables) -> Callable[[list], Select]:
    f = src.failures
    return lambda ids: select(*(src.col(f, n).label(n) for n in _FAILURE_COLUMNS)).where(
        src.col(f, "failure_id").in_(ids)
    )


def consent_records(
    conn: Connection, src: SourceTables, customer_id: str, warehouse: Connection | None = None
) -> pd.DataFrame:
    """What a customer agreed to and revoked, with source and time.

    Both the business's consent records (from `warehouse`, default `conn`) and winback's own opt-outs
    (webhooks, replies, provider answers, from `conn`). Columns: channel, state, source, at, origin.
    """
    from winback.warehouse.models import Suppression

    co = src.consents
    given = (
        (warehouse if warehouse is not None else conn)
        .execute(
            select(
                src.col(co, "channel"), src.col(co, "granted"), src.col(co, "source"), src.col(co, "recorded_at")
            ).where(src.col(co, "customer_id") == customer_id)
        )
        .all()
    )
    revoked = conn.execute(
        select(Suppression.channel, Suppression.reason, Suppression.source, Suppression.created_at).where(
            Suppression.customer_id == customer_id
        )
    ).all()
    rows = [(ch, "granted" if ok else "not granted", source, at, "customer record") for ch, ok, source, at in given]
    rows += [(ch, f"opted out ({reason})", source, at, "winback") for ch, reason, source, at in revoked]
    frame = pd.DataFrame.from_records(rows, columns=["channel", "state", "source", "at", "origin"])
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    return frame.sort_values(["channel", "at"], ignore_index=True)


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


class SendTimeFlags(NamedTuple):
    """A claim's customers as their records stand when their messages are about to go, as sets of ids.

    Sets rather than an object per customer: the sender asks four membership questions per message.
    """

    found: set[str]  # still in the customers table (the others were erased)
    do_not_contact: set[str]
    fraud_flag: set[str]
    granted: set[tuple[str, str]]  # (customer, channel) whose consent is granted now


def send_time_flags(conn: Connection, src: SourceTables, customer_ids: list[str]) -> SendTimeFlags:
    """Current flags and granted consents of these customers (see `warehouse.send_time`, which reads them)."""
    from winback.warehouse.send_time import send_time_facts

    return send_time_facts(conn, src, customer_ids).flags
