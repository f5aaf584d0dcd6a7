"""Customers and consents under the gate: a customer record must be unambiguous before anyone is messaged.

A customer row is quarantined (and the customer skipped) when its id is missing, padded or repeated, or when a
flag that protects them (do-not-contact, fraud) is not a yes/no. A consent that is not a clear yes/no, or one
of several rows for one customer and channel (a history table mapped by mistake), is quarantined and counts as
not given. An unknown preferred channel is only set aside: the customer has no preference.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import Connection, func, select

from winback.warehouse.crossread import among, ids_per_query
from winback.warehouse.frames import raw_rows
from winback.warehouse.quality import FIELD, Findings, first_problem, id_problems, parse_flags, quoted
from winback.warehouse.quality_orders import _untyped, chunks
from winback.warehouse.source import SourceTables

CHANNELS = ("email", "sms")


def judge_customers(conn: Connection, src: SourceTables, frame: pd.DataFrame, findings: Findings) -> pd.DataFrame:
    """`reachability`'s rows (values as stored) with bad customer records removed and consents read strictly.

    Quarantined rows go to `findings` (customers and consents); their customers to `findings.held_customers`.
    """
    customers, consents = src.customers.name, src.consents.name
    cnames, knames = src.customers.winback_names, src.consents.winback_names  # type: ignore[attr-defined]
    twice = frame["customer_id"].duplicated(keep=False).to_numpy()
    if twice.any():  # a repeated customer, or a repeated consent: the tables say which
        frame, repeated_consents = _one_row_per_consent(conn, src, frame, twice, findings)
        twice = frame["customer_id"].duplicated(keep=False).to_numpy()
    else:
        repeated_consents = {}
    findings.count_read(customers, len(frame))
    ids = frame["customer_id"]
    id_issue = id_problems(ids, "customer id")
    repeated = np.full(len(ids), None, dtype=object)
    if twice.any():
        counts = ids[twice].value_counts()
        repeated[twice] = [f"customer id appears {counts[c]} times" for c in ids[twice]]
    do_not_contact, dnc_issue = parse_flags(frame["do_not_contact"])
    fraud, fraud_issue = parse_flags(frame["fraud_flag"])
    fields, problems = first_problem(
        ("customer_id", id_issue),
        ("customer_id", repeated),
        ("do_not_contact", dnc_issue),
        ("fraud_flag", fraud_issue),
    )
    bad = problems != None  # noqa: E711
    for i in np.flatnonzero(bad):
        field = fields[i]
        findings.add(customers, ids.iat[i], cnames[field], frame[field].iat[i], problems[i], customer_id=ids.iat[i])
    findings.held_customers.update(ids[bad].tolist())
    out = frame.assign(do_not_contact=do_not_contact, fraud_flag=fraud)
    for channel in CHANNELS:
        col = f"{channel}_consent"
        given, issue = parse_flags(out[col])
        findings.count_read(consents, int(out[col].notna().sum()))
        for i in np.flatnonzero((issue != None) & ~bad):  # noqa: E711
            findings.add(consents, f"{ids.iat[i]}/{channel}", knames["granted"], out[col].iat[i],
                         f"{issue[i]}: counted as not given", customer_id=ids.iat[i])  # fmt: skip
        given[out["customer_id"].isin(repeated_consents.get(channel, ())).to_numpy()] = False
        out[col] = given
    channel = out["preferred_channel"]
    unknown = channel.notna() & ~channel.isin([*CHANNELS, ""])
    for i in np.flatnonzero(unknown.to_numpy() & ~bad):
        findings.add(customers, ids.iat[i], cnames["preferred_channel"], channel.iat[i],
                     f"unknown channel {quoted(channel.iat[i])}: no preference used", customer_id=ids.iat[i],
                     scope=FIELD)  # fmt: skip
    out["preferred_channel"] = channel.where(channel.isin(CHANNELS), None)
    for col in ("has_email", "has_phone"):
        out[col] = out[col].fillna(False).astype(bool)
    return out.loc[~bad].reset_index(drop=True)


def _one_row_per_consent(
    conn: Connection, src: SourceTables, frame: pd.DataFrame, repeated: np.ndarray, findings: Findings
) -> tuple[pd.DataFrame, dict[str, set]]:
    """Collapse the extra rows a repeated consent (same customer and channel) adds to the join, quarantining them.

    Returns the frame and, per channel, the customers whose consent was repeated (not given). Repeated
    customer ids stay (they are the customers' problem, judged by the caller). Which one it is, is asked of
    the tables, for the repeated ids only (`repeated`: the rows whose customer id is on another row too).
    """
    ids = sorted(set(frame.loc[repeated, "customer_id"].dropna()), key=str)
    cu, co = src.customers, src.consents
    ccid, kcid, kchannel = src.col(cu, "customer_id"), src.col(co, "customer_id"), src.col(co, "channel")
    customer_rows: dict = {}
    repeated_consents: list = []
    for chunk in chunks(ids, ids_per_query(conn)):
        customer_rows.update(
            raw_rows(conn, select(_untyped(ccid), func.count()).where(among(conn, ccid, chunk)).group_by(ccid))
        )
        repeated_consents += raw_rows(
            conn,
            select(_untyped(kcid), _untyped(kchannel), func.count())
            .where(among(conn, kcid, chunk))
            .group_by(kcid, kchannel)
            .having(func.count() > 1),
        )
    granted = src.consents.winback_names["granted"]  # type: ignore[attr-defined]
    not_given: dict[str, set] = {}
    for customer, channel, n in repeated_consents:
        findings.add(src.consents.name, f"{customer}/{channel}", granted, f"{n} rows",
                     f"{n} consent rows for one customer and channel (a history? map a view of the latest): "
                     "counted as not given", customer_id=customer)  # fmt: skip
        findings.count_read(src.consents.name, n - 1)  # the join shows one per customer row; n were there
        not_given.setdefault(channel, set()).add(customer)
    # the join repeats a customer row once per extra consent row: keep as many rows as the customers table has
    keep = frame.groupby("customer_id", sort=False).cumcount() < frame["customer_id"].map(customer_rows).fillna(1)
    return frame.loc[keep.to_numpy()].reset_index(drop=True), not_given
