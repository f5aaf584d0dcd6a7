"""The console script on bad ground: one line naming the problem and what to do, exit code 2, no traceback."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from winback.app.cli import main
from winback.warehouse.db import make_engine
from winback.warehouse.migrate import head, upgrade


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["winback", *args])
    with pytest.raises(SystemExit) as ended:
        main()
    return int(ended.value.code or 0), " ".join(capsys.readouterr().out.split())


@pytest.fixture
def migrated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'wb.db'}"
    upgrade(url, engine=make_engine(url))
    monkeypatch.setenv("WINBACK_DATABASE_URL", url)
    return url


def test_a_missing_sqlite_file_is_named_not_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "typo.db"
    monkeypatch.setenv("WINBACK_DATABASE_URL", f"sqlite:///{path}")
    code, out = run(monkeypatch, capsys, "campaign")
    assert code == 2 and out.startswith(f"error: no SQLite database at {path}")
    assert "Traceback" not in out and not path.exists()


OPENING_A_DATABASE = [
    ["campaign"], ["campaign", "--dry-run"], ["dispatch"], ["track"], ["report"], ["explain", "C1"], ["preview", "C1"],
    ["consent", "C1"], ["offers", "export", "--run-id", "1", "--out", "codes.csv"], ["offers", "ledger"],
    ["offers", "import-redemptions", "redemptions.csv"], ["models", "show"], ["serve"], ["demo-data"],
]  # fmt: skip


@pytest.mark.parametrize("args", OPENING_A_DATABASE, ids=lambda args: " ".join(args[:2]))
def test_no_command_creates_a_mistyped_sqlite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    """`winback db upgrade` (and `winback demo`) create a database; a typo anywhere else is named, not created."""
    path = tmp_path / "winbak.db"
    monkeypatch.setenv("WINBACK_DATABASE_URL", f"sqlite:///{path}")
    monkeypatch.chdir(tmp_path)
    code, out = run(monkeypatch, capsys, *args)
    assert (code, out) == (2, f"error: no SQLite database at {path}: check WINBACK_DATABASE_URL, or create it with "
                              "`winback db upgrade`")  # fmt: skip
    assert not path.exists() and not (tmp_path / "codes.csv").exists()


def test_db_upgrade_creates_the_database_only_in_a_folder_that_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere" / "winback.db"
    monkeypatch.setenv("WINBACK_DATABASE_URL", f"sqlite:///{missing}")
    code, out = run(monkeypatch, capsys, "db", "upgrade")
    assert code == 2 and out.startswith(f"error: no folder {missing.parent} for the SQLite database winback.db")
    assert not missing.parent.exists()
    made = tmp_path / "winback.db"
    monkeypatch.setenv("WINBACK_DATABASE_URL", f"sqlite:///{made}")
    code, out = run(monkeypatch, capsys, "db", "upgrade")
    assert (code, out) == (0, f"winback tables at revision {head()} in {made}") and made.exists()


@pytest.mark.parametrize(
    ("env", "args", "line"),
    [
        ({"WINBACK_DATABASE_URL": "mysql://shop:secret@db.example/shop"}, ["report"], "error: no database driver for "
         "mysql:// URLs (MySQLdb): winback runs on SQLite (sqlite:///file.db) and PostgreSQL (postgresql://)"),
        ({"WINBACK_DATABASE_URL": "winback.db"}, ["report"], "error: Could not parse SQLAlchemy URL from given URL "
         "string: check WINBACK_DATABASE_URL"),
        ({"WINBACK_SMS_RATE": "0"}, ["dispatch"], "error: WINBACK_SMS_RATE='0': must be above zero"),
        ({"WINBACK_PUBLIC_URL": "hooks.example.com"}, ["report"], "error: WINBACK_PUBLIC_URL: must start with "
         "http:// or https://"),
        ({"SENDGRID_API_KEY": "SG.x", "WINBACK_EMAIL_FROM": "a@shop.example"}, ["demo"], "error: SENDGRID_API_KEY is "
         "set but WINBACK_POSTAL_ADDRESS is not"),
    ],
    ids=["mysql", "not-a-url", "zero-rate", "url-without-scheme", "sendgrid-without-postal-address"],
)  # fmt: skip
def test_a_setting_that_cannot_be_used_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], env: dict[str, str],
    args: list[str], line: str,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code, out = run(monkeypatch, capsys, *args)
    assert code == 2 and out.startswith(line)
    assert "secret" not in out  # a URL's password is never repeated
    assert list(tmp_path.iterdir()) == []  # refused before anything was created


def test_an_unmigrated_database_asks_for_db_upgrade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    monkeypatch.setenv("WINBACK_DATABASE_URL", f"sqlite:///{path}")
    code, out = run(monkeypatch, capsys, "dispatch")
    assert code == 2
    from winback.warehouse.migrate import head

    assert out == f"error: winback's tables are at revision none, not {head()}: run `winback db upgrade`"


def test_missing_source_tables_are_named(
    migrated: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(monkeypatch, capsys, "campaign", "--dry-run")
    assert code == 2
    assert out.startswith("error: source table(s) not found: customers, orders, service_failures, consents:")


def test_exporting_an_unknown_run_is_an_error_not_an_empty_file(
    migrated: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "codes.csv"
    code, out = run(monkeypatch, capsys, "offers", "export", "--run-id", "999", "--out", str(out_file))
    assert (code, out) == (2, "error: campaign run 999 does not exist") and not out_file.exists()


def test_a_track_window_below_one_day_is_refused(
    migrated: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sqlalchemy import Connection

    from winback.warehouse.returns import track_run
    from winback.warehouse.source import SourceMapping, SourceTables

    with pytest.raises(ValueError, match="attribution window of 0 days: must be at least 1"):
        track_run(Connection.__new__(Connection), SourceTables(SourceMapping()), 1, 0)
    code, _ = run(monkeypatch, capsys, "track", "--window-days", "-5")
    assert code == 2  # refused by the option itself


def test_postgres_urls_as_hosting_providers_give_them_are_accepted() -> None:
    engine = make_engine("postgres://user@127.0.0.1:5432/shop")
    assert engine.dialect.name == "postgresql" and engine.url.drivername == "postgresql+psycopg"


def test_a_policy_file_is_read_beside_the_campaign_file_and_checked_at_once(tmp_path: Path) -> None:
    from winback.app.campaign_file import load_campaign
    from winback.config import CampaignConfig

    folder = tmp_path / "campaigns"
    folder.mkdir()
    policy = (Path(__file__).resolve().parents[1] / "src/winback/offers/default_policy.yaml").read_text()
    (folder / "policy.yaml").write_text(policy)
    (folder / "weekly.yaml").write_text("campaign_id: weekly\npolicy_file: policy.yaml\n")
    assert CampaignConfig.from_yaml(folder / "weekly.yaml").policy_file == str(folder / "policy.yaml")
    assert load_campaign(folder / "weekly.yaml").policy_file == str(folder / "policy.yaml")
    (folder / "policy.yaml").write_text("rules: 3\n")
    with pytest.raises(ValueError, match=r"weekly.yaml: policy_file: .*policy.yaml"):
        load_campaign(folder / "weekly.yaml")


def test_a_redemptions_file_saved_by_excel_with_a_bom_is_read(tmp_path: Path) -> None:
    from winback.offers.exchange import read_redemptions_csv

    path = tmp_path / "redemptions.csv"
    path.write_bytes("\ufeffcode,order_id,redeemed_at\nWB-AAAA-BBBB-CCCC,O-1,2026-11-03T10:00:00+00:00\n".encode())
    assert read_redemptions_csv(path)[0]["code"] == "WB-AAAA-BBBB-CCCC"


def test_the_demo_rebuilds_an_empty_or_demo_database_but_never_someones_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlite3
    from contextlib import closing

    from winback.app.demo import refuse_non_demo_database

    upgraded = tmp_path / "winback.db"
    upgrade(f"sqlite:///{upgraded}", engine=make_engine(f"sqlite:///{upgraded}"))
    refuse_non_demo_database(upgraded)  # `winback db upgrade` then `make demo`: nothing to lose, rebuilt
    precious = tmp_path / "shop.db"
    with closing(sqlite3.connect(precious)) as conn, conn:
        conn.execute("CREATE TABLE orders (order_id TEXT)")
        conn.execute("INSERT INTO orders VALUES ('O-1')")
    before = precious.read_bytes()
    code, out = run(monkeypatch, capsys, "demo", "--database", str(precious))
    assert code == 2 and out.startswith(f"error: {precious} holds data that is not an earlier demo's (orders)")
    assert precious.read_bytes() == before


def test_the_demo_rebuilds_its_own_state_but_not_one_that_ran_other_campaigns(tmp_path: Path) -> None:
    """An earlier demo's state holds the demo's campaign only: `make demo` twice rebuilds it; anyone else's is kept."""
    import sqlite3
    from contextlib import closing

    from winback.app.demo import DEMO_CAMPAIGN, refuse_non_demo_database
    from winback.errors import StateError

    state = tmp_path / "winback.db"
    upgrade(f"sqlite:///{state}", engine=make_engine(f"sqlite:///{state}"))
    add = "INSERT INTO wb_campaigns (id, kind, config, created_at) VALUES (?, 'winback', '{}', '2026-11-02')"
    with closing(sqlite3.connect(state)) as conn, conn:
        conn.execute(add, (DEMO_CAMPAIGN,))
    refuse_non_demo_database(state)
    with closing(sqlite3.connect(state)) as conn, conn:
        conn.execute(add, ("weekly-winback",))
    with pytest.raises(StateError, match=r"holds data that is not an earlier demo's \(wb_campaigns"):
        refuse_non_demo_database(state)


