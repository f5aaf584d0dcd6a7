"""A warehouse of the rows real exports hold, written here, each with what the data-quality gate must make of it.

Two flavours of the same business, in SQLite, PostgreSQL or a DuckDB warehouse apart: `typed` (numbers,
times, booleans stored as such: what a warehouse with a schema can still hold: NaN, 2099, −5, an id twice)
and `text` (a CSV export loaded as text: "12,50",
"31/12/2025", "high", "maybe"). Beside the bad rows, `GOOD` healthy aggrieved customers who must all still be
messaged. Every bad row has an expectation: named in the quarantine (table, record id, field), or the
customer skipped with a reason, or both.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import stage_runs
from conftest import AS_OF
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from winback.config import CampaignConfig, DataQuality
from winback.segments.scoring import score_customers
from winback.stages import campaign as stages
from winback.stages import reads
from winback.warehouse.quality import Findings, shown
from winback.warehouse.source import SourceMapping, SourceTables

SRC = SourceTables(SourceMapping())
GOOD = 200
DAY = dt.timedelta(days=1)


def config(**quality: float) -> CampaignConfig:
    """Rules-based scoring, no holdout, money enough: every healthy aggrieved customer is messaged."""
    return CampaignConfig(
        campaign_id="corpus",
        use_models=False,
        holdout_share=0.0,
        budget=1_000_000.0,
        data_quality=DataQuality(**quality),
    )


@dataclass
class Corpus:
    flavour: str
    customers: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    consents: list[dict[str, Any]] = field(default_factory=list)
    quarantined: list[tuple[str, str, str | None, str]] = field(default_factory=list)  # case, table, record, field
    skipped: dict[str, str] = field(default_factory=dict)  # customer -> words their decision's reason holds
    messaged: set[str] = field(default_factory=set)  # customers who must still get a message
    reasons: dict[str, str] = field(default_factory=dict)  # messaged customer -> words their reason holds
    undecided: set[str] = field(default_factory=set)  # never candidates: no decision at all, skipped or not

    @property
    def typed(self) -> bool:
        return self.flavour == "typed"

    def customer(self, cid: str, **over: Any) -> str:
        row = {"customer_id": cid, "first_name": f"Ann {cid}", "email": f"{cid.strip().lower()}@example.com",
               "phone": None, "locale": "en_GB", "time_zone": "Europe/London", "preferred_channel": None,
               "do_not_contact": False, "fraud_flag": False}  # fmt: skip
        self.customers.append({**row, **over})
        for channel in ("email", "sms"):
            self.consents.append({"customer_id": cid, "channel": channel, "granted": True, "source": "signup",
                                  "recorded_at": AS_OF - 900 * DAY})  # fmt: skip
        return cid

    def history(self, cid: str, orders: int = 4) -> str:
        """Good orders every 60 days up to 45 days ago and a recent, unresolved, severe failure: aggrieved."""
        last = None
        for k in range(orders):
            last = self.order(f"O-{cid.strip()}-{k}", cid, AS_OF - (45 + 60 * k) * DAY, 40.0 + k)
        self.failure(f"F-{cid.strip()}", cid, last)
        return cid

    def order(self, oid: str, cid: str, at: Any, amount: Any) -> str:
        self.orders.append({"order_id": oid, "customer_id": cid, "ordered_at": at, "amount": amount,
                            "coupon_code": None})  # fmt: skip
        return oid

    def failure(self, fid: str, cid: str, order_id: str | None, **over: Any) -> str:
        row = {"failure_id": fid, "customer_id": cid, "order_id": order_id, "category": "late_delivery",
               "severity": 3, "occurred_at": AS_OF - 5 * DAY, "resolved_at": None,
               "description": "the parcel came a week late"}  # fmt: skip
        self.failures.append({**row, **over})
        return fid

    def expect(self, case: str, table: str, record: Any, field_name: str) -> None:
        self.quarantined.append((case, table, shown(record), field_name))


def build(flavour: str) -> Corpus:
    c = Corpus(flavour)
    for i in range(GOOD):
        cid = c.customer(f"G{i:03d}", phone=f"+44791112{i:04d}", preferred_channel="sms" if i % 4 == 0 else None)
        c.history(cid)
        c.messaged.add(cid)
        c.failure(f"F-G{i:03d}-b", cid, None, category="damaged_item", severity=2, occurred_at=AS_OF - 20 * DAY)
    _orders(c)
    _failures(c)
    _customers(c)
    return c


def _orders(c: Corpus) -> None:
    """Bad order rows beside good ones: each victim keeps their good rows, so is still messaged."""
    amounts: list[tuple[str, Any]] = [("negative amount", -5.0), ("zero amount", 0.0), ("implausible amount", 1e12),
                                      ("infinite amount", math.inf)]  # fmt: skip
    amounts += [("NaN amount", math.nan)] if c.typed else [("NaN amount", "NaN")]
    if not c.typed:
        amounts += [("decimal comma", "12,50"), ("a word", "twelve"), ("empty amount", ""), ("thousands", "1.234,5")]
    dates: list[tuple[str, Any]] = [("dated 2099", dt.datetime(2099, 1, 1, tzinfo=dt.UTC)),
                                    ("after the as-of", AS_OF + 2 * DAY),
                                    ("placeholder date", dt.datetime(1, 1, 1, tzinfo=dt.UTC))]  # fmt: skip
    if not c.typed:
        dates += [("day/month/year", "31/12/2025"), ("month 13", "2025-13-45"), ("slashes", "2025/12/31"),
                  ("a word", "yesterday")]  # fmt: skip
    for n, (case, value) in enumerate(amounts):
        cid = c.history(c.customer(f"VA{n:02d}"))
        c.expect(case, "orders", c.order(f"BAD-A{n}", cid, AS_OF - 70 * DAY, value), "amount")
        c.messaged.add(cid)
    for n, (case, value) in enumerate(dates):
        cid = c.history(c.customer(f"VD{n:02d}"))
        c.expect(case, "orders", c.order(f"BAD-D{n}", cid, value, 25.0), "ordered_at")
        c.messaged.add(cid)
    cid = c.history(c.customer("VK01"))  # one order id on two rows: neither is believed
    c.order("TWICE", cid, AS_OF - 80 * DAY, 10.0)
    c.order("TWICE", cid, AS_OF - 81 * DAY, 11.0)
    c.expect("repeated order id", "orders", "TWICE", "order_id")
    c.messaged.add(cid)
    c.expect("order of nobody", "orders", c.order("BAD-U1", "NOBODY", AS_OF - 30 * DAY, 20.0), "customer_id")
    c.expect("padded customer id", "orders", c.order("BAD-U2", " G001 ", AS_OF - 30 * DAY, 20.0), "customer_id")
    # a padded order id is found where it is used (the aggregation reads the covering index, not the ids): the
    # failure naming the order by its clean id finds no such order
    cid = c.history(c.customer("VK02"))
    c.order(" BAD-P1 ", cid, AS_OF - 90 * DAY, 20.0)
    c.expect("padded order id, named", "service_failures", c.failure("BAD-P1F", cid, "BAD-P1"), "order_id")
    c.messaged.add(cid)
    # every row of theirs bad, no failure: skipped, saying so
    cid = c.customer("VX01")
    c.expect("only order bad", "orders", c.order("BAD-X1", cid, AS_OF - 100 * DAY, -1.0), "amount")
    c.skipped[cid] = "every row of theirs read was quarantined"


def _failures(c: Corpus) -> None:
    """Bad failure rows of customers with good orders (and a good failure): the bad one is never the reason."""
    severities: list[tuple[str, Any]] = [("severity 0", 0), ("severity 6", 6), ("severity -1", -1),
                                         ("no severity", None)]  # fmt: skip
    if not c.typed:
        severities += [("severity high", "high"), ("severity 2.5", "2.5"), ("severity empty", "")]
    for n, (case, value) in enumerate(severities):
        cid = c.history(c.customer(f"VS{n:02d}"))
        c.expect(case, "service_failures", c.failure(f"BAD-S{n}", cid, None, severity=value), "severity")
        c.messaged.add(cid)
    cid = c.history(c.customer("VF01"))
    c.expect("unknown category", "service_failures", c.failure("BAD-C1", cid, None, category="lost_parcel"), "category")
    c.expect("failure of nobody", "service_failures", c.failure("BAD-F1", "GHOST", None), "customer_id")
    c.expect("unknown order", "service_failures", c.failure("BAD-F2", cid, "O-NOPE"), "order_id")
    c.expect("someone else's order", "service_failures", c.failure("BAD-F3", cid, "O-G002-0"), "order_id")
    far = dt.datetime(2099, 6, 1, tzinfo=dt.UTC)
    c.expect("occurred 2099", "service_failures", c.failure("BAD-F4", cid, None, occurred_at=far), "occurred_at")
    c.expect("resolved before it occurred", "service_failures",
             c.failure("BAD-F5", cid, None, resolved_at=AS_OF - 30 * DAY), "resolved_at")  # fmt: skip
    c.expect("padded failure id", "service_failures", c.failure(" BAD-F6 ", cid, None), "failure_id")
    c.failure("BAD-F7", cid, None)
    c.failure("BAD-F7", cid, None, severity=4)
    c.expect("repeated failure id", "service_failures", "BAD-F7", "failure_id")
    if not c.typed:
        c.expect("occurred 31/12/2025", "service_failures", c.failure("BAD-F8", cid, None, occurred_at="31/12/2025"),
                 "occurred_at")  # fmt: skip
    c.messaged.add(cid)
    # every row of theirs bad: their only failure, and no order
    cid = c.customer("VX02")
    c.expect("only failure bad", "service_failures", c.failure("BAD-X2", cid, None, severity=9), "severity")
    c.skipped[cid] = "every row of theirs read was quarantined"


def _customers(c: Corpus) -> None:
    """Bad customer records (skipped, or only named) and bad contact data (set aside, the customer messaged)."""
    for _ in range(2):
        c.history(c.customer("VC01"))
    c.expect("repeated customer id", "customers", "VC01", "customer_id")
    c.skipped["VC01"] = "customer record is quarantined"
    c.expect("padded customer id", "customers", c.history(c.customer(" VC02 ")), "customer_id")
    c.expect("id too long", "customers", c.history(c.customer("V" * 70)), "customer_id")
    if not c.typed:
        c.expect("do-not-contact maybe", "customers", c.history(c.customer("VC03", do_not_contact="maybe")),
                 "do_not_contact")  # fmt: skip
        c.skipped["VC03"] = "customer record is quarantined"
        cid = c.history(c.customer("VC04"))
        c.consents[-2]["granted"] = "perhaps"  # the email consent
        c.expect("consent perhaps", "consents", "VC04/email", "granted")
        c.messaged.add(cid)  # by SMS? no phone: excluded for want of a channel, with the reason
        c.messaged.discard(cid)
        c.skipped[cid] = "excluded"
    if not c.typed:
        cid = c.customer("VQ01")  # no orders, no failure: a bad consent alone makes no decision
        c.consents[-1]["granted"] = "si"
        c.expect("consent si", "consents", f"{cid}/sms", "granted")
        c.undecided.add(cid)
    cid = c.history(c.customer("VC05"))
    c.consents.append(dict(c.consents[-2]))  # a second email consent row: a history table
    c.expect("consent twice", "consents", "VC05/email", "granted")
    c.skipped[cid] = "excluded"  # no email consent left and no phone
    cases = [
        ("VP01", {"phone": "12345", "preferred_channel": "sms"}, "phone", None),
        ("VP02", {"phone": "+1-800-FLOWERS", "preferred_channel": "sms"}, "phone", None),
        ("VP03", {"phone": "+442079460958", "preferred_channel": "sms"}, "phone", None),
        ("VZ01", {"time_zone": "Mars/Olympus"}, "time_zone", "unknown time zone"),
        ("VZ02", {"locale": "xx_YY"}, "locale", "unknown locale"),
        ("VN01", {"first_name": "N" * 10_000}, "first_name", None),
        ("VN02", {"first_name": "Eve\r\nBcc: victim@example.org"}, "first_name", None),
        ("VH01", {"preferred_channel": "fax"}, "preferred_channel", None),
    ]
    for cid, over, field_name, reason in cases:
        c.history(c.customer(cid, **over))
        c.expect(f"{field_name} {over[field_name]!r}"[:40], "customers", cid, field_name)
        c.messaged.add(cid)
        if reason:
            c.reasons[cid] = reason
    cid = c.history(c.customer("VP04", phone="+1-800-FLOWERS", preferred_channel="sms", email=None))
    c.expect("vanity number, no email", "customers", cid, "phone")
    c.skipped[cid] = "no usable phone number"


# ---------------------------------------------------------------- the corpus in a warehouse

_TYPES = {
    "typed": {"sqlite": ("REAL", "TEXT", "INTEGER", "INTEGER"),
              "postgresql": ("DOUBLE PRECISION", "TIMESTAMPTZ", "INTEGER", "BOOLEAN"),
              "duckdb": ("DOUBLE", "TIMESTAMPTZ", "INTEGER", "BOOLEAN")},
    "text": {"sqlite": ("TEXT", "TEXT", "TEXT", "TEXT"), "postgresql": ("TEXT", "TEXT", "TEXT", "TEXT"),
             "duckdb": ("TEXT", "TEXT", "TEXT", "TEXT")},
}  # fmt: skip


def load(engine: Engine, corpus: Corpus) -> None:
    """The corpus as the business's tables: no keys declared, so every duplicate is the gate's to find."""
    number, time, whole, flag = _TYPES[corpus.flavour][engine.dialect.name]
    ddl = [
        f"""CREATE TABLE customers (customer_id TEXT, first_name TEXT, email TEXT, phone TEXT, locale TEXT,
            time_zone TEXT, preferred_channel TEXT, do_not_contact {flag}, fraud_flag {flag})""",
        f"CREATE TABLE orders (order_id TEXT, customer_id TEXT, ordered_at {time}, amount {number}, coupon_code TEXT)",
        f"""CREATE TABLE service_failures (failure_id TEXT, customer_id TEXT, order_id TEXT, category TEXT,
            severity {whole}, occurred_at {time}, resolved_at {time}, description TEXT)""",
        f"""CREATE TABLE consents (customer_id TEXT, channel TEXT, granted {flag}, source TEXT,
            recorded_at {time})""",
    ]
    with engine.begin() as conn:
        for statement in ddl:
            conn.execute(text(statement))
        for table, rows in (("customers", corpus.customers), ("orders", corpus.orders),
                            ("service_failures", corpus.failures), ("consents", corpus.consents)):  # fmt: skip
            names = list(rows[0])
            insert = text(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join(':' + n for n in names)})")
            conn.execute(insert, [{n: _stored(r[n], corpus, engine.dialect.name) for n in names} for r in rows])


def _stored(value: Any, corpus: Corpus, dialect: str) -> Any:
    """A value as this flavour's column holds it: text as an export writes it, else as the driver binds it."""
    if isinstance(value, dt.datetime):
        if dialect == "sqlite" or not corpus.typed:
            return f"{value.year:04d}-{value:%m-%d %H:%M:%S}"
        return value
    if not corpus.typed:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float):
            return {math.inf: "Infinity"}.get(value, repr(value))
        return value if value is None else str(value)
    if dialect == "sqlite" and isinstance(value, bool):
        return int(value)
    return value


