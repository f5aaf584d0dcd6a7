"""dispatch_outbox: hourly, send what quiet hours or retries held back, across every campaign."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from messages.channels.registry import configured_channels
from messages.dispatch import reconcile, send_due
from warehouse.db import database_url, engine_for
from warehouse.journeys import returned_customers
from warehouse.source import SourceMapping, SourceTables
from warehouse.timeutil import utc, utcnow
from winback.recovery import recover_pending


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


@flow(name="dispatch-outbox")
def dispatch_outbox(now: dt.datetime | None = None, database_url_override: str | None = None) -> dict[str, Any]:
    url = database_url_override or database_url()
    now = utc(now or utcnow())
    recovered = recover_lost_crm_events(url, now)
    result = send_everything_due(url, now)
    return {**result, "recovered_crm_events": len(recovered)} if recovered else result