def test_demo_data_writes_to_a_separate_warehouse_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The one command that may write to the warehouse says so, and without --to-warehouse writes nothing."""
    from winback.app.demo_data import table_counts
    from winback.app.demo_data.writable import writable_warehouse

    warehouse = tmp_path / "shop.duckdb"
    monkeypatch.setenv("WINBACK_DATABASE_URL", f"sqlite:///{tmp_path / 'state.db'}")
    monkeypatch.setenv("WINBACK_WAREHOUSE_URL", f"duckdb:///{warehouse}")
    code, out = run(monkeypatch, capsys, "demo-data", "--customers", "300")
    assert code == 2 and "read only to winback: pass --to-warehouse" in out and not warehouse.exists()
    code, out = run(monkeypatch, capsys, "demo-data", "--customers", "300", "--to-warehouse")
    assert code == 0 and "(the one command that writes there)" in out
    with writable_warehouse(f"duckdb:///{warehouse}") as shop:
        assert table_counts(shop)["customers"] == 300
    assert not (tmp_path / "state.db").exists()  # winback's state was not touched


def test_the_demo_never_replaces_someones_duckdb_warehouse(tmp_path: Path) -> None:
    """Beside the demo's database, a DuckDB file holding other tables is refused; an earlier demo's is rebuilt."""
    import duckdb

    from winback.app.demo import demo_warehouse, refuse_non_demo_warehouse
    from winback.errors import StateError

    assert demo_warehouse(tmp_path / "demo.db") == tmp_path / "demo-warehouse.duckdb"
    theirs, ours = tmp_path / "theirs.duckdb", tmp_path / "ours.duckdb"
    with duckdb.connect(str(theirs)) as conn:
        conn.execute("CREATE TABLE sales (id INTEGER)")
    with duckdb.connect(str(ours)) as conn:
        conn.execute("CREATE TABLE demo_truth (customer_id TEXT)")
    with pytest.raises(StateError, match=r"not an earlier demo's \(sales\).*--database demo.db"):
        refuse_non_demo_warehouse(theirs)
    refuse_non_demo_warehouse(ours)
    refuse_non_demo_warehouse(tmp_path / "absent.duckdb")
