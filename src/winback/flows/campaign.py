"""winback_campaign: segment → score → decide → offer → render → send, one task per stage or batch."""

from __future__ import annotations

import datetime as dt
import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run as prefect_flow_run
from prefect.task_runners import ThreadPoolTaskRunner
from sqlalchemy.orm import Session

from winback.config import CampaignConfig
from winback.delivery.limits import SendLimits
from winback.delivery.registry import configured_channels
from winback.delivery.senders import SendSetup, senders_for
from winback.flows.partitions import partitioned_reads
from winback.flows.retries import unless_bad_input
from winback.flows.sending import SenderProcesses
from winback.offers.policy import load_policy
from winback.segments.calibration import model_version
from winback.segments.scoring import Scorer, fit_scorer, score_customers
from winback.settings import Settings
from winback.stages import calibration_check, partitioned, reads
from winback.stages import campaign as stages
from winback.stages import decide_and_send as decide_and_send_stage
from winback.stages.gathered import Gathered
from winback.stages.partition_plan import PartitionPlan, large_run_for, plan_partitions
from winback.warehouse import quarantine
from winback.warehouse.db import engine_for
from winback.warehouse.source import SourceTables
from winback.warehouse.timeutil import utc, utcnow

task_opts: dict[str, Any] = {"cache_policy": NO_CACHE}


@dataclass(frozen=True)
class SendPlan:
    """What a task that sends is handed by the flow: the send time, the limits, the senders, the run's size."""

    now: dt.datetime
    limits: SendLimits
    senders: SenderProcesses
    customers: int  # at most the messages the run queues: what the number of senders is sized by

    def sending(self, src: SourceTables) -> decide_and_send_stage.Sending:
        """The stage's `Sending`, with channels and secrets read here from the settings, never passed."""
        settings = Settings()
        channels, setup = configured_channels(settings), SendSetup.from_settings(settings, src)
        return decide_and_send_stage.Sending(self.now, channels, self.limits, self.senders.start, setup, self.customers)


@task(**task_opts)
def start_run(url: str, config: CampaignConfig, as_of: dt.datetime) -> stages.RunHandle:
    """The campaign's run for `as_of`, started or resumed (see stages.campaign.start_run)."""
    with Session(engine_for(url)) as session, session.begin():  # the task owns the transaction
        return stages.start_run(session, config, as_of)


@task(**task_opts)
def check_source(url: str, src: SourceTables, as_of: dt.datetime, now: dt.datetime, config: CampaignConfig) -> Any:
    """The source mapping checked and the run's data-quality rules: a missing table stops the run before any read."""
    return stages.check_source(engine_for(url), src, as_of, now, config)


@task(**task_opts)
def find_run(url: str, config: CampaignConfig, as_of: dt.datetime) -> stages.RunHandle | None:
    """The run already started for `as_of`, if any; writes nothing."""
    with engine_for(url).connect() as conn:
        return stages.find_run(conn, config, as_of)


@task(**task_opts)
def plan_reads(url: str, src: SourceTables, settings: Settings) -> PartitionPlan:
    """How the reads are spread: one process for a small run, Dask partitions for a large one or when asked."""
    customers = reads.count_customers(engine_for(url), src)
    return plan_partitions(
        customers,
        partition_size=settings.partition_size,
        dask_address=settings.dask_address,
        cores=os.cpu_count() or 1,
        large_run=large_run_for(src.reader(engine_for(url)).dialect.name),
    )


@task(**task_opts)
def plan_batches(url: str, src: SourceTables, batch_size: int) -> list[tuple[str | None, str | None]]:
    """Customer id ranges of about `batch_size` customers each, so every read is one batch at a time."""
    return reads.plan_batches(engine_for(url), src, batch_size)


@task(**task_opts)
def summarise_batch(url: str, src: SourceTables, as_of: dt.datetime, id_range: tuple, rules: Any) -> pd.DataFrame:
    """One id range's order summary, aggregated in SQL."""
    return reads.order_batch(engine_for(url), src, as_of, id_range, rules)


@task(**task_opts)
def context_batch(url: str, src: SourceTables, as_of: dt.datetime, id_range: tuple, lookback: int, rules: Any) -> tuple:
    """One id range's open failures and reachability, with the findings on its bad rows."""
    return reads.context_batch(engine_for(url), src, as_of, id_range, lookback, rules)


@task(**task_opts)
def gate(url: str, src: SourceTables, rules: Any, gathered: reads.PartitionReads) -> tuple:
    """The data-quality gate over everything read: a broken feed stops the run here, before any decision."""
    rfm, gated = reads.gate(
        engine_for(url), src, rules, gathered.summary, gathered.failures, gathered.reach, gathered.findings
    )
    return rfm, gated.failures, gated.reach, gated


