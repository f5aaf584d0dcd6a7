"""Several sender processes draining one run's outbox: rendering and address checks are CPU-bound.

One Python process renders, checks and records about 5,000 messages a second; a 200,000-message campaign
through a fast channel (the local sink, or a provider with a high rate) would wait on one core while the
others idle. Senders need no coordination: every claim is exclusive (warehouse.outbox.claim), so N
processes calling `send_due` on the same run simply share the queue, each at 1/N of the per-channel
rates. A helper that dies leaves its claimed rows `sending` under its own host:pid token, which
`reconcile` settles like any crashed sender's.

Helpers are plain `python -m messages.parallel_send` subprocesses fed a JSON job on stdin (the database
URL may hold a password: never on a command line). Not multiprocessing: spawn re-imports the caller's
`__main__`, and fork would copy a caller's threads (Prefect's) mid-flight. Each helper builds its
channels from the environment it inherits, as the parent's registry does.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from sqlalchemy import Engine, select

from winback.delivery.dispatch import Channel, DispatchReport, SendLimits, send_due, send_time_source
from winback.errors import DeliveryError
from winback.warehouse.db import make_engine
from winback.warehouse.models import CampaignRun
from winback.warehouse.runs import RUN_STAGES

MIN_MESSAGES_PER_PROCESS = 10_000  # below this a helper's start-up (~1 s of imports) costs more than it saves
HELPER_COMMAND = [sys.executable, "-m", "winback.delivery.parallel_send"]
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


def child_env() -> dict[str, str]:
    """The current environment, with winback's own folder first on PYTHONPATH: a helper imports this checkout."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [PACKAGE_ROOT, os.environ.get("PYTHONPATH")]))}


class HelperSenderError(DeliveryError):
    """A helper sender exited with an error; its claimed rows are left for `reconcile`."""


def senders_for(due_messages: int, limits: SendLimits) -> int:
    """How many sender processes a send of `due_messages` is worth, at most `limits.processes`."""
    return max(1, min(limits.processes, due_messages // MIN_MESSAGES_PER_PROCESS))


def send_in_processes(
    engine: Engine,
    channels: dict[str, Channel],
    senders: int,
    *,
    run_id: int | None,
    campaign_id: str,
    now: dt.datetime,
    limits: SendLimits,
) -> DispatchReport:
    """`send_due` here and in `senders - 1` helper processes at once; their reports summed."""
    if senders <= 1:
        return send_due(engine, channels, run_id=run_id, campaign_id=campaign_id, now=now, limits=limits)
    share = limits.shared_by(senders)
    with HelperSenders(engine, senders - 1, run_id=run_id, campaign_id=campaign_id, now=now, limits=share) as helpers:
        report = send_due(engine, channels, run_id=run_id, campaign_id=campaign_id, now=now, limits=share)
        return helpers.join(report)


class HelperSenders:
    """`count` helper sender processes, running from `__enter__` until `join`.

    With `follow_run`, helpers keep draining the run's outbox while it is still being filled (the run's
    status not yet `queued`): a campaign's sending overlaps its queueing, on another core. Leaving the
    block by an exception stops every helper still running; its claimed rows are left to `reconcile`.
    """

    def __init__(
        self,
        engine: Engine,
        count: int,
        *,
        run_id: int | None,
        campaign_id: str,
        now: dt.datetime,
        limits: SendLimits,
        follow_run: bool = False,
    ) -> None:
        if follow_run and run_id is None:
            raise ValueError("HelperSenders: follow_run needs the run_id to follow")
        self.count = count
        self.job = {
            "url": engine.url.render_as_string(hide_password=False),
            "run_id": run_id,
            "campaign_id": campaign_id,
            "now": now.isoformat(),
            "limits": asdict(limits),
            "follow_run": follow_run,
            "parent_pid": os.getpid(),
        }
        self.processes: list[subprocess.Popen[str]] = []

    def __enter__(self) -> HelperSenders:
        env = child_env()
        for _ in range(self.count):
            helper = subprocess.Popen(HELPER_COMMAND, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
            self.processes.append(helper)
            assert helper.stdin is not None
            with contextlib.suppress(BrokenPipeError):  # a helper that died at once is reported by `join`
                helper.stdin.write(json.dumps(self.job))
                helper.stdin.close()
        return self

    def join(self, report: DispatchReport) -> DispatchReport:
        """Wait for every helper and add its counts to `report`; a failed helper raises HelperSenderError."""
        for helper in self.processes:
            assert helper.stdout is not None
            out = helper.stdout.read()
            if helper.wait() != 0:
                raise HelperSenderError(f"helper sender pid {helper.pid} exited with code {helper.returncode}")
            report.merge(json.loads(out))
        return report

    def __exit__(self, *exc: object) -> None:
        for helper in self.processes:
            if helper.poll() is None:
                helper.kill()
            helper.wait()
            if helper.stdout is not None:
                helper.stdout.close()


FOLLOW_POLL_SECONDS = 0.2


def _helper_main() -> None:
    """Read one job from stdin, send, print the report as JSON on stdout (errors go to stderr)."""
    from winback.delivery.registry import configured_channels

    job = json.load(sys.stdin)
    engine = make_engine(job["url"])
    channels = configured_channels()
    source = send_time_source(engine)  # once: a following helper drains every 0.2 s

    def drain() -> DispatchReport:
        return send_due(
            engine,
            channels,
            run_id=job["run_id"],
            campaign_id=job["campaign_id"],
            now=dt.datetime.fromisoformat(job["now"]),
            limits=SendLimits(**job["limits"]),
            source=source,
        )

    report = DispatchReport()
    try:
        while True:
            # asked before the pass: a pass that starts after the queueing ended sees every row it queued
            last_pass = not job["follow_run"] or _queueing_over(engine, job["run_id"], job["parent_pid"])
            report.merge(drain().as_dict())
            if last_pass:
                break
            time.sleep(FOLLOW_POLL_SECONDS)
    finally:
        engine.dispose()
    print(json.dumps(report.as_dict()))


def _queueing_over(engine: Engine, run_id: int, parent_pid: int) -> bool:
    """Whether the run is fully queued (or its queueing process is gone, so nothing more will come)."""
    if os.getppid() != parent_pid:
        return True
    with engine.connect() as conn:
        status = conn.execute(select(CampaignRun.status).where(CampaignRun.id == run_id)).scalar_one_or_none()
    return status is None or RUN_STAGES.index(status) >= RUN_STAGES.index("queued")


if __name__ == "__main__":
    _helper_main()
