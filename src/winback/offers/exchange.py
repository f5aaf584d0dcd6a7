"""Coupon codes in and out of the shop platform, and the budget ledger (issued, redeemed, expired).

Imports are all or nothing: every row is checked first and a file with any bad row changes nothing, with
each problem named by its line (a code listed twice is one, on its second line: one redemption per code);
re-importing the same redemptions changes nothing either.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Connection, and_, case, func, select, update

from winback.errors import DataError
from winback.offers.codes import normalise
from winback.warehouse.models import CampaignRun, Decision, Offer
from winback.warehouse.timeutil import utc

EXPORT_COLUMNS = [
    "code", "customer_id", "kind", "value", "max_discount", "currency", "issued_at", "expires_at", "single_use",
]  # fmt: skip
IMPORT_COLUMNS = ("code", "order_id", "redeemed_at")


def export_codes(conn: Connection, run_id: int, path: Path) -> int:
    """Write a run's codes as CSV for the shop platform; returns how many.

    An unknown run is an error, not an empty file: the shop would import "no codes" without a word.
    """
    if conn.execute(select(CampaignRun.id).where(CampaignRun.id == run_id)).scalar_one_or_none() is None:
        raise ValueError(f"campaign run {run_id} does not exist")
    decided = and_(Decision.run_id == Offer.run_id, Decision.customer_id == Offer.customer_id)
    stmt = (
        select(
            Offer.code,
            Offer.customer_id,
            Offer.kind,
            Offer.value,
            Decision.offer_amount,
            Offer.currency,
            Offer.issued_at,
            Offer.expires_at,
        )
        .outerjoin(Decision, decided)
        .where(Offer.run_id == run_id)
        .order_by(Offer.code)
    )
    rows = conn.execute(stmt).all()
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(EXPORT_COLUMNS)
        for code, cid, kind, value, amount, currency, issued, expires in rows:
            writer.writerow([code, cid, kind, f"{value:.2f}", _max_discount(kind, amount), currency,
                             utc(issued).isoformat(), utc(expires).isoformat(), "true"])  # fmt: skip
    return len(rows)


def _max_discount(kind: str, amount: float | None) -> str:
    """The most a percent code may take off, in money.

    The policy capped the percentage against a typical order, so a larger basket must not take more.
    Blank for the other kinds (their value is the amount) and for codes decided before the amount was
    kept.
    """
    return f"{amount:.2f}" if kind == "percent_discount" and amount is not None else ""


class RedemptionImportError(DataError):
    """A redemptions file with bad rows; nothing was imported. `.problems` lists (line, problem)."""

    def __init__(self, source: str, problems: list[tuple[int, str]]) -> None:
        self.problems = problems
        lines = "; ".join(f"line {line}: {problem}" for line, problem in problems[:20])
        more = f" (and {len(problems) - 20} more)" if len(problems) > 20 else ""
        super().__init__(f"redemptions {source}: {len(problems)} bad row(s), nothing imported: {lines}{more}")


def import_redemptions(conn: Connection, rows: Iterable[dict[str, Any]], source: str = "<rows>") -> dict[str, int]:
    """Mark codes redeemed from the shop's records (code, order_id, redeemed_at ISO 8601 with zone)."""
    parsed: list[tuple[int, str, str, dt.datetime]] = []
    problems: list[tuple[int, str]] = []
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        missing = [c for c in IMPORT_COLUMNS if not str(row.get(c) or "").strip()]
        if missing:
            problems.append((line, f"missing {', '.join(missing)}"))
            continue
        try:
            code = normalise(str(row["code"]))
            when = dt.datetime.fromisoformat(str(row["redeemed_at"]).strip())
            if when.tzinfo is None:
                raise ValueError("redeemed_at needs a time zone offset")
        except ValueError as exc:
            problems.append((line, str(exc)))
            continue
        parsed.append((line, code, str(row["order_id"]).strip(), utc(when)))
    known = {
        code: (redeemed_order, expires, issued)
        for code, redeemed_order, expires, issued in conn.execute(
            select(Offer.code, Offer.redeemed_order_id, Offer.expires_at, Offer.issued_at).where(
                Offer.code.in_({p[1] for p in parsed})
            )
        ).all()
    }
    first: dict[str, tuple[int, str, dt.datetime]] = {}  # code -> its first (line, order, time) in this file
    todo = []
    for line, code, order_id, when in parsed:
        if code in first:
            problems.append((line, _repeat_problem(code, order_id, when, first[code])))
            continue
        first[code] = (line, order_id, when)
        if code not in known:
            problems.append((line, f"unknown code {code}"))
            continue
        done_order, expires, issued = known[code]
        if done_order and done_order != order_id:
            problems.append((line, f"code {code} is single-use: already redeemed by order {done_order}"))
            continue
        if when > utc(expires) or when < utc(issued):
            problems.append((line, f"code {code} was not valid at {when.isoformat()} (valid until {utc(expires)})"))
            continue
        if not done_order:
            todo.append((code, order_id, when))
    if problems:
        raise RedemptionImportError(source, sorted(problems))
    for code, order_id, when in todo:
        conn.execute(update(Offer).where(Offer.code == code).values(redeemed_at=when, redeemed_order_id=order_id))
    return {"redeemed": len(todo), "already_recorded": len(parsed) - len(todo)}