@task(**task_opts)
def quarantine_line(url: str, run_id: int) -> str:
    """The one line the flow logs about how many source rows the run quarantined."""
    with engine_for(url).connect() as conn:
        return quarantine.summary_line(int(quarantine.counts(conn, run_id)["n"].sum()), run_id)


@task(**task_opts)
def calibrate(url: str, src: SourceTables, as_of: dt.datetime) -> dict[str, Any]:
    """The activity model's holdout calibration check on the first customers, logged alongside the run."""
    return calibration_check.calibrate(engine_for(url), src, as_of)


@task(**task_opts)
def score(rfm: pd.DataFrame, config: CampaignConfig) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Every customer scored, and the fitted model's summary to store with the run."""
    scored, model = score_customers(rfm, config.economics, config.use_models)
    return scored, model.as_dict()


@task(**task_opts)
def decide_and_send(
    url: str,
    run: stages.RunHandle,
    frames: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
    config: CampaignConfig,
    model: dict[str, Any],
    gated: Any,
    send: SendPlan,
    *,
    src: SourceTables,
) -> dict[str, Any]:
    """Decide every candidate (`frames`: scored, failures, reach); store, offer and queue in steps while sending."""
    policy = load_policy(config.policy_file)
    sending = send.sending(src)
    return decide_and_send_stage.decide_and_send_run(
        engine_for(url), run, frames, config, policy, model, gated, sending, src=src
    )


@task(**task_opts)
def preview(
    url: str,
    as_of: dt.datetime,
    scored: pd.DataFrame,
    failures: pd.DataFrame,
    reach: pd.DataFrame,
    config: CampaignConfig,
    gated: Any = None,
    *,
    src: SourceTables,
) -> dict[str, Any]:
    """What the run would decide and spend, stored nowhere: the dry run's summary."""
    policy = load_policy(config.policy_file)
    return stages.preview_run(engine_for(url), as_of, scored, failures, reach, config, policy, gated, src=src)


@task(**task_opts)
def fit_models(gathered: Gathered, config: CampaignConfig, src: SourceTables, rules: Any) -> Scorer:
    """The run's orders judged as a whole (a broken feed stops here), then the one fit of a partitioned run.

    The fit is on every partition's model inputs in partition order, taken from `gathered`.
    """
    gathered.check_orders_share(src.orders.name, rules.max_bad_share)
    return fit_scorer(gathered.take_model_inputs(), config.economics, config.use_models, gathered.spend_problems())


@task(**task_opts)
def decide_and_send_partitions(
    url: str,
    run: stages.RunHandle,
    gathered: Gathered,
    scorer: Scorer,
    config: CampaignConfig,
    model: dict[str, Any],
    send: SendPlan,
    *,
    src: SourceTables,
) -> dict[str, Any]:
    """Decide a partitioned run one partition at a time, then store, offer and queue each while sending."""
    policy = load_policy(config.policy_file)
    return decide_and_send_stage.decide_and_send_partitioned_run(
        engine_for(url), run, gathered, scorer, config, policy, model, send.sending(src), src=src
    )


@task(**task_opts)
def preview_partitions(
    url: str, as_of: dt.datetime, gathered: Gathered, scorer: Scorer, config: CampaignConfig, *, src: SourceTables
) -> dict[str, Any]:
    """A partitioned dry run's summary, stored nowhere."""
    policy = load_policy(config.policy_file)
    return partitioned.preview_partitioned_run(engine_for(url), as_of, gathered, scorer, config, policy, src=src)


@task(**task_opts)
def issue_offers(url: str, run: stages.RunHandle, config: CampaignConfig) -> int:
    """Issue the offer codes of the run's contacted customers; how many were issued."""
    with Session(engine_for(url)) as session, session.begin():  # the task owns the transaction
        return stages.issue_run_offers(session, run, config)


@task(**task_opts, retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=unless_bad_input)
def queue_and_send(
    url: str,
    src: SourceTables,
    run: stages.RunHandle,
    config: CampaignConfig,
    now: dt.datetime,
    limits: SendLimits,
    senders: SenderProcesses,
) -> tuple[int, dict[str, int]]:
    """Queue the run's messages and send them; retried on a transient failure, never on bad input.

    A large run's other senders are `send_outbox` task runs in `senders`' processes, sending while it queues.
    """
    settings = Settings()  # secrets are read here, as every sender task reads its own
    channels, setup = configured_channels(settings), SendSetup.from_settings(settings, src)
    engine = engine_for(url)
    return stages.queue_and_send_run(engine, src, run, config, now, channels, limits, senders.start, setup=setup)


