"""A newcomer's first hour, through the real `winback` console script in a fresh folder: no traceback, ever.

Each case of issue 12's "Why" list runs as a user would type it; any "Traceback" in what the command
prints fails the test. Few runs on purpose (the ones that start Prefect cost seconds each): the
settings and mistyped-path cases run in-process in test_cli_errors.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

WINBACK = str(Path(sys.executable).parent / "winback")


class Shell:
    """Runs `winback ...` in one folder, with a clean environment, as a user's shell would."""

    def __init__(self, folder: Path, **env: str) -> None:
        self.folder = folder
        self.prefect_home = folder / ".prefect"
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("WINBACK_", "SENDGRID_", "TWILIO_"))}
        clean = {k: v for k, v in clean.items() if not k.startswith("PREFECT_")}
        self.env = {
            **clean,
            "PREFECT_HOME": str(self.prefect_home),
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",  # a busy test machine
            "COLUMNS": "110",
            **env,
        }

    def __call__(self, command: str, **env: str) -> subprocess.CompletedProcess[str]:
        """`command` as typed (split on spaces); fails the test on any traceback."""
        proc = subprocess.run(
            [WINBACK, *command.split()[1:]],
            cwd=self.folder,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=600,
        )
        printed = proc.stdout + proc.stderr
        assert "Traceback" not in printed, f"{command}:\n{printed[-4000:]}"
        return proc


@pytest.fixture
def shell(tmp_path: Path) -> Shell:
    return Shell(tmp_path)


def test_report_with_nothing_to_report_says_so_at_once(shell: Shell) -> None:
    """Was: 16 s and two Prefect tracebacks before "no campaign runs for winback-default yet"."""
    created = shell("winback db upgrade")
    assert created.returncode == 0 and (shell.folder / "winback.db").exists()
    nothing = shell("winback report")
    assert nothing.returncode == 1
    assert nothing.stdout == "no runs yet: run `winback campaign` (or `make demo`)\n"
    assert not (shell.prefect_home / "prefect.db").exists(), "Prefect was started to find there was nothing"


def test_a_mistyped_database_is_named_and_never_created(shell: Shell) -> None:
    """Was: `winback db upgrade` after a typo created an empty database, and every command then failed on it."""
    typo = shell("winback explain C0000001", WINBACK_DATABASE_URL="sqlite:///winbak.db")
    assert (typo.returncode, typo.stdout.split(":")[0]) == (2, "error")
    assert "no SQLite database at winbak.db" in typo.stdout and not (shell.folder / "winbak.db").exists()
    folder = shell("winback db upgrade", WINBACK_DATABASE_URL="sqlite:///dta/winback.db")
    assert folder.returncode == 2 and "no folder dta" in folder.stdout and not (shell.folder / "dta").exists()


def test_bad_settings_are_one_line(shell: Shell) -> None:
    """Was: a 63-line traceback for mysql://; two tracebacks before the SendGrid line in `make demo`."""
    mysql = shell("winback report", WINBACK_DATABASE_URL="mysql://shop:pw@db.example/shop")
    assert mysql.returncode == 2 and len(mysql.stdout.splitlines()) == 1
    assert "no database driver for mysql://" in mysql.stdout and "pw" not in mysql.stdout
    sendgrid = shell("winback demo", SENDGRID_API_KEY="SG.x", WINBACK_EMAIL_FROM="offers@shop.example")
    assert sendgrid.returncode == 2
    assert sendgrid.stdout == "error: SENDGRID_API_KEY is set but WINBACK_POSTAL_ADDRESS is not\n"
    assert not (shell.folder / "winback.db").exists()


def test_the_first_hour_after_the_demo(shell: Shell) -> None:
    """`make demo`, then the commands the demo says to type next, verbatim, on its database."""
    demo = shell("winback demo --customers 1500")
    assert demo.returncode == 0, demo.stdout[-2000:]
    suggested = [line.removeprefix("next: ") for line in demo.stdout.splitlines() if line.startswith("next: ")]
    assert [s.split()[:2] for s in suggested] == [["winback", "report"], ["winback", "explain"], ["winback", "preview"]]
    customer = suggested[1].split()[2]

    report = shell(suggested[0])
    assert report.returncode == 0, report.stdout
    flat = " ".join(report.stdout.split())
    assert "Return within the attribution window" in flat
    assert re.search(r"incremental revenue -?€[\d,]+\.\d\d", flat), flat  # money with its currency, either sign
    assert "report: reports_out/report.html" in flat

    explain = shell(suggested[1])
    assert explain.returncode == 0, explain.stdout
    flat = " ".join(explain.stdout.split())
    assert flat.startswith(f"{customer} · campaign demo-winback · as of 2026-11-02 · contact")
    assert "expected gain €" in flat and " pp" in flat and "€-0.00" not in flat and "pts" not in flat

    preview = shell(suggested[2])
    assert preview.returncode == 0 and "what is sent" in preview.stdout and "Subject:" in preview.stdout

    made_up = shell("winback explain C9999999")
    assert (made_up.returncode, made_up.stdout) == (
        1,
        "'C9999999' is not a customer: no such id in the customers table\n",
    )

    ledger = shell("winback offers ledger")  # at 110 columns: every header in full
    for word in ("run", "issued", "money", "percent", "shipping", "service", "expected", "redeemed", "expired", "open"):
        assert f" {word} " in ledger.stdout, ledger.stdout
    assert "…" not in ledger.stdout

    dry = shell("winback campaign --dry-run --json --as-of 2026-12-01")
    assert dry.returncode == 0, dry.stdout[-2000:]
    preview_counts = json.loads(dry.stdout)["dry_run"]
    assert sum(preview_counts["by_segment_and_action"].values()) == sum(preview_counts["decisions"].values())

    unknown = shell("winback track --run-id 999")  # fails inside a flow run: Prefect's logs must not show it
    assert (unknown.returncode, unknown.stdout, unknown.stderr) == (2, "error: campaign run 999 does not exist\n", "")
