"""The data-quality gate as a campaign runs it: rules up front, a verdict on everything read, contact data last.

1. `source_rules`: the mapping is checked whole (every table and column, else a ConfigError naming them) and
   the keys the warehouse does not enforce are checked for duplicates, before anything is read in batches.
2. The batches read through `warehouse.queries`, which judge their rows (`warehouse.quality*`).
3. `gate_reads`: orders of unknown customers, suspect customers' rows judged, and the shares: more than
   `data_quality.max_bad_share` of a table's rows bad stops the run (DataError) before anything is decided.
   A customer whose own record, or every row, is quarantined is skipped with that reason.
4. Contact data, for the customers a run may message only: phone numbers before SMS is chosen
   (`screen_sms_phones`), time zones and locales with the fallback said in the reason (`contact_fallbacks`).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from babel import Locale, UnknownLocaleError
from sqlalchemy import Connection, Engine, func, select

from winback.config import CampaignConfig
from winback.messages.channel_choice import choose_channels
from winback.messages.contact_data import locale_region, phone_time_zone, sms_phone_problem
from winback.messages.quiet_hours import valid_zone
from winback.messages.redact import mask_email, mask_phone, redact_text
from winback.warehouse import queries
from winback.warehouse.frames import raw_rows
from winback.warehouse.quality import FIELD, ROW, Findings, QualityRules, check_share, id_problems
from winback.warehouse.quality_orders import _untyped, duplicate_ids, settle_suspects
from winback.warehouse.source import SourceTables, source_schema

SKIP_SEGMENT = "quarantined"  # the segment of a customer skipped for their data: neither lapsed nor aggrieved
_PLAIN_NUMBER = re.compile(r"^-?[0-9][0-9.eE+-]*$")  # an amount, not a phone number: left as it is


def source_rules(
    engine: Engine, src: SourceTables, as_of: dt.datetime, now: dt.datetime, config: CampaignConfig
) -> QualityRules:
    """The run's rules: its clock and limits, the warehouse's schema (mapping checked whole) and duplicate keys.

    Duplicates are looked for here, once per run and only where the warehouse does not enforce the key
    (a primary key or unique constraint makes them impossible), so the batched reads can leave them out.
    """
    with src.reader(engine).connect() as conn:
        schema = source_schema(conn, src)
        duplicate_orders = None if "orders" in schema.unique_keys else _repeated_orders(conn, src)
        duplicate_failures = None
        if "failures" not in schema.unique_keys:
            duplicate_failures = {str(k): int(n) for k, n in duplicate_ids(conn, src, "failures", "failure_id").items()}
    limits = config.data_quality
    return QualityRules(
        as_of=as_of,
        now=now,
        max_amount=limits.max_plausible_amount,
        max_bad_share=limits.max_bad_share,
        schema=schema,
        duplicate_orders=duplicate_orders,
        duplicate_failures=duplicate_failures,
    )


def _repeated_orders(conn: Connection, src: SourceTables) -> dict[str, tuple[str, ...]]:
    """Order ids on more than one row → the customers of those rows (who must have their rows judged)."""
    o = src.orders
    oid, cid = src.col(o, "order_id"), src.col(o, "customer_id")
    repeated = select(oid).group_by(oid).having(func.count() > 1)
    owners: dict[str, list[str]] = {}
    for order_id, customer_id in raw_rows(conn, select(_untyped(oid), _untyped(cid)).where(oid.in_(repeated))):
        owners.setdefault(order_id, []).append(customer_id)
    return {k: tuple(v) for k, v in owners.items()}


@dataclass
class GatedReads:
    """What a campaign may decide on: the reads with every bad row left out, and who was skipped for it."""

    summary: pd.DataFrame  # queries.customer_summary's columns
    failures: pd.DataFrame
    reach: pd.DataFrame
    findings: Findings
    skipped: pd.DataFrame  # customer_id, reason


def gate_reads(
    engine: Engine,
    src: SourceTables,
    rules: QualityRules,
    summary: pd.DataFrame,
    failures: pd.DataFrame,
    reach: pd.DataFrame,
    findings: Findings,
    *,
    judge_orders_share: bool = True,
) -> GatedReads:
    """Judge what the batches read as a whole; a broken table stops the run here (DataError), before any decision.

    With ``judge_orders_share=False`` (one partition of a run), the orders' bad share is left to the caller,
    who judges it over the whole run (`stages.gathered.Gathered.check_orders_share`), as one process would.

    `summary` is the batches' `order_summary` (suspects unsettled); `failures`, `reach` and `findings` come
    from `open_failures` and `reachability` (judged already, per batch: a failure of a customer the
    customers table does not hold is quarantined there, as `stages.reads.context_batch` reads them).
    """
    for table in (src.customers.name, src.consents.name, src.failures.name):
        check_share(findings, table, rules.max_bad_share)
    known = known_customers(reach, findings)
    read = int(summary["n_orders"].sum())
    findings.count_read(src.orders.name, read)
    with src.reader(engine).connect() as conn:
        total = read if judge_orders_share else None  # the early stop is for a run's share, not a part's
        settled = settle_suspects(conn, src, summary, rules, findings, known=known, read_total=total)
    if judge_orders_share:
        check_share(findings, src.orders.name, rules.max_bad_share)
    settled = queries.typed_summary(settled)
    skipped = _skipped(findings, reach, settled, failures, src.customers.name, (src.orders.name, src.failures.name))
    out = skipped["customer_id"]
    if not out.empty:
        settled = settled.loc[~settled["customer_id"].isin(out)]
        failures = failures.loc[~failures["customer_id"].isin(out)]
        reach = reach.loc[~reach["customer_id"].isin(out)]
    return GatedReads(
        summary=settled.reset_index(drop=True),
        failures=failures,
        reach=reach.reset_index(drop=True),
        findings=findings,
        skipped=skipped,
    )


def known_customers(reach: pd.DataFrame, findings: Findings) -> pd.Series:
    """Every customer id the customers table holds: those read, and those whose record was quarantined."""
    return pd.concat([reach["customer_id"], pd.Series(sorted(findings.held_customers, key=str), dtype=object)])


def _skipped(
    findings: Findings,
    reach: pd.DataFrame,
    summary: pd.DataFrame,
    failures: pd.DataFrame,
    customers_table: str,
    history_tables: tuple[str, str],
) -> pd.DataFrame:
    """Customers skipped for their data: their own record quarantined, or every row of theirs read was.

    Only customers whose id can be stored as it is get a decision row; the others are named in the
    quarantine alone (an id with spaces around it is not the customer's id).
    """
    frame = findings.frame()
    rows = frame.loc[(frame["scope"] == ROW) & frame["customer_id"].notna()]
    own = rows.loc[rows["source_table"] == customers_table]
    held = own.loc[own["customer_id"].isin(findings.held_customers)].drop_duplicates("customer_id")
    reasons = {
        c: f"skipped: their customer record is quarantined ({p}): see `winback quality`"
        for c, p in zip(held["customer_id"], held["problem"], strict=True)
    }
    theirs = rows.loc[rows["source_table"].isin(history_tables)]  # what would have made them a candidate
    # looked up only when there is anything to look up: `isin` hashes every id of the other side (a million)
    lost = theirs if theirs.empty else theirs.loc[
        theirs["customer_id"].isin(reach["customer_id"])
        & ~theirs["customer_id"].isin(summary["customer_id"])
        & ~theirs["customer_id"].isin(failures["customer_id"])
    ]  # fmt: skip
    for customer, group in lost.groupby("customer_id", sort=True):
        tables = ", ".join(f"{t}: {n}" for t, n in group["source_table"].value_counts().sort_index().items())
        reasons.setdefault(
            customer, f"skipped: every row of theirs read was quarantined ({tables}): see `winback quality`"
        )
    ids = pd.Series(list(reasons), dtype=object)
    storable = id_problems(ids, "customer id") == None  # noqa: E711
    return pd.DataFrame({"customer_id": ids[storable], "reason": [reasons[c] for c in ids[storable]]})


def skip_decisions(skipped: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Decision rows (`columns`) for the customers skipped for their data."""
    out = pd.DataFrame({c: pd.Series([None] * len(skipped), dtype=object) for c in columns})
    out["customer_id"] = skipped["customer_id"].to_numpy()
    out["segment"] = SKIP_SEGMENT
    out["action"] = "skip"
    out["reason"] = skipped["reason"].to_numpy()
    return out


# ---------------------------------------------------------------- contact data, for those a run may message


def screen_sms_phones(
    conn: Connection, src: SourceTables, candidates: pd.DataFrame, suppressed: pd.DataFrame | None, findings: Findings
) -> pd.DataFrame:
    """Candidates whose channel is SMS have their number read with phonenumbers before SMS is kept.

    A number that is not a valid mobile one is set aside (quarantined, masked) and the channel chosen again
    without it: email where they can have email, else no channel, with the reason.
    """
    sms = (candidates["channel"] == "sms").to_numpy()
    if not sms.any():
        return candidates
    ids = candidates.loc[sms, "customer_id"].tolist()
    details = queries.contact_details(conn, src, ids).drop_duplicates("customer_id")
    phone = dict(zip(details["customer_id"], details["phone"], strict=True))
    region = dict(zip(details["customer_id"], details["locale"].map(locale_region), strict=True))
    column = src.customers.winback_names["phone"]  # type: ignore[attr-defined]
    bad: dict[str, str] = {}
    judged: dict[tuple[object, object], str | None] = {}  # one parse per distinct number and region
    for customer in ids:
        number = phone.get(customer)
        key = (number, region.get(customer))
        if key not in judged:
            judged[key] = sms_phone_problem(*key)  # type: ignore[arg-type]
        problem = judged[key]
        if problem:
            bad[customer] = problem
            findings.add(src.customers.name, customer, column, mask_phone(number) if isinstance(number, str) else None,
                         f"{problem}: SMS not used", customer_id=customer, scope=FIELD)  # fmt: skip
    if not bad:
        return candidates
    out = candidates.copy(deep=False)  # copy-on-write: only the columns changed below are copied
    hit = out["customer_id"].isin(bad).to_numpy()
    out.loc[hit, "has_phone"] = False
    again = choose_channels(out.loc[hit], suppressed)
    out.loc[hit, "channel"] = again["channel"]
    out.loc[hit, "channel_reason"] = again["channel_reason"].where(
        again["channel"].notna(), again["customer_id"].map(lambda c: f"no usable phone number ({bad[c]})")
    )
    return out


def contact_fallbacks(
    conn: Connection, src: SourceTables, decisions: pd.DataFrame, reach: pd.DataFrame, findings: Findings
) -> pd.DataFrame:
    """For the customers to be messaged: an unknown time zone or locale is set aside, the fallback in the reason.

    Quiet hours then follow the phone number's zone (else UTC), and the message the default locale, as the
    sender does; the decision's reason says so and the quarantine names the value.
    """
    contacted = decisions["action"] == "contact"
    if not contacted.any():
        return decisions
    profile = reach.set_index("customer_id").reindex(decisions.loc[contacted, "customer_id"])
    zones = profile["time_zone"]
    locales = profile["locale"]
    # judged once per distinct value: a run messages many customers with a handful of zones and locales
    bad_zone = zones.notna() & zones.map(
        {z: not isinstance(z, str) or valid_zone(z) is None for z in zones.dropna().unique()}
    )
    bad_locale = locales.notna() & ~locales.map({v: _known_locale(v) for v in locales.dropna().unique()}).fillna(True)
    notes: dict[str, list[str]] = {}
    phones = {}
    if bad_zone.any():
        details = queries.contact_details(conn, src, bad_zone[bad_zone].index.tolist())
        phones = dict(zip(details["customer_id"], details["phone"], strict=True))
    names = src.customers.winback_names  # type: ignore[attr-defined]
    for customer in bad_zone[bad_zone].index:
        fallback = phone_time_zone(phones.get(customer), locale_region(locales.get(customer)))
        used = f"the phone number's {fallback}" if fallback else "UTC"
        text = f"unknown time zone {zones[customer]!r}: quiet hours kept in {used}"
        notes.setdefault(customer, []).append(text)
        findings.add(
            src.customers.name, customer, names["time_zone"], zones[customer], text, customer_id=customer, scope=FIELD
        )
    for customer in bad_locale[bad_locale].index:
        text = f"unknown locale {locales[customer]!r}: message in en_GB"
        notes.setdefault(customer, []).append(text)
        findings.add(
            src.customers.name, customer, names["locale"], locales[customer], text, customer_id=customer, scope=FIELD
        )
    if not notes:
        return decisions
    return with_notes(decisions, {customer: "; ".join(texts) for customer, texts in notes.items()})


def with_notes(decisions: pd.DataFrame, notes: dict[str, str]) -> pd.DataFrame:
    """The decisions with each noted customer's note after their reason (`reason; note`).

    Only the noted rows get a new text: a million reasons added to column-wise would be a second copy of them
    all (~250 MiB), made while the first is still held.
    """
    reasons = decisions["reason"].to_numpy(dtype=object, copy=True)
    noted = np.flatnonzero(decisions["customer_id"].isin(list(notes)).to_numpy())
    customers = decisions["customer_id"].to_numpy()
    for i in noted.tolist():
        reasons[i] = f"{reasons[i]}; {notes[customers[i]]}"
    out = decisions.copy(deep=False)  # copy-on-write: the caller's frame keeps its reasons
    out["reason"] = pd.Series(reasons, index=out.index, dtype=object)
    return out


def _known_locale(locale: object) -> bool:
    if not isinstance(locale, str):
        return False
    try:
        Locale.parse(locale)
    except (UnknownLocaleError, ValueError, TypeError):
        return False
    return True


def masked_findings(findings: Findings) -> pd.DataFrame:
    """The findings as stored and shown: personal values masked, any address or number inside text too."""
    frame = findings.frame()
    if frame.empty:
        return frame
    field = frame["field"].astype(str).str.lower()
    value = frame["value"]
    email = field.str.contains("mail") & value.notna()
    frame.loc[email, "value"] = value[email].map(mask_email)
    name = field.str.contains("name") & value.notna()
    frame.loc[name, "value"] = value[name].map(lambda v: f"{str(v).strip(chr(39))[:1]}***")
    for col in ("value", "problem", "record_id"):
        frame[col] = frame[col].map(
            lambda v: redact_text(v) if isinstance(v, str) and not _PLAIN_NUMBER.match(v) else v
        )
    return frame


def quality_summary(findings: pd.DataFrame, run_id: int | None, sample: int = 5) -> dict[str, object]:
    """The quarantine in a run's result: the line to print, counts per table, and the first few entries."""
    from winback.warehouse.quarantine import summary_line

    by_table = findings.groupby("source_table").size().to_dict() if len(findings) else {}
    return {
        "line": summary_line(len(findings), run_id),
        "by_table": {str(k): int(v) for k, v in by_table.items()},
        "first": findings.head(sample).to_dict("records"),
    }


NAME_MAX = 64  # a first name longer than this is not one (a pasted note, a whole address)


def screen_names(frame: pd.DataFrame, src: SourceTables, findings: Findings) -> pd.DataFrame:
    """First names about to be merged into messages: one too long or holding control characters is set aside.

    The message then greets without a name ("Hi there"), and the quarantine says so (the value masked).
    """
    names = frame["first_name"]
    text = names.where(names.map(lambda v: isinstance(v, str)), "")
    too_long = text.str.len() > NAME_MAX
    control = text.str.contains(r"[\x00-\x1f\x7f]", regex=True)
    bad = (too_long | control).to_numpy()
    if not bad.any():
        return frame
    column = src.customers.winback_names["first_name"]  # type: ignore[attr-defined]
    for i in np.flatnonzero(bad):
        why = (
            "contains control characters (line breaks in a header?)"
            if control.iat[i]
            else f"longer than {NAME_MAX} characters"
        )
        findings.add(src.customers.name, frame["customer_id"].iat[i], column, names.iat[i],
                     f"first name {why}: greeted without a name", customer_id=frame["customer_id"].iat[i],
                     scope=FIELD)  # fmt: skip
    out = frame.copy()
    out.loc[bad, "first_name"] = None
    return out
