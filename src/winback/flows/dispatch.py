"""dispatch_outbox: hourly, send what quiet hours or retries held back, across every campaign."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from winback.delivery.dispatch import SendLimits, reconcile, send_due, send_time_source
from winback.delivery.registry import configured_channels
from winback.errors import DeliveryError
from winback.flows.retries import unless_bad_input
from winback.messages.unsubscribe import UnsubscribeLinks
from winback.settings import Settings
from winback.stages.recovery import recover_pending, sweep_summary
from winback.warehouse.db import engine_for
from winback.warehouse.journeys import returned_customers
from winback.warehouse.source import SourceTables
from winback.warehouse.timeutil import utc, utcnow


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=unless_bad_input)
def send_everything_due(url: str, src: SourceTables, now: dt.datetime) -> dict[str, int]:
    """Reconcile what a crash left, then send every due message; retried on transient failures.

    Returns the dispatch counts, with the reconciled ones as `reconciled_<status>`.
    """
    engine = engine_for(url)
    settings = Settings()  # secrets are read here, not passed as task parameters (Prefect records those)
    channels = configured_channels(settings)
    settled = reconcile(engine, channels)
    stop = returned_customers(engine, src)
    report = send_due(
        engine,
        channels,
        now=now,
        stop_check=stop,
        source=send_time_source(engine, src),
        limits=SendLimits.from_settings(settings),
        links=UnsubscribeLinks.from_settings(settings),
    )
    return {**report.as_dict(), **{f"reconciled_{k}": v for k, v in settled.items()}}


@task(cache_policy=NO_CACHE)
def recover_lost_crm_events(url: str, src: SourceTables, now: dt.datetime) -> dict[str, str]:
    """CRM events whose trigger never ran (an emit that failed, a worker that was down) get recovered here."""
    return recover_pending(engine_for(url), src, configured_channels(Settings()), now)


class CrmSweepFailed(DeliveryError):
    """The hourly sweep for lost CRM events broke; everything due was sent all the same."""


@flow(name="dispatch-outbox")
def dispatch_outbox(
    now: dt.datetime | None = None, database_url_override: str | None = None, warehouse_url_override: str | None = None
) -> dict[str, Any]:
    """Recover CRM events whose trigger never ran, then send what is due across every campaign.

    The send must not wait on the sweep: when the sweep itself fails, everything due is still sent, and then
    the run fails with CrmSweepFailed (naming what was sent), so on-call sees a failed run, as their alerts
    already watch for, rather than a result nobody reads while complaints go unanswered. A single event that
    cannot be recovered does not fail the run: it is logged, listed under `crm_event_errors` and retried next
    hour (one erased customer would otherwise turn every hourly run red).
    """
    settings = Settings()
    url = database_url_override or settings.database_url
    # once: both tasks read the same tables
    src = SourceTables.from_settings(settings, database_url=url, warehouse_url=warehouse_url_override)
    now = utc(now or utcnow())
    try:
        recovered, sweep_error = recover_lost_crm_events(url, src, now), None
    except Exception as exc:
        recovered, sweep_error = {}, exc
    result = send_everything_due(url, src, now)
    if sweep_error is not None:
        raise CrmSweepFailed(
            f"recovering lost CRM events failed ({type(sweep_error).__name__}); everything due was sent: {result}"
        ) from sweep_error
    return {**result, **sweep_summary(recovered)}