def run(engine: Engine, cfg: CampaignConfig, now: dt.datetime = AS_OF, src: SourceTables = SRC) -> stages.RunHandle:
    """The campaign flow's stages, gate included, without Prefect (as flows.campaign orders them).

    `engine` holds winback's state; `src` says where the corpus is read (default: the same database).
    """
    rules = stages.check_source(engine, src, AS_OF, now, cfg)
    batches = reads.plan_batches(engine, src, cfg.batch_size)
    summary = pd.concat([reads.order_batch(engine, src, AS_OF, b, rules) for b in batches], ignore_index=True)
    contexts = [reads.context_batch(engine, src, AS_OF, b, cfg.aggrieved.lookback_days, rules) for b in batches]
    findings = Findings()
    for ctx in contexts:
        findings.extend(ctx[2])
    failures = pd.concat([ctx[0] for ctx in contexts], ignore_index=True)
    reach = pd.concat([ctx[1] for ctx in contexts], ignore_index=True)
    rfm, gated = reads.gate(engine, src, rules, summary, failures, reach, findings)
    with Session(engine) as session, session.begin():
        run = stages.start_run(session, cfg, AS_OF)
    scored, model = score_customers(rfm, cfg.economics, cfg.use_models)
    frames = (scored, gated.failures, gated.reach)
    stage_runs.decide_and_send(engine, run, frames, cfg, model.as_dict(), gated, now=now, src=src)
    return run
