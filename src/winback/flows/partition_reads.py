"""One partition's reads as a Prefect task: the only module a Dask worker has to import.

A worker imports the module that defines the task it is handed, with everything that module imports. Here
that is the read path alone (stages.reads): not the flow's deciding, fitting and spilling, which cost each
worker of a temporary cluster 1.4 s of imports at its start (`python -X importtime`: 2.5 s against 1.0 s),
in every run.
"""

from __future__ import annotations

import datetime as dt

from prefect import task
from prefect.cache_policies import NO_CACHE

from winback.flows.retries import unless_bad_input
from winback.stages import reads
from winback.warehouse.db import engine_for
from winback.warehouse.quality import QualityRules
from winback.warehouse.source import SourceTables
from winback.warehouse.summaries import IdRange

PARTITION_RETRIES = 2


@task(
    cache_policy=NO_CACHE,
    retries=PARTITION_RETRIES,
    retry_delay_seconds=1,
    retry_condition_fn=unless_bad_input,
    task_run_name="partition-{index}",
)
def read_partition(
    url: str,
    src: SourceTables,
    as_of: dt.datetime,
    index: int,
    id_range: IdRange,
    lookback_days: int,
    rules: QualityRules,
) -> reads.GatedPartition:
    """One partition's order summaries, open failures and reachability, read and gated on whichever worker runs it."""
    return reads.read_partition(engine_for(url), src, as_of, index, id_range, lookback_days, rules)
