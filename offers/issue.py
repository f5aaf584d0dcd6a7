"""Issue one coupon per contacted customer of a run; a re-run issues only what is missing."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pandas as pd
from sqlalchemy import Connection, insert, select

from offers.codes import new_codes
from warehouse.models import Offer
from warehouse.timeutil import utc


def issue_offers(
    conn: Connection, run_id: int, as_of: dt.datetime, offers: pd.DataFrame, currency: str, expiry_days: int
) -> int:
    """Insert offers for rows of `offers` (customer_id, offer_kind, offer_value, offer_cost) not yet issued.

    Codes are issued at the run's as-of time and expire `expiry_days` later, so a re-run gives the same
    dates. Customers
    whose decision carries no compensation (kind "none") get no code.
    """
    wanted = offers.loc[offers["offer_kind"] != "none"]
    existing = set(conn.execute(select(Offer.customer_id).where(Offer.run_id == run_id)).scalars())
    todo = wanted.loc[~wanted["customer_id"].isin(existing)]
    if todo.empty:
        return 0
    codes = new_codes(len(todo))
    issued, expires = utc(as_of), utc(as_of) + dt.timedelta(days=expiry_days)
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


def offers_for_run(conn: Connection, run_id: int) -> pd.DataFrame:
    stmt = select(Offer.customer_id, Offer.code, Offer.kind, Offer.value, Offer.currency, Offer.expires_at).where(
        Offer.run_id == run_id
    )
    cols = ["customer_id", "code", "offer_kind", "offer_value", "currency", "expires_at"]
    frame = pd.DataFrame.from_records(conn.execute(stmt).fetchall(), columns=cols)
    frame["offer_value"] = frame["offer_value"].astype(float)
    frame["expires_at"] = pd.to_datetime(frame["expires_at"], utc=True)
    return frame
