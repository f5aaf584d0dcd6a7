"""Issue one coupon per contacted customer of a run; a re-run issues only what is missing.

A code is valid to the end of its last day wherever the customer is: `expires_at` is the end of that
calendar day in the latest time zone on Earth (UTC-12), and messages print that calendar date
(`timeutil.expiry_day`), so the date a customer reads is honoured in every time zone and the code agrees with it.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pandas as pd
from sqlalchemy import Connection, insert, select, update

from winback.offers.codes import new_codes
from winback.warehouse.models import Offer
from winback.warehouse.timeutil import day_end, utc

PAID_OUTRIGHT = ("refund_share",)  # kinds whose money is their decided cost, not their stated value


def last_valid_day(given_at: dt.datetime, days: int) -> dt.date:
    """The calendar day a code given at `given_at` for `days` days is valid through: its UTC date + `days`.

    The UTC date keeps the day messages have always printed; what changed is that the code now lasts to
    the end of that day everywhere (`day_end`), not to the issuing run's time of day.
    """
    return utc(given_at).date() + dt.timedelta(days=days)


def expiry_for(given_at: dt.datetime, days: int) -> dt.datetime:
    """`expires_at` for a code given (or sent) at `given_at` and valid for `days` days."""
    return day_end(last_valid_day(given_at, days))


def offer_amounts(kinds: pd.Series, values: pd.Series, costs: pd.Series) -> pd.Series:
    """The money each offer is worth, as a message states it (`offer_amount`): what the customer gets.

    A refund's value is a percentage of the failed order, and it is paid outright, so its money is its
    decided (expected) cost; every other kind states its own value (a store credit's amount; a percentage
    discount's amount is not printed).
    """
    return costs.where(kinds.isin(PAID_OUTRIGHT), values).astype(float)


def issue_offers(
    conn: Connection,
    run_id: int,
    issued_at: dt.datetime,
    offers: pd.DataFrame,
    currency: str,
    expiry_days: int,
    page: tuple[str, str] | None = None,
    *,
    fresh: bool = False,
) -> int:
    """Insert offers for rows of `offers` (customer_id, offer_kind, offer_value, offer_cost) not yet issued.

    `page` is (after, last): `offers` holds the run's customers with ids after `after` up to `last` in the
    database's order, so only the codes issued among them are looked up; default: the whole run's. `fresh`:
    none of them can have a code yet (decided in the caller's transaction), so nothing is looked up.

    Codes are issued at `issued_at` and valid through the `expiry_days`-th day after it (`expiry_for`), so
    a re-run with the same time gives the same dates. Customers whose decision carries no compensation
    (kind "none") get no code.
    """
    wanted = offers.loc[offers["offer_kind"] != "none"]
    if wanted.empty:
        return 0
    issued_so_far = select(Offer.customer_id).where(Offer.run_id == run_id)
    if page is not None:  # compared by the database, in its own order of ids, as the page was read
        issued_so_far = issued_so_far.where(Offer.customer_id > page[0], Offer.customer_id <= page[1])
    existing = set() if fresh else set(conn.execute(issued_so_far).scalars())
    todo = wanted.loc[~wanted["customer_id"].isin(existing)]
    if todo.empty:
        return 0
    codes = new_codes(len(todo))
    issued, expires = utc(issued_at), expiry_for(issued_at, expiry_days)
    rows = [
        {
            "code": code,
            "run_id": run_id,
            "customer_id": cid,
            "kind": kind,
            "value": Decimal(str(round(float(value), 2))),
            "currency": currency,
            "expected_cost": Decimal(str(round(float(cost), 2))),
            "issued_at": issued,
            "expires_at": expires,
        }
        for code, cid, kind, value, cost in zip(
            codes,
            todo["customer_id"],
            todo["offer_kind"],
            todo["offer_value"],
            todo["offer_cost"],
            strict=True,
        )
    ]
    conn.execute(insert(Offer), rows)
    return len(rows)


def extend_expiry(conn: Connection, run_id: int, customer_id: str, until: dt.datetime) -> bool:
    """Make the run's code for `customer_id` valid until at least `until`; never shortens. True if extended.

    A code sent again by a later message (a recovery journey's "resolved" step) must be valid as long as
    that message says; the condition sits in the UPDATE, so two workers cannot move an expiry backwards.
    """
    changed = conn.execute(
        update(Offer)
        .where(Offer.run_id == run_id, Offer.customer_id == customer_id, Offer.expires_at < utc(until))
        .values(expires_at=utc(until))
    )
    return changed.rowcount > 0


def offers_for_run(conn: Connection, run_id: int) -> pd.DataFrame:
    """The run's codes, with `offer_amount`, the money a message states for each (`offer_amounts`)."""
    stmt = select(
        Offer.customer_id,
        Offer.code,
        Offer.kind,
        Offer.value,
        Offer.expected_cost,
        Offer.currency,
        Offer.expires_at,
    ).where(Offer.run_id == run_id)
    cols = ["customer_id", "code", "offer_kind", "offer_value", "expected_cost", "currency", "expires_at"]
    frame = pd.DataFrame.from_records(conn.execute(stmt).fetchall(), columns=cols)
    for col in ("offer_value", "expected_cost"):
        frame[col] = frame[col].astype(float)
    frame["offer_amount"] = offer_amounts(frame["offer_kind"], frame["offer_value"], frame["expected_cost"])
    frame["expires_at"] = pd.to_datetime(frame["expires_at"], utc=True)
    return frame
