"""Orders under the gate: the per-customer aggregation flags a customer, their rows are judged one by one here.

`warehouse.queries.order_summary` aggregates ten million orders in the warehouse and marks a customer
*suspect* when their group holds anything odd (`quality_sql`). Only those customers' rows come to Python:
each is judged (ids, duplicates, unknown customer, date, amount), a bad one is quarantined with its problem,
and the customer's figures are recomputed from the good ones. A clean warehouse pays for the few extra
aggregates and nothing else.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import pandas as pd
from sqlalchemy import Connection, func, select, type_coerce
from sqlalchemy.types import NullType

from winback.warehouse.crossread import among, ids_per_query
from winback.warehouse.frames import fetch_frame, frame_from_rows, raw_rows
from winback.warehouse.quality import (
    Findings,
    QualityRules,
    check_share,
    first_problem,
    id_problems,
    missing,
    parse_amounts,
    parse_times,
)
from winback.warehouse.source import SourceTables, source_schema

SUMMARY_COLUMNS = ["customer_id", "n_orders", "n_days", "first_day", "last_day", "total_spend"]
_EPOCH = pd.Timestamp(0, tz="UTC")
CHUNK = 5000


def chunks(ids: list, size: int = CHUNK):  # type: ignore[no-untyped-def]
    """`ids` in slices of `size`: an IN list every engine accepts."""
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def orders_of(conn: Connection, src: SourceTables, customer_ids: list, by: str = "customer_id") -> pd.DataFrame:
    """Every order row of these customers (or, `by="order_id"`, with these order ids), values as stored.

    Columns: order_id, customer_id, ordered_at, amount.
    """
    o = src.orders
    names = ["order_id", "customer_id", "ordered_at", "amount"]
    cols = [_untyped(src.col(o, n)).label(n) for n in names]
    frames = [fetch_frame(conn, select(*cols).where(among(conn, src.col(o, by), chunk)), names)
              for chunk in chunks(customer_ids, ids_per_query(conn))]  # fmt: skip
    if not frames:
        return frame_from_rows([], names)
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def order_amount(
    conn: Connection, src: SourceTables, order_id: str, rules: QualityRules, findings: Findings
) -> float | None:
    """One order's amount, judged as the summary judges it: None when the order is not there or not believed.

    A bad row (or a second row with the same id) is quarantined in `findings`.
    """
    rows = orders_of(conn, src, [order_id], by="order_id")
    if rows.empty:
        return None
    duplicates = {order_id: len(rows)} if len(rows) > 1 else {}
    good, bad = judge_orders(rows, rules, duplicates=duplicates, known=None)
    _record(findings, src.orders.name, bad, src.orders.winback_names)  # type: ignore[attr-defined]
    return float(good["value"].iloc[0]) if len(good) == 1 and not len(bad) else None


def _untyped(col):  # type: ignore[no-untyped-def]
    """A column fetched as the driver gives it: no result processing that could fail on a bad value."""
    return type_coerce(col, NullType())


def duplicate_ids(conn: Connection, src: SourceTables, table_key: str, key: str, ids: list | None = None) -> dict:
    """Ids of `table_key`'s `key` held by more than one row → how many (of `ids`, else of the whole table).

    Asked only where the warehouse does not enforce the key itself (see `SourceSchema.unique_keys`).
    """
    t = getattr(src, table_key)
    col = src.col(t, key)
    stmt = select(_untyped(col), func.count()).group_by(col).having(func.count() > 1)
    if ids is None:
        return dict(raw_rows(conn, stmt))
    found: dict = {}
    for chunk in chunks(sorted({i for i in ids if not missing(i)}, key=str), ids_per_query(conn)):
        found.update(raw_rows(conn, stmt.where(among(conn, col, chunk))))
    return found


def judge_orders(
    rows: pd.DataFrame,
    rules: QualityRules,
    *,
    duplicates: dict,
    known: Collection | None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split order rows into (good rows with parsed `at` and `amount`, bad rows with `field` and `problem`).

    Rows dated between the as-of and the run's clock are neither: history the as-of does not see yet.
    """
    at, time_problems = parse_times(rows["ordered_at"], rules.read_at)
    amount, amount_problems = parse_amounts(rows["amount"], rules.max_amount)
    order_problems = id_problems(rows["order_id"], "order id")
    repeated = rows["order_id"].map(duplicates).to_numpy(dtype=object, na_value=None)
    order_problems = np.where(
        (order_problems == None) & (repeated != None),  # noqa: E711
        [f"order id appears {int(n)} times" if n else None for n in repeated],
        order_problems,
    )
    customer_problems = id_problems(rows["customer_id"], "customer id")
    if known is not None:
        unknown = ~rows["customer_id"].isin(known).to_numpy()
        customer_problems = np.where(
            (customer_problems == None) & unknown,  # noqa: E711
            [f"order of unknown customer {c} (not in the customers table)" for c in rows["customer_id"].tolist()],
            customer_problems,
        )
    fields, problems = first_problem(
        ("order_id", order_problems),
        ("customer_id", customer_problems),
        ("ordered_at", time_problems),
        ("amount", amount_problems),
    )
    bad = problems != None  # noqa: E711
    judged = rows.assign(at=at, value=amount, field=fields, problem=problems)
    good = judged.loc[~bad & (judged["at"] <= pd.Timestamp(rules.as_of))]
    return good, judged.loc[bad]


