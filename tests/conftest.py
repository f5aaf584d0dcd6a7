"""Shared fixtures: a fresh database per test on SQLite and on a throwaway PostgreSQL server.

PostgreSQL comes from Debian's `postgresql` package (binaries under /usr/lib/postgresql/*/bin, not on
PATH). When they are missing the PostgreSQL half is skipped, loudly, except in CI, where it fails.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="winback-prefect-"))
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
# a temporary Prefect server waits 20 s to start by default: too short on a loaded 2-core machine
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
from winback.app.runtime import configure_prefect_environment

configure_prefect_environment()

from sqlalchemy import Connection, Engine, create_engine, insert, select, text  # noqa: E402
from standins.postgres import local_postgres, pg_bin  # noqa: E402

from winback.delivery.checks import send_time_source  # noqa: E402
from winback.delivery.senders import SendSetup  # noqa: E402
from winback.delivery.settle import UnknownPolicy  # noqa: E402
from winback.messages.unsubscribe import UnsubscribeLinks  # noqa: E402
from winback.warehouse.db import make_engine  # noqa: E402
from winback.warehouse.source import SourceMapping, SourceTables  # noqa: E402

if TYPE_CHECKING:
    import pandas as pd
    from cryptography.hazmat.primitives.asymmetric import ec

    from winback.channels.sink import SinkChannel
    from winback.settings import Settings

AS_OF = dt.datetime(2026, 11, 2, 10, 0, tzinfo=dt.UTC)
CDNOW = Path(__file__).parent / "fixtures" / "cdnow_sample.csv"
_PG_SKIPPED: list[str] = []


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL cluster for the whole session on a free 127.0.0.1 port; yields its admin URL."""
    bindir = pg_bin()
    if bindir is None:
        reason = "PostgreSQL server binaries not installed (apt-get install postgresql)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: CI must test PostgreSQL")
        _PG_SKIPPED.append(reason)
        pytest.skip(reason)
    with local_postgres(bindir) as url:
        yield url


def _new_pg_database(server: str) -> str:
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"{server}/{name}"


def select_only_reader(admin: Engine) -> str:
    """The URL of a role granted SELECT on the four source tables of `admin`'s database and nothing else."""
    from sqlalchemy.engine import make_url

    database = admin.url.database
    with admin.begin() as conn:
        conn.execute(
            text("DO $$ BEGIN CREATE ROLE winback_reader LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
        )
        conn.execute(text(f'GRANT CONNECT ON DATABASE "{database}" TO winback_reader'))
        conn.execute(text("GRANT USAGE ON SCHEMA public TO winback_reader"))
        conn.execute(text("GRANT SELECT ON customers, orders, service_failures, consents TO winback_reader"))
    return make_url(admin.url).set(username="winback_reader").render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database URL: a SQLite file, or a new database on the throwaway server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'winback.db'}"
    return _new_pg_database(request.getfixturevalue("postgres_server"))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on a fresh database with winback's tables migrated (Alembic, as `winback db upgrade`)."""
    from winback.warehouse.migrate import upgrade

    eng = make_engine(db_url)
    upgrade(db_url, engine=eng)
    yield eng
    eng.dispose()


@pytest.fixture
def demo_engine(engine: Engine) -> Engine:
    """`engine` holding a small seeded demo warehouse (2,000 customers) as of AS_OF."""
    from winback.app.demo_data import generate_demo_warehouse

    generate_demo_warehouse(engine, customers=2000, seed=3, as_of=AS_OF, replace=True)
    return engine


def insert_run(
    conn: Connection, campaign_id: str = "c", as_of: dt.datetime = AS_OF, *, status: str = "sent", journey_key: str = ""
) -> int:
    """A campaign run as the stages write one (its campaign too, on first use); returns the run id."""
    from winback.warehouse.models import Campaign, CampaignRun

    if conn.execute(select(Campaign.id).where(Campaign.id == campaign_id)).first() is None:
        conn.execute(insert(Campaign).values(id=campaign_id, kind="winback", config={}, created_at=as_of))
    run = {"campaign_id": campaign_id, "as_of": as_of, "journey_key": journey_key, "status": status}
    return conn.execute(
        insert(CampaignRun).values(**run, started_at=as_of, stats={}).returning(CampaignRun.id)
    ).scalar_one()


@pytest.fixture(scope="session")
def cdnow_transactions() -> pd.DataFrame:
    """The CDNOW sample's transactions (Fader, Hardie & Lee's data): customer_id, date, amount."""
    import pandas as pd

    return pd.read_csv(CDNOW)


@pytest.fixture(scope="session")
def cdnow(cdnow_transactions: pd.DataFrame) -> pd.DataFrame:
    """The CDNOW sample as the papers fit it: repeat purchases on distinct days, recency and T in weeks, over
    the 39-week calibration period, with each repeat buyer's mean order value."""
    from winback.segments.rfm import rfm_summary

    return rfm_summary(
        cdnow_transactions,
        "customer_id",
        "date",
        "amount",
        observation_period_end="1997-09-30",
        freq="D",
        time_unit="W",
    )


