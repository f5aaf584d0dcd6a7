"""One sender as a Prefect task, and how a flow starts more of them, in processes that start light.

A sender process imports the module that defines its task, with everything that module imports, and the
module of the flow that started it (its task run's context names the flow). This module holds the send path
alone, not the CRM recovery (its uplift models, scikit-learn, reports): `python -c "import
winback.flows.sending"` 1.8–2.1 s against 2.7–3.3 s for the dispatch flow's module when it imported the
recovery, which that flow now imports in its sweep task alone. The campaign flow's module is heavier (3.4 s
against 2.2 s), so the campaign starts its sender processes before it decides (`SenderProcesses`).
"""

from __future__ import annotations

import contextvars
import importlib
import os
from collections.abc import Callable
from contextlib import ExitStack

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.futures import PrefectFuture
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
        return _submit(runner, stack, url, src, job, count)

    return start


@task(cache_policy=NO_CACHE)
def start_sender_process() -> int:
    """Nothing but its process's start: the send path imported before a message is due (SenderProcesses)."""
    return os.getpid()


def import_modules(*modules: str) -> None:
    """A sender process's first step (its pool's initializer): the send path and its flow's module imported."""
    for module in modules:
        importlib.import_module(module)


class SenderProcesses:
    """A campaign's sender processes, started while the run decides, sending once its messages are queued.

    A sender process spends ~3 s from its spawn to its first claim, importing its task's module and its
    flow's: at the send, that is the second core's time while the flow queues on the first (1M customers:
    first claim 3.3 s after the queueing began, which took 10.9 s). Deciding runs on one core, so processes
    started ahead (`warm`) use the core it leaves idle; each holds ~280 MiB meanwhile (measured). Each runs the
    imports as it starts (the pool's initializer: a process that got no `start_sender_process` task is
    ready too). The first `start` sends on them and hands them to its `join`, which stops them once the
    senders are done: a retry's `reconcile` must find a failed sender's process gone to settle its claim.
    Any later `start` (a retry of the send) starts fresh processes, as `start_sender_tasks` does; so does
    one needing more processes than were started, after stopping those. Leaving the `with` stops what is left.
    A process that dies before the send breaks its pool: the senders given to it fail at once (their join
    raises BrokenProcessPool), as any failed sender does, and a retry of the send starts fresh processes.
    """

    def __init__(self, url: str, src: SourceTables) -> None:
        self._url, self._src = url, src
        # the context senders are started in: the flow's, as it was made there. Started from within a task,
        # Prefect would send every sender process that task's run context, with all of its parameters
        self._context = contextvars.copy_context()
        self._stack = ExitStack()
        self._warm: ProcessPoolTaskRunner | None = None
        self._ready: list[PrefectFuture[int]] = []

    def __reduce__(self) -> tuple[type[SenderProcesses], tuple[str, SourceTables]]:
        # a task given this object ships it to every process it starts, inside its run's context: there, an
        # unstarted copy (the started processes belong to this process alone; its `start` would start its own)
        return SenderProcesses, (self._url, self._src)

    def __enter__(self) -> SenderProcesses:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def warm(self, count: int) -> None:
        """Start `count` sender processes now (none for 0); they wait, started, for `start`."""
        if count < 1 or self._warm is not None:
            return
        flow_run = FlowRunContext.get()
        modules = (__name__, *([flow_run.flow.fn.__module__] if flow_run and flow_run.flow else []))
        runner = ProcessPoolTaskRunner(max_workers=count, initializer=import_modules, initargs=modules)
        self._warm = self._stack.enter_context(runner)
        with same_api_for_children():
            self._ready = [runner.submit(start_sender_process, {}) for _ in range(count)]

    def ready_pids(self) -> list[int]:
        """The ids of the processes that ran a `start_sender_process` task, once each has run."""
        return [future.result() for future in self._ready]

    def start(self, job: SenderJob, count: int) -> Callable[[], DispatchReport]:
        """`count` senders on `job`, in the processes started ahead when there are as many (see the class)."""
        return self._context.copy().run(self._start, job, count)

    def _start(self, job: SenderJob, count: int) -> Callable[[], DispatchReport]:
        runner, self._warm = self._warm, None
        if runner is None or count > len(self._ready):
            self._stack.close()
            return start_sender_tasks(self._url, self._src)(job, count)
        return _submit(runner, self._stack.pop_all(), self._url, self._src, job, count)


def _submit(
    runner: ProcessPoolTaskRunner, stack: ExitStack, url: str, src: SourceTables, job: SenderJob, count: int
) -> Callable[[], DispatchReport]:
    """`count` `send_outbox` runs submitted to `runner`; the `join` that waits for them, then closes `stack`."""
    try:
        with same_api_for_children():
            futures = [runner.submit(send_outbox, {"url": url, "src": src, "job": job}) for _ in range(count)]
    except BaseException:
        stack.close()
        raise

    def join() -> DispatchReport:
        report = DispatchReport()
        with stack:
            for future in futures:
                future.wait()
            for future in futures:  # the first failure raises, once every sender has stopped
                report.merge(future.result())
        return report

    return join