def summarise_rows(good: pd.DataFrame) -> pd.DataFrame:
    """The SQL summary's figures (see `queries.order_summary`) computed from judged rows, per customer."""
    if good.empty:
        return pd.DataFrame({c: pd.Series(dtype=object if c == "customer_id" else "float64") for c in SUMMARY_COLUMNS})
    days = (good["at"] - _EPOCH).dt.total_seconds() / 86_400.0
    frame = good.assign(day=days, whole_day=np.floor(days))
    out = frame.groupby("customer_id", sort=True).agg(
        n_orders=("day", "size"),
        n_days=("whole_day", "nunique"),
        first_day=("day", "min"),
        last_day=("day", "max"),
        total_spend=("value", "sum"),
    )
    return out.reset_index()[SUMMARY_COLUMNS]


def settle_suspects(
    conn: Connection,
    src: SourceTables,
    summary: pd.DataFrame,
    rules: QualityRules,
    findings: Findings,
    *,
    known: Collection | None = None,
    read_total: int | None = None,
) -> pd.DataFrame:
    """The summary with every suspect customer's rows judged: bad ones quarantined, figures recomputed.

    `summary` is `queries.order_summary`'s frame (a `suspect` flag per customer). A customer whose id is not
    fit to store (padded, over-long) has their rows judged too. With `known` (the customer ids of the
    customers table), orders of anyone else are quarantined too: the summary's own `known` column answers
    that where the warehouse computed it, else the ids are looked up in `known`. With `read_total`, the orders
    read by the whole run: the judging stops, raising a DataError, as soon as more than the allowed share of
    them is bad, so a broken feed is never fetched whole.
    """
    table = src.orders.name
    names = src.orders.winback_names  # type: ignore[attr-defined]
    ids = summary["customer_id"]
    odd = summary["suspect"].to_numpy(dtype=bool, copy=True)
    odd |= id_problems(ids, "customer id") != None  # noqa: E711
    if known is not None:
        odd |= ~(summary["known"] if "known" in summary else ids.isin(known)).to_numpy(dtype=bool)
    duplicates = rules.duplicate_orders
    if duplicates:
        odd |= ids.isin({c for owners in duplicates.values() for c in owners}).to_numpy()
    check_keys = "orders" not in source_schema(conn, src).unique_keys
    suspects = ids[odd].tolist()
    settled: list[pd.DataFrame] = []
    bad_so_far = findings.bad_rows()[table]
    limit = None if read_total is None else int(rules.max_bad_share * read_total)
    for chunk in chunks(suspects):
        rows = orders_of(conn, src, chunk)
        if duplicates is None:
            dup = duplicate_ids(conn, src, "orders", "order_id", rows["order_id"].tolist()) if check_keys else {}
        else:
            dup = {k: len(v) for k, v in duplicates.items()}
        good, bad = judge_orders(rows, rules, duplicates=dup, known=known)
        settled.append(summarise_rows(good))
        _record(findings, table, bad, names)
        bad_so_far += len(bad)
        if limit is not None and bad_so_far > limit:  # the caller counted the run's rows read already
            check_share(findings, table, rules.max_bad_share)
    clean = summary.loc[~odd, SUMMARY_COLUMNS]
    if not suspects:
        return clean.reset_index(drop=True)
    return pd.concat([clean, *settled], ignore_index=True).sort_values("customer_id", ignore_index=True)


def _record(findings: Findings, table: str, bad: pd.DataFrame, names: dict[str, str]) -> None:
    """Quarantine judged bad rows, each field named as the warehouse names it."""
    for rec in bad.to_dict("records"):
        field = rec["field"]
        findings.add(
            table, rec["order_id"], names.get(field, field), rec[field], rec["problem"], customer_id=rec["customer_id"]
        )
