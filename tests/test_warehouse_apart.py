"""The campaign path with the warehouse in a database of its own, read only: the same decisions as one database.

Warehouses: a DuckDB file (opened read_only) and a PostgreSQL database where winback's role holds SELECT on
the four source tables and nothing else; winback's state in SQLite. Any write to the warehouse would fail
in the engine (DuckDB read_only, PostgreSQL's grants and read-only transactions), failing the test.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
import stage_runs
from conftest import AS_OF, _new_pg_database, select_only_reader
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.orm import Session

from winback.app.demo_data import generate_demo_warehouse
from winback.config import CampaignConfig
from winback.segments.scoring import score_customers
from winback.stages import campaign as stages
from winback.stages import reads
from winback.warehouse.db import make_engine
from winback.warehouse.migrate import upgrade
from winback.warehouse.models import Decision, OutboxMessage, Return
from winback.warehouse.returns import measured_customers, track_run
from winback.warehouse.source import SourceMapping, SourceTables

CUSTOMERS, SEED = 1500, 5
CONFIG = CampaignConfig(campaign_id="apart", budget=2000.0, holdout_share=0.2, batch_size=600)
DECISION_COLUMNS = ["customer_id", "action", "segment", "channel", "offer_kind", "arm", "failure_id"]


def _state(tmp_path: Path, name: str) -> Engine:
    url = f"sqlite:///{tmp_path / name}"
    engine = make_engine(url)
    upgrade(url, engine=engine)
    return engine


def _campaign(state: Engine, src: SourceTables) -> dict[str, object]:
    """The campaign, track and report stages (as the flows call them) on `state`, reading `src`'s warehouse."""
    with Session(state) as session, session.begin():
        run = stages.start_run(session, CONFIG, AS_OF)
    rules = stages.check_source(state, src, AS_OF, AS_OF, CONFIG)
    batches = reads.plan_batches(state, src, CONFIG.batch_size)
    summary = pd.concat([reads.order_batch(state, src, AS_OF, b, rules) for b in batches], ignore_index=True)
    contexts = [reads.context_batch(state, src, AS_OF, b, CONFIG.aggrieved.lookback_days, rules) for b in batches]
    failures = pd.concat([c[0] for c in contexts], ignore_index=True)
    reach = pd.concat([c[1] for c in contexts], ignore_index=True)
    from winback.warehouse.quality import Findings

    findings = Findings()
    for c in contexts:
        findings.extend(c[2])
    rfm, gated = reads.gate(state, src, rules, summary, failures, reach, findings)
    scored, model = score_customers(rfm, CONFIG.economics, CONFIG.use_models)
    frames = (scored, gated.failures, gated.reach)
    outcome = stage_runs.decide_and_send(state, run, frames, CONFIG, model.as_dict(), gated, now=AS_OF, src=src)
    queued = outcome["messages_queued"]
    later = AS_OF + dt.timedelta(days=31)
    with state.begin() as conn, src.reader(state).connect() as warehouse:
        measured = track_run(conn, src, run.run_id, 30, later, warehouse=warehouse)
    with state.connect() as conn, src.reader(state).connect() as warehouse:
        report = measured_customers(conn, run.run_id, {"email": 0.01, "sms": 0.05}, 0.3, src=src, warehouse=warehouse)
        decisions = pd.read_sql(select(Decision.__table__).where(Decision.run_id == run.run_id), conn)
        outbox = pd.read_sql(select(OutboxMessage.customer_id, OutboxMessage.status), conn)
        returns = pd.read_sql(select(Return.customer_id, Return.returned), conn)
    decided = decisions[DECISION_COLUMNS].sort_values("customer_id", ignore_index=True)
    return {
        "decisions": decided.astype(object).where(decided.notna(), None),
        "queued": queued,
        "outbox": sorted(outbox["customer_id"]),
        "measured": measured,
        "returns": len(returns),
        "report_rows": len(report),
    }


