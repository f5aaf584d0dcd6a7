"""dispatch_outbox: send what is due (hourly: what quiet hours or retries held back), with one or N senders.

A sender is the `send_outbox` task (flows.sending): it claims due rows and sends them until none is left.
N of them run at once as task runs on Prefect's `ProcessPoolTaskRunner` (one process each: rendering and
recording are CPU work), sharing the outbox through its exclusive claims and the per-channel rates through
the state database's token buckets (delivery.senders). Across machines, more `dispatch-outbox` flow runs
on more workers of the pool are simply more senders (docs/delivery.md "More senders").
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from winback.delivery.dispatch import DispatchReport, SendLimits, reconcile
from winback.delivery.registry import configured_channels
from winback.delivery.senders import SenderJob
from winback.delivery.settle import UnknownPolicy
from winback.errors import DeliveryError
from winback.flows.retries import unless_bad_input
from winback.flows.sending import send_outbox, start_sender_tasks
from winback.settings import Settings
from winback.warehouse.db import engine_for
from winback.warehouse.source import SourceTables
from winback.warehouse.timeutil import utc, utcnow


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=unless_bad_input)
def reconcile_outbox(url: str, run_id: int | None = None) -> dict[str, int]:
    """Settle what crashed senders left `sending` (of one run, or all), before new senders start."""
    settings = Settings()  # channels and waits read here, never passed as task parameters
    return reconcile(
        engine_for(url), configured_channels(settings), run_id, policy=UnknownPolicy.from_settings(settings)
    )


@task(cache_policy=NO_CACHE)
def recover_lost_crm_events(url: str, src: SourceTables, now: dt.datetime) -> dict[str, str]:
    """CRM events whose trigger never ran (an emit that failed, a worker that was down) get recovered here."""
    # the recovery is imported here, not with the module: every sender process of this flow imports the
    # module (its task run's context names the flow), and the recovery's models are 1.1 s of it
    from winback.stages.recovery import RecoverySetup
    from winback.stages.recovery_sweep import recover_pending

    state = engine_for(url)  # secrets are read here, not passed as task parameters (Prefect records those)
    return recover_pending(state, src.reader(state), src, now, RecoverySetup.from_settings(Settings()))


class CrmSweepFailed(DeliveryError):
    """The hourly sweep for lost CRM events broke; everything due was sent all the same."""


@flow(name="dispatch-outbox")
def dispatch_outbox(
    now: dt.datetime | None = None,
    database_url_override: str | None = None,
    senders: int = 1,
    run_id: int | None = None,
    sweep_crm_events: bool = True,
    warehouse_url_override: str | None = None,
) -> dict[str, Any]:
    """Recover CRM events whose trigger never ran, then send what is due (of one run, or across every campaign).

    `senders` concurrent `send_outbox` task runs share the work (one runs in the flow's own process). The
    send must not wait on the sweep: when the sweep itself fails, everything due is still sent, and then the
    run fails with CrmSweepFailed (naming what was sent), so on-call sees a failed run, as their alerts
    already watch for, rather than a result nobody reads while complaints go unanswered. A single event that
    cannot be recovered does not fail the run: it is logged, listed under `crm_event_errors` and retried next
    hour (one erased customer would otherwise turn every hourly run red).
    """
    settings = Settings()
    url = database_url_override or settings.database_url
    # once: every task reads the same tables
    src = SourceTables.from_settings(settings, database_url=url, warehouse_url=warehouse_url_override)
    now = utc(now or utcnow())
    recovered: dict[str, str] = {}
    sweep_error: Exception | None = None
    if sweep_crm_events:
        try:
            recovered = recover_lost_crm_events(url, src, now)
        except Exception as exc:
            sweep_error = exc
    settled = reconcile_outbox(url, run_id)
    job = SenderJob(run_id, "", now, SendLimits.from_settings(settings))
    join = start_sender_tasks(url, src)(job, senders - 1) if senders > 1 else None
    report = DispatchReport()
    try:
        report.merge(send_outbox(url, src, job))
    finally:  # the other senders are waited for, whatever this one did
        if join is not None:
            report.merge(join().as_dict())
    result = {**report.as_dict(), **{f"reconciled_{k}": v for k, v in settled.items()}}
    if sweep_error is not None:
        raise CrmSweepFailed(
            f"recovering lost CRM events failed ({type(sweep_error).__name__}); everything due was sent: {result}"
        ) from sweep_error
    from winback.stages.recovery_sweep import sweep_summary  # see recover_lost_crm_events

    return {**result, **sweep_summary(recovered)}
