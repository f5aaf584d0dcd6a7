"""The data-quality gate on a corpus of bad rows (tests/quality_corpus.py), on SQLite and PostgreSQL warehouses.

Every bad row is named in the quarantine or its customer skipped with a reason; the healthy customers beside
them are all still messaged; nothing raises. A broken feed stops the run with one line and stores nothing;
a mapping naming a missing table or column is refused whole before anything is read.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd
import pytest
import quality_corpus as corpus
from conftest import AS_OF
from sqlalchemy import Engine, func, insert, select, text

from winback.channels.sink import SinkChannel
from winback.errors import ConfigError, DataError
from winback.settings import Settings
from winback.warehouse import quarantine
from winback.warehouse.models import CampaignRun, CrmEvent, Decision, OutboxMessage, QuarantinedRow
from winback.warehouse.queries import send_time_flags
from winback.warehouse.source import FailuresSource, OrdersSource, SourceMapping, SourceTables

FLAVOURS = ["typed", "text"]


def load(engine: Engine, flavour: str) -> corpus.Corpus:
    built = corpus.build(flavour)
    corpus.load(engine, built)
    return built


def tables(engine: Engine, run_id: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    with engine.connect() as conn:
        held = quarantine.rows(conn, run_id)
        decisions = pd.read_sql(select(Decision.__table__).where(Decision.run_id == run_id), conn)
        outbox = pd.read_sql(select(OutboxMessage.__table__).where(OutboxMessage.run_id == run_id), conn)
    return held, decisions, outbox


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_every_bad_row_is_named_or_skipped_and_the_healthy_are_messaged(engine: Engine, flavour: str) -> None:
    built = load(engine, flavour)
    run = corpus.run(engine, corpus.config())
    _assert_named_or_skipped_and_healthy_messaged(engine, built, run.run_id)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_the_corpus_in_a_duckdb_warehouse_apart_is_gated_alike(tmp_path: Path, flavour: str) -> None:
    """The same corpus in a DuckDB warehouse (read only) beside winback's state in SQLite."""
    from winback.app.demo_data.writable import writable_warehouse
    from winback.warehouse.db import make_engine
    from winback.warehouse.migrate import upgrade

    warehouse_url, state_url = f"duckdb:///{tmp_path / 'corpus.duckdb'}", f"sqlite:///{tmp_path / 'state.db'}"
    with writable_warehouse(warehouse_url) as writer:
        built = load(writer, flavour)
    state = make_engine(state_url)
    upgrade(state_url, engine=state)
    src = SourceTables(SourceMapping(), warehouse_url=warehouse_url)
    run = corpus.run(state, corpus.config(), src=src)
    _assert_named_or_skipped_and_healthy_messaged(state, built, run.run_id)
    with src.reader(state).connect() as conn:  # read strictly there too
        flags = send_time_flags(conn, src, ["G000", "G001", "G002"])
    assert {"G000", "G001", "G002"} <= flags.found
    state.dispose()


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_padded_or_over_long_order_id_is_quarantined_in_a_duckdb_warehouse(tmp_path: Path, flavour: str) -> None:
    """DuckDB's aggregation flags a customer whose order ids are padded or too long, so their rows are judged.

    The order itself is quarantined (as SQLite, which judges every text-typed row, does); its customer keeps
    their good rows and is messaged.
    """
    from winback.app.demo_data.writable import writable_warehouse
    from winback.warehouse.db import make_engine
    from winback.warehouse.migrate import upgrade

    built = corpus.build(flavour)
    cid = built.history(built.customer("VK05"))
    built.expect("padded order id", "orders", built.order(" A1", cid, AS_OF - 90 * corpus.DAY, 20.0), "order_id")
    long_id = "L" * 80
    built.expect("over-long order id", "orders", built.order(long_id, cid, AS_OF - 91 * corpus.DAY, 20.0), "order_id")
    built.messaged.add(cid)
    warehouse_url, state_url = f"duckdb:///{tmp_path / 'corpus.duckdb'}", f"sqlite:///{tmp_path / 'state.db'}"
    with writable_warehouse(warehouse_url) as writer:
        corpus.load(writer, built)
    state = make_engine(state_url)
    upgrade(state_url, engine=state)
    run = corpus.run(state, corpus.config(), src=SourceTables(SourceMapping(), warehouse_url=warehouse_url))
    _assert_named_or_skipped_and_healthy_messaged(state, built, run.run_id)
    held, decisions, _ = tables(state, run.run_id)
    problems = dict(zip(held["record_id"], held["problem"], strict=True))
    assert problems["' A1'"] == "order id ' A1' has surrounding whitespace"
    assert problems[long_id] == "order id longer than 64 characters"
    assert decisions.set_index("customer_id").loc[cid, "action"] == "contact"
    state.dispose()