def assert_gradient_matches(
    log_likelihood: Callable[..., float], gradient: Callable[..., Any], params: tuple[float, ...], *data: Any
) -> None:
    """A model's analytic log-likelihood gradient agrees with finite differences at `params` on `data`.

    Forward differences of a sum of ~1e5-sized terms carry ~1e-3 of rounding noise; a wrong or missing term
    shows up as an error of the order of the terms (tens to thousands).
    """
    import numpy as np
    from scipy.optimize import check_grad

    theta = np.array(params)
    error = check_grad(lambda t: log_likelihood(t, *data), lambda t: gradient(t, *data), theta)
    assert error < 0.02 + 1e-6 * np.linalg.norm(gradient(theta, *data))


@pytest.fixture(scope="session")
def key() -> ec.EllipticCurvePrivateKey:
    """An ECDSA P-256 key, as SendGrid signs its Event Webhook with (`public_b64` gives its public half)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def public_b64(private: ec.EllipticCurvePrivateKey) -> str:
    """As SendGrid shows it under Mail Settings: base64 DER SubjectPublicKeyInfo, no PEM armour."""
    import base64

    from cryptography.hazmat.primitives import serialization

    der = private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def sendgrid_signature(private: ec.EllipticCurvePrivateKey, timestamp: str, payload: bytes) -> str:
    """Signed exactly as sendgrid.helpers.eventwebhook verifies: ECDSA/SHA-256 over (timestamp + payload)."""
    import base64

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    return base64.b64encode(private.sign(timestamp.encode() + payload, ec.ECDSA(hashes.SHA256()))).decode()


@pytest.fixture
def sink_path(tmp_path: Path) -> Path:
    """The test's sink journal: the file WINBACK_SINK_PATH names in the test's environment."""
    return tmp_path / "sink.jsonl"


def environment_sink() -> SinkChannel:
    """The sink the test's environment names (WINBACK_SINK_PATH): where the CLI and the flows it runs write too."""
    from winback.channels.sink import SinkChannel
    from winback.settings import Settings

    return SinkChannel(Settings().sink_path)


@pytest.fixture
def sink(sink_path: Path) -> SinkChannel:
    """The local sink channel, journaling to the test's `sink_path`."""
    from winback.channels.sink import SinkChannel

    return SinkChannel(sink_path)


@pytest.fixture
def settings(sink_path: Path) -> Settings:
    """The settings a test's edge reads: nothing from outside (see `_hermetic_environment`), the test's sink."""
    from winback.settings import Settings

    return Settings(sink_path=str(sink_path))


@pytest.fixture(autouse=True)
def _hermetic_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No provider keys or outside settings leak in: the sink journal lives in the test's folder.

    Each test also runs in its own folder: the default state file (`winback.db`) and the demo warehouse
    found beside it are relative to the working directory, and `make demo` leaves both in the checkout.
    """
    for key in list(os.environ):
        if key.startswith(("SENDGRID_", "TWILIO_", "WINBACK_")):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("WINBACK_SINK_PATH", str(tmp_path / "sink.jsonl"))
    monkeypatch.chdir(tmp_path)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # type: ignore[no-untyped-def]
    if _PG_SKIPPED:
        terminalreporter.write_sep("!", "PostgreSQL was SKIPPED: " + _PG_SKIPPED[0], red=True, bold=True)


LINKS = UnsubscribeLinks()  # what an unconfigured environment signs with (the tests' environment is hermetic)


def local_tables() -> SourceTables:
    """The source tables an unconfigured environment reads: the demo's names, in winback's own database."""
    return SourceTables(SourceMapping())


def local_source(engine: Engine) -> SourceTables | None:
    """The tables consent is re-checked in at send time on `engine`, as the edge hands them to `send_due`."""
    return send_time_source(engine, local_tables())


def send_setup(src: SourceTables | None = None) -> SendSetup:
    """What the edge hands a campaign's sending in an unconfigured environment: `src`, else `local_tables()`."""
    return SendSetup(src or local_tables(), LINKS, UnknownPolicy())


def imported_alongside(module: str, task: str, prefixes: tuple[str, ...]) -> tuple[str, list[str]]:
    """In a fresh interpreter, `module`: where its `task` is defined, and which modules under `prefixes` it loaded.

    What a worker or sender process pays at its start is the task module's imports (a Prefect task is
    unpickled by reference to its module), and its flow's module (the task run's context names the flow).
    """
    import subprocess
    import sys

    code = (
        f"import json, sys, {module} as m; print(json.dumps([m.{task}.fn.__module__, "
        f"sorted(n for n in sys.modules if n.startswith({prefixes!r}))]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    defined, loaded = json.loads(out)
    return defined, loaded