# two at a time: SQLite hands rows over holding and releasing the GIL per row, so reading threads of one
# process only contend (1M customers: 6 threads 19.1 s, 2 threads 14.4-16.8 s, one after the other 16.0 s);
# a large run's reads go to Dask worker processes instead (flows/partitions.py)
@flow(name="winback-campaign", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=2))
def winback_campaign(
    config: CampaignConfig | None = None,
    as_of: dt.datetime | None = None,
    now: dt.datetime | None = None,
    database_url_override: str | None = None,
    data_read_at: dt.datetime | None = None,
    warehouse_url_override: str | None = None,
) -> dict[str, Any]:
    """Run a campaign for `as_of` (default: now); re-running the same date resumes and sends nothing twice.

    `data_read_at` (default: `now`) is when the warehouse is read: rows dated after it are in the future
    and quarantined, while rows between `as_of` and it are history the run does not see yet. Replaying an
    earlier date on today's warehouse (the demo's past campaigns) sends at `now` = that date but reads today.
    `warehouse_url_override` (default: WINBACK_WAREHOUSE_URL's rule) is where the source tables are read.
    """
    config = config or CampaignConfig()
    settings = Settings()  # read once, here: the tasks get its values
    url = database_url_override or settings.database_url
    as_of = utc(as_of or scheduled_or_now())
    now = utc(now or utcnow())
    src = SourceTables.from_settings(settings, database_url=url, warehouse_url=warehouse_url_override)
    logger = get_run_logger()
    timings: dict[str, float] = {}
    peaks: dict[str, int] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        timings[stage] = round(time.perf_counter() - clock, 3)
        peaks[stage] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # MiB, process peak so far
        clock = time.perf_counter()

    result: dict[str, Any] = {"campaign_id": config.campaign_id, "as_of": as_of.isoformat()}
    rules = check_source(
        url, src, as_of, utc(data_read_at) if data_read_at else now, config
    )  # the mapping whole, before anything (dry run too)
    plan = plan_reads(url, src, settings)
    if config.dry_run:  # decided and counted, written nowhere: see stages.preview_run
        if plan.partitioned:
            gathered, checked, result["batches"] = _read_partitions(url, src, as_of, config, lap, rules, plan)
            with gathered.spill:  # what the partitions left on disk goes, whatever happens here
                scorer, _model = _fit(gathered, config, src, rules, checked, as_of, lap)
                result["dry_run"] = preview_partitions(url, as_of, gathered, scorer, config, src=src)
        else:
            scored, failures, reach, _model, result["batches"], gated = _read_and_score(
                url, src, as_of, config, lap, rules
            )
            result["dry_run"] = preview(url, as_of, scored, failures, reach, config, gated, src=src)
        result["quarantine"] = result["dry_run"]["quality"]["line"]
        lap("decide")
        logger.info("dry run: nothing written or sent")
        return {**result, "timings": timings, "peak_rss_mb": peaks}
    limits = SendLimits.from_settings(settings)
    with SenderProcesses(url, src) as senders:
        _decide_and_send(url, src, config, as_of, now, rules, plan, limits, senders, lap, result)
    return {**result, "timings": timings, "peak_rss_mb": peaks}


def _decide_and_send(
    url: str,
    src: SourceTables,
    config: CampaignConfig,
    as_of: dt.datetime,
    now: dt.datetime,
    rules: Any,
    plan: PartitionPlan,
    limits: SendLimits,
    senders: SenderProcesses,
    lap: Callable[[str], None],
    result: dict[str, Any],
) -> None:
    """The run decided (unless it was already), its offers issued, its messages queued and sent: to `result`.

    A run to decide (new, or `started` by an attempt that crashed) is read, then decided and stored in steps
    while its other senders send (stages.decide_and_send); their processes start before it decides, on the
    core deciding leaves idle. A run decided already resumes at its offers and queue.
    """
    logger = get_run_logger()
    known = find_run(url, config, as_of)
    if known is not None and known.status != "started":
        run = known
        result["run_id"] = run.run_id
        logger.info("run %s already decided (%s): resuming", run.run_id, run.status)
        result["offers_issued"] = issue_offers(url, run, config)
        lap("offers")
        result["messages_queued"], result["sending"] = queue_and_send(url, src, run, config, now, limits, senders)
        lap("queue_and_send")
    else:
        # read and gated before the run is stored: a broken feed stops here with nothing written
        send = SendPlan(now, limits, senders, plan.customers)
        if plan.partitioned:
            gathered, checked, result["batches"] = _read_partitions(url, src, as_of, config, lap, rules, plan)
            with gathered.spill:  # what the partitions left on disk goes, whatever happens here
                scorer, model = _fit(gathered, config, src, rules, checked, as_of, lap)
                senders.warm(_senders_ahead(plan, limits))
                run = start_run(url, config, as_of)
                result["run_id"], result["model"] = run.run_id, model
                result |= decide_and_send_partitions(url, run, gathered, scorer, config, model, send, src=src)
        else:
            scored, failures, reach, model, result["batches"], gated = _read_and_score(
                url, src, as_of, config, lap, rules
            )
            senders.warm(_senders_ahead(plan, limits))
            run = start_run(url, config, as_of)
            result["run_id"], result["model"] = run.run_id, model
            result |= decide_and_send(url, run, (scored, failures, reach), config, model, gated, send, src=src)
        lap("decide_and_send")
    result["quarantine"] = quarantine_line(url, run.run_id)
    logger.info(result["quarantine"])


