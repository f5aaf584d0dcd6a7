"""A run decided partition by partition (stages.partitioned) against the same run decided in one part.

Small partitions of the demo shop (60 customers each), so that some have no failure, no candidate or no
eligible customer, and the run-wide steps (the fit, the holdout, the budget walk) see every partition. No
Dask here: the partitions are read in this process, as a worker would read each (tests/test_partitions.py
runs the flow on a cluster).
"""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import AS_OF
from sqlalchemy import Engine, bindparam, select, text

from winback.config import CampaignConfig
from winback.errors import DataError
from winback.offers.policy import CompensationPolicy
from winback.segments.budget_walk import select_within_budget
from winback.segments.decision import DECISION_COLUMNS
from winback.segments.scoring import apply_scorer, fit_scorer
from winback.stages import campaign, deciding, quality, reads
from winback.stages.gathered import Gathered, PartitionSpill
from winback.stages.partitioned import _rows_of, decide_partitions
from winback.warehouse.quality import Findings
from winback.warehouse.source import SourceMapping, SourceTables
from winback.warehouse.source_models import DemoOrder

SRC = SourceTables(SourceMapping())
CONFIG = CampaignConfig(campaign_id="parts", budget=60.0, holdout_share=0.2)
POLICY = CompensationPolicy.default()
PARTITION = 60
LOOKBACK = CONFIG.aggrieved.lookback_days


def _in_one_part(engine: Engine) -> pd.DataFrame:
    """What one process decides: every customer read, gated and scored at once."""
    rules = quality.source_rules(engine, SRC, AS_OF, AS_OF, CONFIG)
    everyone = (None, None)
    summary = reads.order_batch(engine, SRC, AS_OF, everyone, rules)
    failures, reach, findings = reads.context_batch(engine, SRC, AS_OF, everyone, LOOKBACK, rules)
    rfm, gated = reads.gate(engine, SRC, rules, summary, failures, reach, findings)
    scorer = fit_scorer(rfm, CONFIG.economics)
    with engine.connect() as conn:
        context = deciding.decision_context(conn, AS_OF, None, CONFIG, POLICY)
        scored = apply_scorer(rfm, scorer, CONFIG.economics)
        decided = deciding.decide_whole(conn, SRC, context, scored, gated.failures, gated.reach, findings)
    return campaign.with_gate_skips(decided, gated.skipped)


def _gathered(engine: Engine, *, on_disk: bool = True) -> Gathered:
    rules = quality.source_rules(engine, SRC, AS_OF, AS_OF, CONFIG)
    gathered = Gathered(PartitionSpill(on_disk=on_disk))
    for index, id_range in enumerate(reads.plan_batches(engine, SRC, PARTITION)):
        gathered.keep(index, reads.read_partition(engine, SRC, AS_OF, index, id_range, LOOKBACK, rules))
    return gathered


def _in_partitions(engine: Engine, *, on_disk: bool = True) -> tuple[list[pd.DataFrame], Gathered]:
    gathered = _gathered(engine, on_disk=on_disk)
    gathered.check_orders_share(SRC.orders.name, CONFIG.data_quality.max_bad_share)
    scorer = fit_scorer(gathered.take_model_inputs(), CONFIG.economics, True, gathered.spend_problems())
    with engine.connect() as conn:
        context = deciding.decision_context(conn, AS_OF, None, CONFIG, POLICY, typical_gap=scorer.typical_gap)
    parts = list(decide_partitions(engine, SRC, context, scorer, gathered, gathered.all_findings()))
    return parts, gathered


def _by_customer(decisions: pd.DataFrame) -> pd.DataFrame:
    return decisions[DECISION_COLUMNS].sort_values("customer_id").reset_index(drop=True)


@pytest.mark.parametrize("on_disk", [True, False], ids=["spilled-to-disk", "held-in-memory"])
def test_a_run_decided_partition_by_partition_decides_as_one_process(demo_engine: Engine, on_disk: bool) -> None:
    whole = _by_customer(_in_one_part(demo_engine))
    parts, gathered = _in_partitions(demo_engine, on_disk=on_disk)
    try:
        assert len(parts) > 30
        # the edges a partition meets that a whole run does not
        assert any(not (p["segment"] == "aggrieved").any() for p in parts)  # no failure in its id range
        assert set(whole["action"]) == {"contact", "holdout", "skip"}
        assert whole["reason"].str.contains("over budget").any()  # the walk cuts through the run
        pd.testing.assert_frame_equal(_by_customer(pd.concat(parts, ignore_index=True)), whole, check_dtype=False)
        # each partition read back once and let go of
        assert not list(gathered.spill.root.iterdir()) if on_disk else not gathered.spill._held
    finally:
        gathered.spill.close()
    assert not gathered.spill.root.exists() if on_disk else gathered.spill.root is None


def test_orders_are_judged_over_the_run_not_per_partition(demo_engine: Engine) -> None:
    """A few broken orders in one id range are the run's 1 %, not a broken feed; a tenth of all orders is."""
    with demo_engine.connect() as conn:
        ids = conn.execute(select(DemoOrder.customer_id).distinct().order_by(DemoOrder.customer_id)).scalars()
        ids = list(ids)
    implausible = text("UPDATE orders SET amount = 1000000000 WHERE customer_id IN :ids").bindparams(
        bindparam("ids", expanding=True)
    )
    with demo_engine.begin() as conn:
        conn.execute(implausible, {"ids": ids[:20]})  # a third of the first partition's customers
    gathered = _gathered(demo_engine)  # no partition fails for its own share
    try:
        findings = gathered.all_findings()
        bad, read = findings.bad_rows()[SRC.orders.name], findings.read[SRC.orders.name]
        assert 0 < bad / read < CONFIG.data_quality.max_bad_share
        gathered.check_orders_share(SRC.orders.name, CONFIG.data_quality.max_bad_share)
    finally:
        gathered.spill.close()
    with demo_engine.begin() as conn:
        conn.execute(implausible, {"ids": ids[: len(ids) // 8]})
    gathered = _gathered(demo_engine)
    try:
        with pytest.raises(DataError, match=r"^orders: .* rows read are bad"):
            gathered.check_orders_share(SRC.orders.name, CONFIG.data_quality.max_bad_share)
    finally:
        gathered.spill.close()


def test_findings_are_merged_once_in_partition_order() -> None:
    gathered = Gathered(PartitionSpill())
    try:
        for index in (2, 0, 1):  # as the partitions finish
            findings = Findings()
            findings.count_read("orders", 10)
            findings.add("orders", f"o{index}", "amount", -1, "not a positive amount", customer_id=f"c{index}")
            gathered.findings[index] = findings
        merged = gathered.all_findings()
        assert [r[1] for r in merged.records] == ["o0", "o1", "o2"] and merged.read["orders"] == 30
        assert gathered.findings == {} and gathered.all_findings() is merged
    finally:
        gathered.spill.close()


def test_a_partition_without_an_eligible_customer_gets_an_empty_verdict() -> None:
    walk = pd.DataFrame(
        {"customer_id": ["a", "b"], "segment": "lapsed", "ratio": [2.0, 1.0], "walk_cost": 1.0},
        index=pd.MultiIndex.from_tuples([(0, 0), (2, 5)], names=["partition", "row"]),
    )
    selected = select_within_budget(walk, "k", 0.0, budget=10.0)
    assert _rows_of(selected, 2).index.tolist() == [5] and bool(_rows_of(selected, 2)["within"].iloc[0])
    empty = _rows_of(selected, 1)  # partition 1 had no eligible customer
    assert empty.empty and list(empty.columns) == list(selected.columns)
