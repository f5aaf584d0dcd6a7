"""One sender as a Prefect task, and how a flow starts more of them: the only module a sender process imports.

A sender process imports the module that defines its task, with everything that module imports. Here that
is the send path alone, not the dispatch flow's CRM recovery (its uplift models, scikit-learn, reports):
about 1 s less at every sender process's start (`python -c "import winback.flows.sending"`: 1.8–2.1 s
against 2.7–3.3 s for `winback.flows.dispatch`), which a large campaign pays while its messages wait.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import task_run
from prefect.task_runners import ProcessPoolTaskRunner

from winback.delivery.dispatch import DispatchReport, reconcile, send_time_source
from winback.delivery.registry import configured_channels
from winback.delivery.senders import SenderJob, run_sender
from winback.delivery.settle import UnknownPolicy
from winback.flows.child_api import same_api_for_children
from winback.flows.retries import unless_bad_input
from winback.messages.unsubscribe import UnsubscribeLinks
from winback.settings import Settings
from winback.warehouse.db import engine_for
from winback.warehouse.journeys import returned_customers
from winback.warehouse.source import SourceTables


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
        with same_api_for_children():
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