@pytest.fixture(scope="module")
def single_database(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The reference: source tables and winback's state in one SQLite file, as before."""
    tmp = tmp_path_factory.mktemp("single")
    state = _state(tmp, "one.db")
    generate_demo_warehouse(state, customers=CUSTOMERS, seed=SEED, as_of=AS_OF)
    try:
        return _campaign(state, SourceTables(SourceMapping()))
    finally:
        state.dispose()


def _assert_same(result: dict[str, object], reference: dict[str, object]) -> None:
    assert int(reference["queued"]) > 50 and result["queued"] == reference["queued"]  # type: ignore[call-overload]
    pd.testing.assert_frame_equal(result["decisions"], reference["decisions"])  # type: ignore[arg-type]
    assert result["outbox"] == reference["outbox"]
    assert result["measured"] == reference["measured"] and result["returns"] == reference["returns"]
    assert result["report_rows"] == reference["report_rows"]


def test_duckdb_warehouse_with_sqlite_state_decides_as_one_database(
    tmp_path: Path, single_database: dict[str, object]
) -> None:
    file = tmp_path / "warehouse.duckdb"
    writer = create_engine(f"duckdb:///{file}")
    generate_demo_warehouse(writer, customers=CUSTOMERS, seed=SEED, as_of=AS_OF)
    writer.dispose()
    state = _state(tmp_path, "state.db")
    src = SourceTables(SourceMapping(), warehouse_url=f"duckdb:///{file}")
    assert src.reader(state).dialect.name == "duckdb"
    result = _campaign(state, src)
    _assert_same(result, single_database)
    with state.connect() as conn:  # the state holds no source table: nothing was copied across
        assert not conn.execute(text("SELECT name FROM sqlite_master WHERE name = 'customers'")).first()
    # and the warehouse refuses a write
    with pytest.raises(Exception, match="read-only"), src.reader(state).begin() as conn:
        conn.execute(text("DELETE FROM orders"))


@pytest.mark.postgres
def test_postgresql_warehouse_with_a_select_only_role(
    tmp_path: Path, postgres_server: str, single_database: dict[str, object]
) -> None:
    admin_url = _new_pg_database(postgres_server)
    admin = create_engine(admin_url)
    generate_demo_warehouse(admin, customers=CUSTOMERS, seed=SEED, as_of=AS_OF)
    reader_url = select_only_reader(admin)
    admin.dispose()
    state = _state(tmp_path, "state.db")
    src = SourceTables(SourceMapping(), warehouse_url=reader_url)
    result = _campaign(state, src)
    _assert_same(result, single_database)
    for statement in ("DELETE FROM orders", "CREATE TABLE wb_probe (x int)"):
        with pytest.raises(Exception, match=r"read-only|permission denied"), src.reader(state).begin() as conn:
            conn.execute(text(statement))


def test_the_warehouse_url_defaults_to_the_database_then_to_the_demo_duckdb_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from winback.settings import DEFAULT_DATABASE_URL, DEFAULT_WAREHOUSE_FILE, Settings

    monkeypatch.chdir(tmp_path)
    alone = Settings.from_mapping({"WINBACK_DATABASE_URL": "sqlite:///state.db"})
    assert alone.warehouse_url == "sqlite:///state.db" and not alone.separate_warehouse
    assert SourceTables.from_settings(alone).warehouse_url is None  # one database, as before
    assert Settings.from_mapping({}).warehouse_url == DEFAULT_DATABASE_URL
    (tmp_path / DEFAULT_WAREHOUSE_FILE).touch()  # what `winback demo` leaves beside winback.db
    found = Settings.from_mapping({})
    assert found.warehouse_url == f"duckdb:///{DEFAULT_WAREHOUSE_FILE}" and found.separate_warehouse
    named = Settings.from_mapping({"WINBACK_WAREHOUSE_URL": "duckdb:///elsewhere.duckdb"})
    assert SourceTables.from_settings(named).warehouse_url == "duckdb:///elsewhere.duckdb"


def test_an_unreachable_warehouse_pauses_sending_with_one_line(tmp_path: Path) -> None:
    from winback.delivery.checks import WarehouseUnreachable, blocked_at_send_time

    state = _state(tmp_path, "state.db")
    src = SourceTables(SourceMapping(), warehouse_url=f"sqlite:///{tmp_path / 'gone' / 'warehouse.db'}")
    rows = [{"id": "m1", "customer_id": "C1", "channel": "email"}]
    with pytest.raises(WarehouseUnreachable, match=r"sending paused.*nothing sent unchecked") as raised:
        blocked_at_send_time(state, src, rows)
    assert "\n" not in str(raised.value)