def _senders_ahead(plan: PartitionPlan, limits: SendLimits) -> int:
    """The sender processes worth starting before a run decides: its contacts are at most its customers."""
    return senders_for(plan.customers, limits) - 1


def _read_and_score(
    url: str,
    src: SourceTables,
    as_of: dt.datetime,
    config: CampaignConfig,
    lap: Callable[[str], None],
    rules: Any,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any], int, Any]:
    """A run in one process: the warehouse read in batches (summaries, failures, reachability), gated, scored."""
    lookback = config.aggrieved.lookback_days
    batches = plan_batches(url, src, config.batch_size)
    # the calibration check reads its own slice of the warehouse: it runs while the rest is read and scored
    calibration = calibrate.submit(url, src, as_of) if config.use_models else None
    summaries = [summarise_batch.submit(url, src, as_of, b, rules) for b in batches]
    contexts = [context_batch.submit(url, src, as_of, b, lookback, rules) for b in batches]
    gathered = reads.joined(
        [reads.PartitionReads(s.result(), *c.result()) for s, c in zip(summaries, contexts, strict=True)]
    )
    lap("read")
    rfm, failures, reach, gated = gate(url, src, rules, gathered)
    lap("gate")
    scored, model = score(rfm, config)
    checked = calibration.result() if calibration is not None else None  # awaited either way: a failure fails
    src.release_reader(engine_for(url))  # what DuckDB cached of the reads: deciding reads a few customers' rows
    lap("score")
    return scored, failures, reach, _calibrated(model, checked, as_of), len(batches), gated


def _read_partitions(
    url: str,
    src: SourceTables,
    as_of: dt.datetime,
    config: CampaignConfig,
    lap: Callable[[str], None],
    rules: Any,
    plan: PartitionPlan,
) -> tuple[Gathered, dict[str, Any] | None, int]:
    """A partitioned run's reads: every partition read and gated on the cluster and kept on disk.

    Returns what the flow holds of them, the calibration check and the number of partitions; the caller
    owns the partitions on disk from here (`with gathered.spill`).
    """
    batches = plan_batches(url, src, plan.partition_size or config.batch_size)
    get_run_logger().info(
        "%d customer partitions on %s", len(batches), plan.address or f"a local Dask cluster of {plan.workers}"
    )
    # the calibration check (0.2 s of one core) runs in this process while it waits for the partitions
    calibration = calibrate.submit(url, src, as_of) if config.use_models else None
    gathered = partitioned_reads(plan, url, src, as_of, batches, config.aggrieved.lookback_days, rules)
    try:
        checked = calibration.result() if calibration is not None else None
        src.release_reader(engine_for(url))  # what DuckDB cached of the mapping's checks and the partition plan
        lap("read")
    except BaseException:
        gathered.spill.close()  # the caller owns the kept partitions only once they are returned
        raise
    return gathered, checked, len(batches)


def _fit(
    gathered: Gathered,
    config: CampaignConfig,
    src: SourceTables,
    rules: Any,
    checked: dict[str, Any] | None,
    as_of: dt.datetime,
    lap: Callable[[str], None],
) -> tuple[Scorer, dict[str, Any]]:
    """The partitioned run's one fit, and its summary as the run stores it."""
    scorer = fit_models(gathered, config, src, rules)
    lap("score")
    return scorer, _calibrated(scorer.summary.as_dict(), checked, as_of)


def _calibrated(model: dict[str, Any], checked: dict[str, Any] | None, as_of: dt.datetime) -> dict[str, Any]:
    """The model's summary with its version and calibration check, when the models were fitted."""
    if checked is not None and model["method"] != "rules":
        model["version"] = model_version(model["params"], model["n_customers"], as_of.isoformat())
        model["calibration"] = checked
    return model


def scheduled_or_now() -> dt.datetime:
    """The flow run's scheduled start, else the clock: the default as-of.

    A retry of a flow run keeps its scheduled start, so it resumes the same campaign run; the clock would
    name a new run, which would decide, offer and message the same customers again.
    """
    scheduled = prefect_flow_run.scheduled_start_time
    return dt.datetime.fromtimestamp(scheduled.timestamp(), dt.UTC) if scheduled is not None else utcnow()