def _assert_named_or_skipped_and_healthy_messaged(engine: Engine, built: corpus.Corpus, run_id: int) -> None:
    held, decisions, outbox = tables(engine, run_id)

    named = set(zip(held["source_table"], held["record_id"], held["field"], strict=True))
    missing = [case for case, *key in built.quarantined if tuple(key) not in named]
    assert missing == [], f"not in the quarantine: {missing}"

    by_customer = decisions.set_index("customer_id")
    for customer, words in built.skipped.items():
        assert customer in by_customer.index, f"{customer}: no decision"
        row = by_customer.loc[customer]
        assert row["action"] == "skip" and words in row["reason"], f"{customer}: {row['action']}: {row['reason']}"

    contacted = set(decisions.loc[decisions["action"] == "contact", "customer_id"])
    assert built.messaged - contacted == set()
    assert built.messaged <= set(outbox["customer_id"])
    assert set(outbox.loc[outbox["customer_id"].isin(built.messaged), "status"]) <= {"sent", "queued"}
    for customer, words in built.reasons.items():
        assert words in by_customer.loc[customer, "reason"]
    # nobody outside the customers table, nor a record with a padded id, gets a decision; nor a non-candidate
    assert not {"NOBODY", "GHOST", " VC02 ", " G001 ", *built.undecided} & set(decisions["customer_id"])
    # the bad rows never became a decision: no failure of theirs is anyone's reason
    assert not decisions["failure_id"].fillna("").str.startswith(("BAD-", " BAD")).any()
    assert decisions["customer_id"].is_unique


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_personal_values_are_masked_and_bad_names_never_reach_a_message(engine: Engine, flavour: str) -> None:
    load(engine, flavour)
    run = corpus.run(engine, corpus.config())
    held, _decisions, outbox = tables(engine, run.run_id)
    text_held = " ".join(held["value"].fillna("").astype(str)) + " ".join(held["problem"].astype(str))
    assert "victim@example.org" not in text_held and "N" * 100 not in text_held
    phones = held.loc[held["field"] == "phone", "value"].dropna().tolist()
    assert phones and all("*" in p for p in phones)  # masked (a short number entirely)
    names = outbox.set_index("customer_id").loc[["VN01", "VN02"], "context"]
    assert [ctx.get("first_name") for ctx in names] == [None, None]  # greeted without a name
    assert all(len(s) < 200 for s in outbox["subject"].fillna(""))
    assert not outbox["subject"].fillna("").str.contains("\n|\r|Bcc", regex=True).any()


def test_the_run_stores_its_quarantine_and_says_how_many(engine: Engine) -> None:
    load(engine, "text")
    run = corpus.run(engine, corpus.config())
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).where(QuarantinedRow.run_id == run.run_id)).scalar_one()
        stats = conn.execute(select(CampaignRun.stats).where(CampaignRun.id == run.run_id)).scalar_one()
        line = quarantine.summary_line(int(quarantine.counts(conn, run.run_id)["n"].sum()), run.run_id)
    assert stored > 40 and stats["quarantined"] <= stored  # names are set aside later, when queueing
    assert line == f"{stored} source rows quarantined: `winback quality --run-id {run.run_id}`"


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_broken_feed_stops_before_anything_is_decided_or_stored(engine: Engine, flavour: str) -> None:
    load(engine, flavour)
    with engine.begin() as conn:  # a third of the orders now carry a negative amount
        conn.execute(text("UPDATE orders SET amount = -1 WHERE order_id LIKE 'O-G0%-1' OR order_id LIKE 'O-G1%-1'"))
    with pytest.raises(DataError) as stopped:
        corpus.run(engine, corpus.config())
    message = str(stopped.value)
    assert "\n" not in message
    assert re.match(
        r"orders: \d+ of the \d+ rows read are bad \(\d+\.\d%, over data_quality.max_bad_share 5%\)", message
    )
    assert "(amount: negative amount)" in message  # the first bad records, named with their problem
    assert "nothing was decided, stored or sent" in message
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(CampaignRun)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(Decision)).scalar_one() == 0


