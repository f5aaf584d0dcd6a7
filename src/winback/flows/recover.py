"""recover_customer: triggered by a CRM event (via the intake's Prefect event), answers within minutes."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from winback.flows.retries import unless_bad_input
from winback.settings import Settings
from winback.stages.recovery import RecoverySetup, recover
from winback.warehouse.db import engine_for
from winback.warehouse.source import SourceTables
from winback.warehouse.timeutil import utc, utcnow

EVENT_RESOURCE_PREFIX = "winback.crm-event."


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=unless_bad_input)
def recover_task(url: str, event_id: str, now: dt.datetime, warehouse_url: str | None = None) -> dict[str, Any]:
    """Run the recovery journey for one CRM event; secrets are read here, not passed as parameters."""
    settings = Settings()
    src = SourceTables.from_settings(settings, database_url=url, warehouse_url=warehouse_url)
    state = engine_for(url)
    return recover(state, src.reader(state), src, event_id, now, RecoverySetup.from_settings(settings))


@flow(name="recover-customer")
def recover_customer(
    event_id: str,
    now: dt.datetime | None = None,
    database_url_override: str | None = None,
    warehouse_url_override: str | None = None,
) -> dict[str, Any]:
    """Apologise, compensate and plan the follow-up for one CRM event (its id, or its Prefect resource id)."""
    event_id = event_id.removeprefix(EVENT_RESOURCE_PREFIX)
    url = database_url_override or Settings().database_url
    return recover_task(url, event_id, utc(now or utcnow()), warehouse_url_override)
