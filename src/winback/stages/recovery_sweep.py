"""The hourly sweep for CRM events whose trigger never ran: each recovered, none blocking the others."""

from __future__ import annotations

import datetime as dt
import logging
import traceback
from typing import Any

from sqlalchemy import Engine, select

from winback.messages.redact import redact_text
from winback.stages.recovery import RecoverySetup, recover
from winback.warehouse.db import error_line
from winback.warehouse.models import CrmEvent
from winback.warehouse.source import SourceTables

log = logging.getLogger(__name__)


def recover_pending(
    state: Engine,
    warehouse: Engine,
    src: SourceTables,
    now: dt.datetime,
    setup: RecoverySetup,
    settle_seconds: float = 120,
) -> dict[str, str]:
    """Recover every CRM event received more than `settle_seconds` ago and never processed (a lost trigger).

    Returns event id → action, or `error: <event id>: <problem>` for an event that could not be recovered.
    Any error is reported and logged, not raised, so one bad event never blocks the others nor the hourly
    send that follows the sweep (flows.dispatch); the event stays unprocessed and is tried again next hour.
    """
    with state.connect() as conn:
        pending = (
            conn.execute(
                select(CrmEvent.event_id)
                .where(
                    CrmEvent.processed_at.is_(None), CrmEvent.received_at <= now - dt.timedelta(seconds=settle_seconds)
                )
                .order_by(CrmEvent.received_at)
            )
            .scalars()
            .all()
        )
    outcomes: dict[str, str] = {}
    for event_id in pending:
        try:
            outcomes[event_id] = recover(state, warehouse, src, event_id, now, setup)["action"]
        except Exception as exc:
            outcomes[event_id] = _failed(event_id, exc)
    return outcomes


def _failed(event_id: str, exc: Exception) -> str:
    """Log a failed recovery and return its outcome.

    An unforeseen error also gets its traceback's frames (source lines hold no customer data), but never its
    message in full: see `_problem`.
    """
    problem = _problem(exc)
    if isinstance(exc, ValueError):
        log.error("CRM event %s not recovered: %s", event_id, problem)
    else:
        frames = "".join(traceback.format_tb(exc.__traceback__)).rstrip()
        log.error("CRM event %s not recovered: %s\n%s", event_id, problem, frames)
    return f"error: {event_id}: {problem}"


def _problem(exc: Exception) -> str:
    """One line saying what went wrong, fit for a log line.

    A database error's text carries the statement's parameters (addresses among them) and PostgreSQL's
    DETAIL line quotes the offending values, so only the driver's first line is kept; any email address
    or phone number left is masked. Our own ValueErrors name the record and the problem already.
    """
    line = error_line(exc)
    return redact_text(line if isinstance(exc, ValueError) else f"{type(exc).__name__}: {line}")


def sweep_summary(outcomes: dict[str, str]) -> dict[str, Any]:
    """The sweep's part of the flow's result: how many events were recovered, and the ones that were not."""
    if not outcomes:
        return {}
    errors = [outcome for outcome in outcomes.values() if outcome.startswith("error: ")]
    summary: dict[str, Any] = {"recovered_crm_events": len(outcomes) - len(errors)}
    if errors:
        summary["crm_event_errors"] = errors
    return summary