def test_the_share_is_configurable(engine: Engine) -> None:
    load(engine, "typed")
    with pytest.raises(DataError, match=r"^customers: .* over data_quality.max_bad_share 1%"):
        corpus.run(engine, corpus.config(max_bad_share=0.01))
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM orders WHERE order_id = 'BAD-A2'"))  # the 1e12 one
    run = corpus.run(engine, corpus.config(max_plausible_amount=1e13))
    held, _, _ = tables(engine, run.run_id)
    assert "BAD-A2" not in set(held["record_id"])
    assert "BAD-A3" in set(held["record_id"])  # infinity stays implausible at any maximum


def test_the_mapping_is_checked_whole_before_anything(engine: Engine) -> None:
    load(engine, "typed")
    mapping = SourceMapping(
        orders=OrdersSource(amount="amount_eur", coupon_code="voucher"),
        failures=FailuresSource(table="incidents"),
    )
    from winback.stages import campaign as stages

    with pytest.raises(ConfigError) as refused:
        stages.check_source(engine, SourceTables(mapping), AS_OF, AS_OF, corpus.config())
    assert str(refused.value) == (
        "source mapping: table(s) not found: incidents; column(s) not found: orders.amount_eur (amount), "
        "orders.voucher (coupon_code): set WINBACK_SOURCE_MAPPING to name your tables and columns (see examples/)"
    )


def test_a_declared_key_needs_no_duplicate_check_and_an_undeclared_one_gets_it(engine: Engine) -> None:
    from winback.warehouse.source import source_schema

    load(engine, "typed")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE orders_keyed (order_id VARCHAR(64) PRIMARY KEY, customer_id TEXT, "
                          "ordered_at TEXT, amount REAL, coupon_code TEXT)"))  # fmt: skip
    keyed = SourceTables(SourceMapping(orders=OrdersSource(table="orders_keyed")))
    with engine.connect() as conn:
        assert "orders" in source_schema(conn, keyed).unique_keys
        assert "orders" not in source_schema(conn, corpus.SRC).unique_keys


@pytest.mark.parametrize("flavour", ["text"])
def test_send_time_flags_read_yes_and_no_strictly(engine: Engine, flavour: str) -> None:
    load(engine, flavour)
    with engine.begin() as conn:
        conn.execute(text("UPDATE consents SET granted = 'no' WHERE customer_id = 'G000' AND channel = 'email'"))
        conn.execute(text("UPDATE customers SET do_not_contact = 'no' WHERE customer_id = 'G001'"))
        conn.execute(text("UPDATE customers SET do_not_contact = 'maybe' WHERE customer_id = 'G002'"))
    with engine.connect() as conn:
        flags = send_time_flags(conn, corpus.SRC, ["G000", "G001", "G002"])
    assert ("G000", "email") not in flags.granted and ("G000", "sms") in flags.granted
    assert flags.do_not_contact == {"G002"}  # "no" is no; what is not a clear no protects the customer


def test_recovery_skips_a_quarantined_customer_and_keeps_its_quarantine(
    engine: Engine, settings: Settings, sink: SinkChannel
) -> None:
    from winback.stages.recovery import RecoverySetup, recover

    load(engine, "text")
    with engine.begin() as conn:
        conn.execute(text("UPDATE orders SET amount = '12,50' WHERE order_id = 'O-G005-0'"))
        for event_id, customer, order in (("E1", "VC01", None), ("E2", "G005", "O-G005-0")):
            payload = {"event_id": event_id, "type": "complaint.created", "customer_id": customer, "order_id": order,
                       "ticket_id": f"T-{event_id}", "category": "damaged_item", "severity": 4,
                       "occurred_at": AS_OF.isoformat(), "description": "Box crushed in transit"}  # fmt: skip
            conn.execute(insert(CrmEvent).values(event_id=event_id, type=payload["type"], customer_id=customer,
                                                 payload=payload, received_at=AS_OF))  # fmt: skip
    setup = RecoverySetup.from_settings(settings, channels={"email": sink, "sms": sink})
    skipped = recover(engine, engine, corpus.SRC, "E1", AS_OF, setup)
    assert skipped["action"] == "skip" and "customer id appears 2 times" in skipped["reason"]
    helped = recover(engine, engine, corpus.SRC, "E2", AS_OF, setup)
    assert helped["action"] == "contact"
    with engine.connect() as conn:
        held = quarantine.rows(conn, helped["run_id"])
    assert ("orders", "O-G005-0", "amount") in set(
        zip(held["source_table"], held["record_id"], held["field"], strict=True)
    )


