"""The checks a claimed row passes again at send time, in one lookup per claim.

A message can wait in the outbox for hours (quiet hours) or days (journey follow-ups, retries), and the
customer's record moves meanwhile: a customer erased from the customers table, flagged do-not-contact or
fraud, whose consent for the channel is withdrawn, or who opted out through winback is skipped with that
reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import Engine, select
from sqlalchemy.exc import DBAPIError

from winback.errors import ConfigError, DeliveryError
from winback.settings import Settings
from winback.warehouse import outbox
from winback.warehouse.db import error_line
from winback.warehouse.journeys import ReturnedCheck
from winback.warehouse.models import Suppression
from winback.warehouse.queries import SendTimeFlags
from winback.warehouse.send_time import send_time_facts
from winback.warehouse.source import SourceTables, missing_tables

log = logging.getLogger(__name__)

StopCheck = Callable[[list[dict]], dict[str, str]]  # row id → why it stops (a journey's follow-ups: ReturnedCheck)

ERASED = "customer erased: not in the customers table at send time"
DO_NOT_CONTACT = "do-not-contact at send time"
FRAUD_FLAG = "fraud flag at send time"
CONSENT_WITHDRAWN = "consent withdrawn at send time"
SUPPRESSED = "suppressed at send time"


class SourceTablesMissing(ConfigError):
    """The business's customers or consents table is not where the mapping says: consent cannot be re-checked."""


class WarehouseUnreachable(DeliveryError):
    """The warehouse could not be read at send time: sending pauses, the claim goes back unsent."""


_warned_no_source = False


def send_time_source(engine: Engine, tables: SourceTables | None = None) -> SourceTables | None:
    """The tables consent is re-checked in at send time: `tables`, by default those WINBACK_SOURCE_MAPPING names.

    Pass the edge's tables; the default (the environment read here) is kept only for `send_due` called
    without a source, until its callers pass theirs (tests/test_settings_edge.py's NOT_YET).

    A database with neither a customers nor a consents table and no mapping configured holds an outbox and
    nothing else (the tests' senders, a bare outbox): there is no record to check, which is logged once,
    and only winback's own opt-outs apply. Any other missing table is a misconfiguration, refused before a
    row is claimed: sending on without the check would ignore every withdrawal.
    """
    global _warned_no_source
    tables = tables or SourceTables.from_settings(Settings())
    configured = tables.mapped
    wanted = (tables.customers, tables.consents)
    try:
        missing = missing_tables(tables.reader(engine), wanted)
    except DBAPIError as exc:
        raise WarehouseUnreachable(f"warehouse unreachable before sending ({error_line(exc)}): nothing sent") from None
    if not missing:
        return tables
    if configured or len(missing) < len(wanted):
        raise SourceTablesMissing(f"send-time consent check: source table(s) not found: {', '.join(missing)}")
    if not _warned_no_source:
        log.warning("no customers or consents table in this database: consent is not re-checked at send time")
        _warned_no_source = True
    return None


def blocked_at_send_time(engine: Engine, source: SourceTables | None, rows: list[dict]) -> dict[str, str]:
    """Row id → why it must not go now (`block_reason`); one lookup per claim, by customer id."""
    return checked_at_send_time(engine, source, rows)


def checked_at_send_time(
    engine: Engine, source: SourceTables | None, rows: list[dict], stop_check: StopCheck | None = None
) -> dict[str, str]:
    """Row id → why it must not go now: `block_reason`, else the caller's `stop_check`; ONE warehouse query.

    winback's own opt-outs come from its state, the customers' records from the warehouse in one query per
    claim (a claim is a few hundred rows, under the 5,000 ids of a query), with the latest orders a journey's
    follow-ups stop on (`journeys.ReturnedCheck`) read in the same query. A warehouse that cannot be read
    raises WarehouseUnreachable: the caller gives the claim back and sending pauses, nothing sent unchecked.
    """
    customers = list({r["customer_id"] for r in rows})
    with engine.connect() as conn:
        found = conn.execute(
            select(Suppression.customer_id, Suppression.channel).where(Suppression.customer_id.in_(customers))
        )
        suppressed = {(c, ch) for c, ch in found}
    facts = None
    if source is not None:
        returning = stop_check.customers(rows) if isinstance(stop_check, ReturnedCheck) else set()
        try:
            with source.reader(engine).connect() as warehouse:
                facts = send_time_facts(warehouse, source, customers, returning)
        except DBAPIError as exc:
            raise WarehouseUnreachable(
                f"warehouse unreachable at send time ({error_line(exc)}): sending paused, {len(rows)} claimed "
                "message(s) given back to the queue, nothing sent unchecked"
            ) from None
    if stop_check is None:
        stopped = {}
    elif isinstance(stop_check, ReturnedCheck) and facts is not None:
        stopped = stop_check.stopped(rows, facts.last_order)
    else:
        stopped = stop_check(rows)
    blocked = {}
    for row in rows:
        reason = block_reason(row["customer_id"], row["channel"], facts.flags if facts else None, suppressed)
        reason = reason or stopped.get(row["id"])
        if reason is not None:
            blocked[row["id"]] = reason
    return blocked


def block_reason(
    customer: str, channel: str, flags: SendTimeFlags | None, suppressed: set[tuple[str, str]]
) -> str | None:
    """The first of: erased, do-not-contact, fraud, consent withdrawn, opted out through winback; else None."""
    if flags is not None:
        if customer not in flags.found:
            return ERASED
        if customer in flags.do_not_contact:
            return DO_NOT_CONTACT
        if customer in flags.fraud_flag:
            return FRAUD_FLAG
        if (customer, channel) not in flags.granted:
            return CONSENT_WITHDRAWN
    return SUPPRESSED if (customer, channel) in suppressed else None


def give_back(engine: Engine, rows: list[dict], token: str) -> None:
    """Return a claim untouched when its checks could not run: left `sending`, they would wait for reconcile.

    Best effort: if this fails too, `reconcile` settles them as after a crash (none had started: queued).
    """
    try:
        with engine.begin() as conn:
            outbox.release(conn, {r["id"]: r["not_before"] for r in rows}, token)
    except Exception:
        log.exception("could not give back %d claimed message(s) after a failed send-time check", len(rows))
