"""dispatch_outbox: hourly, send what quiet hours or retries held back, across every campaign."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from winback.delivery.dispatch import reconcile, send_due
from winback.delivery.registry import configured_channels
from winback.stages.recovery import recover_pending, sweep_summary
from winback.warehouse.db import database_url, engine_for
from winback.warehouse.journeys import returned_customers
from winback.warehouse.source import SourceMapping, SourceTables
from winback.warehouse.timeutil import utc, utcnow


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[5, 30])
def send_everything_due(url: str, now: dt.datetime) -> dict[str, int]:
    engine = engine_for(url)
    channels = configured_channels()
    settled = reconcile(engine, channels)
    stop = returned_customers(engine, SourceTables(SourceMapping.configured()))
    report = send_due(engine, channels, now=now, stop_check=stop)
    return {**report.as_dict(), **{f"reconciled_{k}": v for k, v in settled.items()}}


@task(cache_policy=NO_CACHE)
def recover_lost_crm_events(url: str, now: dt.datetime) -> dict[str, str]:
    """CRM events whose trigger never ran (an emit that failed, a worker that was down) get recovered here."""
    return recover_pending(engine_for(url), SourceTables(SourceMapping.configured()), configured_channels(), now)


class CrmSweepFailed(RuntimeError):
    """The hourly sweep for lost CRM events broke; everything due was sent all the same."""


@flow(name="dispatch-outbox")
def dispatch_outbox(now: dt.datetime | None = None, database_url_override: str | None = None) -> dict[str, Any]:
    """Recover CRM events whose trigger never ran, then send what is due across every campaign.

    The send must not wait on the sweep: when the sweep itself fails, everything due is still sent, and then
    the run fails with CrmSweepFailed (naming what was sent), so on-call sees a failed run, as their alerts
    already watch for, rather than a result nobody reads while complaints go unanswered. A single event that
    cannot be recovered does not fail the run: it is logged, listed under `crm_event_errors` and retried next
    hour (one erased customer would otherwise turn every hourly run red).
    """
    url = database_url_override or database_url()
    now = utc(now or utcnow())
    try:
        recovered, sweep_error = recover_lost_crm_events(url, now), None
    except Exception as exc:
        recovered, sweep_error = {}, exc
    result = send_everything_due(url, now)
    if sweep_error is not None:
        raise CrmSweepFailed(
            f"recovering lost CRM events failed ({type(sweep_error).__name__}); everything due was sent: {result}"
        ) from sweep_error
    return {**result, **sweep_summary(recovered)}
