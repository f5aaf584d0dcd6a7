"""A partitioned run's scoring and decisions, one partition at a time, so the flow's memory does not grow with the run.

Each partition arrives read and gated on its own (`reads.read_partition`, on a Dask worker). The flow keeps
it on local disk (`PartitionSpill`; in memory for a run of at most `partition_plan.LARGE_RUN` customers)
and holds in memory only what the run-wide steps need: the model inputs (`model_inputs.MODEL_INPUTS`, 32 bytes a
customer) for the one fit, and later each eligible customer's place in the budget walk
(`budget_walk.WALK_COLUMNS`). Then:

1. the models are fitted once on every partition's inputs, gathered in partition order, so the fit is the
   one a single process makes on the same customers;
2. each partition is scored with that fit and priced (`deciding.price_part`), and put back on disk;
3. the holdout and the budget walk run once over every partition's eligible customers;
4. each partition is finished (`deciding.finish_part`) and handed to the caller, who stores it
   (stages.decide_and_send) or counts it (a dry run).

The decisions are those one process makes for the same as-of: every step outside 1 and 3 is customer by
customer, and 1 and 3 see every customer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from winback.config import CampaignConfig
from winback.offers.policy import CompensationPolicy
from winback.segments.scoring import Scorer, apply_scorer
from winback.stages import deciding
from winback.stages.campaign import preview_summary, with_gate_skips
from winback.stages.gathered import Gathered
from winback.stages.preview import PreviewTally
from winback.warehouse.quality import Findings
from winback.warehouse.source import SourceTables


def decide_partitions(
    warehouse: Engine,
    src: SourceTables,
    context: deciding.DecisionContext,
    scorer: Scorer,
    gathered: Gathered,
    findings: Findings,
) -> Iterator[pd.DataFrame]:
    """Each partition's decisions, in partition order, one at a time (see the module); set-asides to `findings`."""
    economics, spill, indexes = context.config.economics, gathered.spill, gathered.indexes
    walks: dict[int, pd.DataFrame] = {}
    with warehouse.connect() as conn:
        for index in indexes:
            rfm, failures, reach, skipped = spill.take("read", index)
            scored = apply_scorer(rfm, scorer, economics)
            part = deciding.price_part(conn, src, context, scored, failures, reach, findings)
            walks[index] = part.priced.walk
            spill.put("priced", index, (part, skipped))
            del rfm, failures, reach, scored, part
        walk = pd.concat(walks, names=["partition", "row"])
        del walks
        selected, ranked_of = deciding.select(context, walk), len(walk)
        del walk
        for index in indexes:
            part, skipped = spill.take("priced", index)
            mine = _rows_of(selected, index)
            decisions = deciding.finish_part(conn, src, context, part, mine, ranked_of, findings)
            yield with_gate_skips(decisions, skipped)


def _rows_of(selected: pd.DataFrame, index: int) -> pd.DataFrame:
    """The walk's verdict on partition `index`'s customers, indexed as that partition's priced frame."""
    try:
        return selected.xs(index, level="partition")
    except KeyError:  # none of its customers is eligible
        return selected.iloc[:0].droplevel("partition")


def preview_partitioned_run(
    engine: Engine,
    as_of: dt.datetime,
    gathered: Gathered,
    scorer: Scorer,
    config: CampaignConfig,
    policy: CompensationPolicy,
    *,
    src: SourceTables,
) -> dict[str, Any]:
    """A partitioned dry run: what `stages.campaign.preview_run` reports, counted partition by partition."""
    with engine.connect() as conn:
        context = deciding.decision_context(conn, as_of, None, config, policy, typical_gap=scorer.typical_gap)
    findings = gathered.all_findings()
    tally = PreviewTally()
    for decisions in decide_partitions(src.reader(engine), src, context, scorer, gathered, findings):
        tally.add(decisions)
    return preview_summary(tally, config, context.lifts, context.uplift_summary, findings)
