"""dispatch_outbox: send what is due (hourly: what quiet hours or retries held back), with one or N senders.

A sender is the `send_outbox` task: it claims due rows and sends them until none is left. N of them run
at once as task runs on Prefect's `ProcessPoolTaskRunner` (one process each: rendering and recording are
CPU work), sharing the outbox through its exclusive claims and the per-channel rates through the state
database's token buckets (delivery.senders). Across machines, more `dispatch-outbox` flow runs on more
workers of the pool are simply more senders (docs/delivery.md "More senders").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack, nullcontext
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import task_run
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.task_runners import ProcessPoolTaskRunner

from winback.delivery.dispatch import DispatchReport, SendLimits, reconcile, send_time_source
from winback.delivery.registry import configured_channels
from winback.delivery.senders import SenderJob, run_sender
from winback.delivery.settle import UnknownPolicy
from winback.errors import DeliveryError
from winback.flows.retries import unless_bad_input
from winback.messages.unsubscribe import UnsubscribeLinks
from winback.settings import Settings
from winback.stages.recovery import RecoverySetup
from winback.stages.recovery_sweep import recover_pending, sweep_summary
from winback.warehouse.db import engine_for
from winback.warehouse.journeys import returned_customers
from winback.warehouse.source import SourceTables
from winback.warehouse.timeutil import utc, utcnow


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=unless_bad_input)
def reconcile_outbox(url: str, run_id: int | None = None) -> dict[str, int]:
    """Settle what crashed senders left `sending` (of one run, or all), before new senders start."""
    settings = Settings()  # channels and waits read here, never passed as task parameters
    return reconcile(
        engine_for(url), configured_channels(settings), run_id, policy=UnknownPolicy.from_settings(settings)
    )


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=unless_bad_input)
def send_outbox(url: str, src: SourceTables, job: SenderJob) -> dict[str, int]:
    """One sender: claim and send the job's due messages until none is left; retried on transient failures.

    A retry first settles what its failed attempt left `sending` (counted as `reconciled_<status>`); other
    senders' claims are alive and left alone. Channels and secrets are read here from the settings, never
    passed as task parameters (Prefect records those).
    """
    engine = engine_for(url)
    settings = Settings()
    channels = configured_channels(settings)
    policy = UnknownPolicy.from_settings(settings)
    settled = reconcile(engine, channels, job.run_id, policy=policy) if (task_run.run_count or 1) > 1 else {}
    report = run_sender(
        engine,
        channels,
        job,
        source=send_time_source(engine, src),
        stop_check=returned_customers(engine, src),
        links=UnsubscribeLinks.from_settings(settings),
    )
    return {**report.as_dict(), **{f"reconciled_{k}": v for k, v in settled.items()}}


def start_sender_tasks(url: str, src: SourceTables) -> Callable[[SenderJob, int], Callable[[], DispatchReport]]:
    """How a flow starts `count` more senders on a job: `send_outbox` task runs, each in a process of its own.

    The returned `join` waits for every one of them and sums their counts; a sender that failed for good
    raises (after the others finished), its claim left for `reconcile`.
    """

    def start(job: SenderJob, count: int) -> Callable[[], DispatchReport]:
        stack = ExitStack()
        runner = stack.enter_context(ProcessPoolTaskRunner(max_workers=count))
        with _same_api_for_children():
            futures = [runner.submit(send_outbox, {"url": url, "src": src, "job": job}) for _ in range(count)]

        def join() -> DispatchReport:
            report = DispatchReport()
            with stack:
                for future in futures:
                    future.wait()
                for future in futures:  # the first failure raises, once every sender has stopped
                    report.merge(future.result())
            return report

        return join

    return start


def _same_api_for_children() -> AbstractContextManager[object]:
    """The sender processes report to this flow's API: with no PREFECT_API_URL, the temporary server it runs.

    A task process reads its API from the environment it is given; without this, each process of an
    ephemeral run (tests, `winback demo`) would start a temporary server of its own (seconds each, one
    database file).
    """
    if PREFECT_API_URL.value():
        return nullcontext()
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()  # the one this process already runs (a singleton per port)
    server.start()
    return temporary_settings(updates={PREFECT_API_URL: server.api_url})


@task(cache_policy=NO_CACHE)
def recover_lost_crm_events(url: str, src: SourceTables, now: dt.datetime) -> dict[str, str]:
    """CRM events whose trigger never ran (an emit that failed, a worker that was down) get recovered here."""
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
    return {**result, **sweep_summary(recovered)}
