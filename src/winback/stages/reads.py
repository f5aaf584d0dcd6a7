"""The campaign's reads of the warehouse, one id range at a time: what a batch or a partition computes.

Each function opens the warehouse itself (read only, through `src.reader`), so a partition runs on any
worker that can reach the warehouse: no rows travel from the flow to a worker, and only per-customer
summaries travel back.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

import pandas as pd
from sqlalchemy import Engine, func, select

from winback.errors import DataError
from winback.stages import quality
from winback.warehouse import queries
from winback.warehouse.quality import Findings, QualityRules
from winback.warehouse.source import SourceTables
from winback.warehouse.summaries import IdRange


@dataclass(frozen=True)
class PartitionReads:
    """What one partition hands back: per-customer order summaries, open failures, reachability, findings."""

    summary: pd.DataFrame
    failures: pd.DataFrame
    reach: pd.DataFrame
    findings: Findings


def count_customers(engine: Engine, src: SourceTables) -> int:
    """How many rows the customers table holds: what decides whether a run is partitioned."""
    with src.reader(engine).connect() as conn:
        return int(conn.execute(select(func.count()).select_from(src.customers)).scalar_one())


def plan_batches(engine: Engine, src: SourceTables, batch_size: int) -> list[IdRange]:
    """Customer id ranges of about `batch_size` customers each, so no read holds the whole table at once."""
    with src.reader(engine).connect() as conn:
        return queries.id_partitions(conn, src, batch_size)


def summarise_batch(engine: Engine, src: SourceTables, as_of: dt.datetime, id_range: IdRange) -> pd.DataFrame:
    """Recency/frequency/tenure/spend for one id range, aggregated in SQL."""
    with src.reader(engine).connect() as conn:
        summary = queries.customer_summary(conn, src, as_of, id_range)
    rfm = queries.summary_to_rfm(summary, as_of)
    rfm["last_day"] = summary["last_day"]
    return rfm


def order_batch(
    engine: Engine, src: SourceTables, as_of: dt.datetime, id_range: IdRange, rules: QualityRules
) -> pd.DataFrame:
    """One id range's `queries.order_summary`: aggregated in SQL, customers with odd rows flagged.

    The gate judges their rows once every batch is read (see stages.quality.gate_reads).
    """
    with src.reader(engine).connect() as conn:
        return queries.order_summary(conn, src, as_of, id_range, rules)


def context_batch(
    engine: Engine,
    src: SourceTables,
    as_of: dt.datetime,
    id_range: IdRange,
    lookback_days: int,
    rules: QualityRules | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, Findings]:
    """Open failures and reachability (flags, consent per channel) for one id range, each row judged.

    Returns both frames without their bad rows, and the findings (what was quarantined, how much was read).
    """
    findings = Findings()
    with src.reader(engine).connect() as conn:
        reach = queries.reachability(conn, src, id_range, findings=findings)
        known = quality.known_customers(reach, findings)
        failures = queries.open_failures(
            conn, src, as_of, lookback_days, id_range, rules=rules, findings=findings, known=known
        )
    return failures, reach, findings


@dataclass(frozen=True)
class GatedPartition:
    """One partition judged on its own: what scoring and deciding need of its customers, and who was skipped.

    `rfm` is the summary as scoring takes it (`queries.summary_to_rfm`, plus `last_day`).
    """

    rfm: pd.DataFrame
    failures: pd.DataFrame
    reach: pd.DataFrame
    findings: Findings
    skipped: pd.DataFrame  # customer_id, reason


def read_partition(
    engine: Engine,
    src: SourceTables,
    as_of: dt.datetime,
    index: int,
    id_range: IdRange,
    lookback_days: int,
    rules: QualityRules,
) -> GatedPartition:
    """Partition `index`'s orders summarised, its failures and reachability, gated on their own.

    A partition whose customers, consents or failures are broken beyond `rules.max_bad_share` fails here
    with a DataError naming the partition, its id range and its first bad ids: no retry changes that, and
    the other partitions are read meanwhile. Each customer's rows are judged within their own partition
    (every table is read by the same id range). The orders' bad share is judged over the whole run once
    every partition is read (`Gathered.check_orders_share`), as in one process: a feed is broken when the run's orders
    are, not when one id range's are.
    """
    summary = order_batch(engine, src, as_of, id_range, rules)
    failures, reach, findings = context_batch(engine, src, as_of, id_range, lookback_days, rules)
    try:
        rfm, gated = gate(engine, src, rules, summary, failures, reach, findings, judge_orders_share=False)
    except DataError as exc:
        raise DataError(f"{partition_name(index, id_range)}: {exc}") from None
    return GatedPartition(rfm, gated.failures, gated.reach, gated.findings, gated.skipped)


def partition_name(index: int, id_range: IdRange) -> str:
    """'partition 3 (customer ids from 'c250000' to before 'c500000')': how errors and logs name a partition."""
    low, high = id_range
    start = "the first" if low is None else repr(low)
    end = "the last" if high is None else f"before {high!r}"
    return f"partition {index} (customer ids from {start} to {end})"


def joined(parts: list[PartitionReads]) -> PartitionReads:
    """Every partition's reads in one, in partition order: what the gate judges as a whole."""
    findings = Findings()
    for part in parts:
        findings.extend(part.findings)
    return PartitionReads(
        summary=pd.concat([p.summary for p in parts], ignore_index=True),
        failures=pd.concat([p.failures for p in parts], ignore_index=True),
        reach=pd.concat([p.reach for p in parts], ignore_index=True),
        findings=findings,
    )


def gate(
    engine: Engine,
    src: SourceTables,
    rules: QualityRules,
    summary: pd.DataFrame,
    failures: pd.DataFrame,
    reach: pd.DataFrame,
    findings: Findings,
    *,
    judge_orders_share: bool = True,
) -> tuple[pd.DataFrame, quality.GatedReads]:
    """The reads judged as a whole (a broken feed stops here), then the summary as scoring takes it.

    ``judge_orders_share=False``: one partition's reads, whose orders are judged with the run's (see
    `quality.gate_reads`).

    The verdict comes back without its summary (no rows, same columns): `rfm` is what the run goes on with,
    and the verdict is kept until the decisions are stored (a second million-row frame, ~70 MiB, otherwise).
    """
    gated = quality.gate_reads(
        engine, src, rules, summary, failures, reach, findings, judge_orders_share=judge_orders_share
    )
    rfm = queries.summary_to_rfm(gated.summary, rules.as_of)
    rfm["last_day"] = gated.summary["last_day"]
    return rfm, replace(gated, summary=gated.summary.iloc[:0])