# ---------------------------------------------------------------- the flow, the CLI and the report


@pytest.fixture
def sqlite_corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    from winback.warehouse.db import make_engine
    from winback.warehouse.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'wb.db'}"
    engine = make_engine(url)
    upgrade(url, engine=engine)
    corpus.load(engine, corpus.build("text"))
    engine.dispose()
    monkeypatch.setenv("WINBACK_DATABASE_URL", url)
    return url


def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    from winback.app.cli import main

    monkeypatch.setattr(sys, "argv", ["winback", *args])
    try:
        main()
        code = 0
    except SystemExit as ended:
        code = int(ended.code or 0)
    return code, capsys.readouterr().out


def test_the_flow_and_its_dry_run_say_the_same_and_the_cli_lists_it(
    sqlite_corpus: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from winback.flows.campaign import winback_campaign

    cfg = corpus.config()
    dry = winback_campaign(config=cfg.model_copy(update={"dry_run": True}), as_of=AS_OF, now=AS_OF)
    found = int(re.match(r"(\d+) source rows quarantined: not stored \(dry run\)$", dry["quarantine"])[1])
    assert dry["dry_run"]["quality"]["by_table"]["orders"] > 0
    real = winback_campaign(config=cfg, as_of=AS_OF, now=AS_OF)
    stored = int(re.match(rf"(\d+) source rows quarantined: `winback quality --run-id {real['run_id']}`$",
                          real["quarantine"])[1])  # fmt: skip
    assert stored == found + 2  # and the two names set aside when queueing (a dry run queues nothing)

    code, out = cli(monkeypatch, capsys, "quality", "--run-id", str(real["run_id"]))
    assert code == 0 and f"{stored} source rows quarantined in run {real['run_id']}" in out
    assert "consents: 5 rows not used" in out and "Quarantine of run" in out
    csv = tmp_path / "q.csv"
    code, out = cli(monkeypatch, capsys, "quality", "--csv", str(csv))  # the latest run
    written = pd.read_csv(csv, keep_default_na=False)
    assert code == 0 and len(written) == stored
    row = written.set_index("record_id").loc["VC04/email"]
    assert (row["source_table"], row["field"], row["value"]) == ("consents", "granted", "perhaps")
    assert row["problem"] == "'perhaps' is not a yes/no value: counted as not given"

    from winback.reports.build import data_quality_notes
    from winback.warehouse.db import make_engine

    with make_engine(sqlite_corpus).connect() as conn:
        notes = data_quality_notes(conn, real["run_id"])
    assert notes[0].startswith(f"Data quality: {stored} entries in your data had a problem")
    assert any(re.match(r"Data quality: [\d,]+ order rows? set aside: not used at all\.$", n) for n in notes)


def test_a_broken_feed_is_one_line_and_exit_2_from_the_cli(
    sqlite_corpus: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from winback.warehouse.db import make_engine

    engine = make_engine(sqlite_corpus)
    with engine.begin() as conn:
        conn.execute(text("UPDATE service_failures SET severity = 'high' WHERE failure_id LIKE 'F-G0%'"))
    code, out = cli(monkeypatch, capsys, "campaign", "--as-of", AS_OF.strftime("%Y-%m-%dT%H:%M:%S"))
    line = " ".join(out.split())
    assert code == 2 and "Traceback" not in out
    assert re.match(r"error: service_failures: \d+ of the \d+ rows read are bad", line)
    assert "'high' is not a whole number on the 1–5 scale" in line
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(CampaignRun)).scalar_one() == 0


def test_a_missing_column_fails_the_dry_run_too(
    sqlite_corpus: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("orders:\n  amount: amount_eur\n")
    monkeypatch.setenv("WINBACK_SOURCE_MAPPING", str(mapping))
    code, out = cli(monkeypatch, capsys, "campaign", "--dry-run")
    assert code == 2
    assert " ".join(out.split()).startswith("error: source mapping: column(s) not found: orders.amount_eur (amount)")


def test_the_report_shows_a_data_quality_section() -> None:
    from test_report_html import make_report

    from winback.reports.html import render_html_report

    html = render_html_report(make_report(notes=["a plain note", "Data quality: 7 source rows quarantined <b>"]))
    section = html.split('id="data-quality"')[1].split("</section>")[0]
    assert "7 source rows quarantined &lt;b&gt;" in section and "Data quality:" not in section
    notes = html.split('id="notes"')[1].split("</section>")[0]
    assert "a plain note" in notes and "quarantined" not in notes
