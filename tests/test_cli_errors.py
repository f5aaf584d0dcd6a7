"""The console script on bad ground: one line naming the problem and what to do, exit code 2, no traceback."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from winback.app.cli import main
from winback.warehouse.db import make_engine
from winback.warehouse.migrate import upgrade


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
    policy = Path("src/winback/offers/default_policy.yaml").read_text()
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