def _repeat_problem(code: str, order_id: str, when: dt.datetime, first: tuple[int, str, dt.datetime]) -> str:
    """Why a code's second line in one file is refused: a code is redeemed once, so one line per code.

    Accepting a repeat would count the redemption twice, and with another time the last line would
    silently win; another order is a second use of a single-use code.
    """
    first_line, first_order, first_when = first
    if first_order != order_id:
        return f"code {code} is single-use: already redeemed by order {first_order} on line {first_line}"
    if first_when != when:
        return (
            f"code {code} repeats line {first_line} (order {order_id}) with another time: "
            f"{when.isoformat()} here, {first_when.isoformat()} there"
        )
    return f"code {code} repeats line {first_line} (order {order_id})"


def read_redemptions_csv(path: Path) -> list[dict[str, Any]]:
    """The rows of a shop's redemptions export; ValueError naming the file and the missing columns.

    Excel's "CSV UTF-8" byte-order mark is tolerated.
    """
    with path.open(newline="", encoding="utf-8-sig") as fh:  # -sig: Excel's "CSV UTF-8" starts with a BOM
        reader = csv.DictReader(fh)
        missing = [c for c in IMPORT_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"redemptions {path}: missing column(s) {', '.join(missing)} (need {IMPORT_COLUMNS})")
        return list(reader)


#: kinds whose stated value is money in the campaign currency, and the column holding that money: store credit
#: states its amount; a refund share states a percentage, its amount is the expected cost (paid outright)
MONEY_KINDS = {"store_credit": Offer.value, "refund_share": Offer.expected_cost}
#: kinds whose value is a percentage or a service, not money: the ledger counts them instead of adding them up
COUNTED_KINDS = {
    "percent_codes": "percent_discount",
    "free_shipping_codes": "free_shipping",
    "free_service_codes": "free_service",
}
#: the ledger's columns; "open" is derived from the others
LEDGER_COLUMNS = [
    "campaign_id",
    "run_id",
    "as_of",
    "issued",
    "money_issued",
    *COUNTED_KINDS,
    "expected_cost",
    "redeemed",
    "expired",
    "open",
]


def ledger(conn: Connection, now: dt.datetime, campaign_id: str | None = None) -> pd.DataFrame:
    """Per run: codes issued, redeemed, expired unused and still open, and what was issued.

    money_issued adds up money only (store credit and refunds, in the campaign currency): a percent code's
    value is percentage points, and adding it to euros gave a meaningless total. Percent, free-shipping and
    free-service codes are counted in their own columns; expected_cost is the money the run budgeted.
    """
    expired = (Offer.redeemed_at.is_(None)) & (Offer.expires_at < now)
    money = case(*((Offer.kind == kind, amount) for kind, amount in MONEY_KINDS.items()), else_=0)
    counts = [func.sum(case((Offer.kind == kind, 1), else_=0)).label(name) for name, kind in COUNTED_KINDS.items()]
    stmt = (
        select(
            CampaignRun.campaign_id, Offer.run_id, CampaignRun.as_of,
            func.count().label("issued"), func.sum(money).label("money_issued"), *counts,
            func.sum(Offer.expected_cost).label("expected_cost"),
            func.sum(case((Offer.redeemed_at.is_not(None), 1), else_=0)).label("redeemed"),
            func.sum(case((expired, 1), else_=0)).label("expired"),
        )
        .join(CampaignRun, CampaignRun.id == Offer.run_id)
        .group_by(CampaignRun.campaign_id, Offer.run_id, CampaignRun.as_of)
        .order_by(CampaignRun.as_of)
    )  # fmt: skip
    if campaign_id:
        stmt = stmt.where(CampaignRun.campaign_id == campaign_id)
    frame = pd.DataFrame.from_records(conn.execute(stmt).fetchall(), columns=LEDGER_COLUMNS[:-1])
    frame["open"] = frame["issued"] - frame["redeemed"] - frame["expired"]
    for col in ("money_issued", "expected_cost"):
        frame[col] = frame[col].astype(float).round(2)
    return frame
