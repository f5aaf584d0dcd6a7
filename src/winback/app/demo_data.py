"""A seeded, realistic demo warehouse: customers, orders, service failures and consents, plus the truth.

Why a generative model rather than random rows: winback scores customers with BG/NBD and Gamma-Gamma and
measures lift against a holdout, so the demo must be *made* by the processes those models assume, with a
known truth (`demo_truth`) to check them against.

The generative process, per customer (all rates per calendar day, averaged over the year):

* sign-up time: spread over the history, growing towards `as_of`, shaped by the same seasonality as orders;
  the first order is placed a few minutes after sign-up;
* purchase rate λ ~ Gamma(shape `LAMBDA_SHAPE`, rate `LAMBDA_RATE`), capped at `LAMBDA_CAP`: many light and
  one-time buyers, a long tail of heavy buyers; repeat orders follow a Poisson process at rate λ in
  *seasonal time* (the clock is warped by a Nov–Dec peak incl. Black Friday, a weekly and a local-hour
  pattern, so the expected count over a whole year is still λ·365);
* dropout p ~ Beta(`DROPOUT_A`, `DROPOUT_B`): after every repeat order the customer leaves for good with
  probability p (BG/NBD); a service failure on an order adds its own chance of leaving after that order,
  larger for severe failures that were still unresolved at `as_of` — so the aggrieved segment is real;
* order values: Gamma-Gamma — a spend scale per customer (the customer's expected order value) and
  Gamma(`ORDER_SHAPE`) order values around it, in currency units with 2 decimals.

With the default 730 days the parameters give ≈10.3 orders per customer (1M customers → ≈10.3M orders),
≈35 % one-time buyers, ≈73 % of customers still alive at `as_of`, ≈7 % of customers with a service failure
(≈0.75 % of orders). The median customer's λ is ≈1/70 per day (one order every ~70 days); the mean λ is
≈1/16 because the heavy-buyer tail carries it — that tail is what makes ≈10 orders per customer possible
when sign-ups are spread over the history. Repeat buyers' own mean gap (last − first order over repeat
orders) averages ≈45 days.

Storage: on SQLite timestamps are TEXT "YYYY-MM-DD HH:MM:SS.ffffff" in naive UTC (exactly what SQLAlchemy's
SQLite DateTime writes and parses), amounts REAL, booleans 0/1, loaded with `executemany` on the raw DBAPI
connection. On PostgreSQL rows go through psycopg 3 `COPY ... FROM STDIN` (`write_row`), timestamps as
timestamptz literals with "+00". Both load one transaction per chunk and build the secondary indexes after
loading, then ANALYZE.

Determinism: customers are generated in fixed blocks of `BLOCK` with one RNG stream per (seed, block), so
the data depend on (customers, seed, as_of, history_days) only — not on `chunk_size` or the database.
"""

from __future__ import annotations

import datetime as dt
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    MetaData,
    String,
    Table,
    delete,
    func,
    inspect,
    select,
)
from sqlalchemy.schema import CreateIndex

from winback.errors import StateError
from winback.warehouse.models import (
    NAMING_CONVENTION,
    CampaignRun,
    Decision,
    DemoConsent,
    DemoCustomer,
    DemoOrder,
    DemoServiceFailure,
    Offer,
    SourceBase,
)

# ---------------------------------------------------------------- the truth table (demo only)

truth_metadata = MetaData(naming_convention=NAMING_CONVENTION)

demo_truth = Table(
    "demo_truth",
    truth_metadata,
    Column("customer_id", String(64), primary_key=True),
    Column("daily_rate", Float, nullable=False, comment="λ: expected orders per day while alive"),
    Column("alive_at_as_of", Boolean, nullable=False, comment="has not dropped out by as_of"),
    Column("spend_scale", Float, nullable=False, comment="expected order value, currency units"),
)

# ---------------------------------------------------------------- model parameters

BLOCK = 10_000  # customers per RNG stream: fixed so that the data do not depend on chunk_size
LAMBDA_SHAPE, LAMBDA_RATE, LAMBDA_CAP = 0.25, 3.0, 0.3
DROPOUT_A, DROPOUT_B = 0.6, 9.0
SIGNUP_GROWTH = 0.7  # log growth of the sign-up rate over the history (≈2x)
ORDER_SHAPE, SPEND_SHAPE, SPEND_RATE = 4.0, 3.5, 34.0  # mean spend scale = 4·34/2.5 ≈ 54
FAILURE_BASE = 0.0065  # per-order failure probability, ramping up towards as_of
MAX_CUSTOMERS = 9_999_999  # "C" + 7 digits

US_PER_DAY = 86_400_000_000
NULL_TS = np.iinfo(np.int64).min  # marks a NULL timestamp inside an int64 µs array

MONTH_FACTOR = np.array([0.85, 0.82, 0.92, 0.95, 0.97, 0.93, 0.90, 0.92, 0.98, 1.05, 1.45, 1.60])
WEEKDAY_FACTOR = np.array([1.04, 1.00, 0.98, 0.99, 0.93, 0.90, 1.16])  # Monday first
HOUR_FACTOR = np.array(
    [0.25, 0.15, 0.10, 0.08, 0.08, 0.12, 0.25, 0.50, 0.80, 1.00, 1.10, 1.20,
     1.35, 1.30, 1.15, 1.10, 1.10, 1.20, 1.40, 1.60, 1.70, 1.50, 1.00, 0.55]
)  # fmt: skip

CATEGORIES = ("late_delivery", "damaged_item", "wrong_item", "billing_error", "rude_staff", "outage")
CATEGORY_SHARE = np.array([0.38, 0.17, 0.12, 0.13, 0.08, 0.12])
SEVERITY_SHARE = np.array(
    [
        [0.30, 0.35, 0.20, 0.10, 0.05],  # late_delivery: mostly an annoyance
        [0.10, 0.25, 0.30, 0.22, 0.13],  # damaged_item
        [0.15, 0.30, 0.30, 0.17, 0.08],  # wrong_item
        [0.05, 0.12, 0.25, 0.30, 0.28],  # billing_error: money, skews high
        [0.20, 0.30, 0.25, 0.15, 0.10],  # rude_staff
        [0.05, 0.15, 0.25, 0.30, 0.25],  # outage: skews high
    ]
)
NEVER_RESOLVED = np.array([0.08, 0.10, 0.10, 0.15, 0.30, 0.12])
RESOLVE_MEDIAN_DAYS = np.array([1.5, 5.0, 4.0, 6.0, 3.0, 1.0])
CHURN_BOOST = np.array([0.05, 0.12, 0.25, 0.45, 0.60])  # extra dropout chance by severity, if unresolved
RESOLVED_CHURN_FACTOR = 0.35  # a resolved failure hurts about a third as much

DAMAGED = ("Item arrived damaged: cracked casing", "Box crushed in transit, item broken",
           "Item arrived with a torn seam", "Glass item arrived shattered")  # fmt: skip
WRONG = ("Received the wrong size", "Wrong colour sent", "Received someone else's order",
         "Item missing from the parcel")  # fmt: skip
BILLING = ("Charged twice for order {}", "Discount not applied to order {}",
           "Refund for order {} not received", "Charged full price for cancelled order {}")  # fmt: skip
RUDE = ("Support agent was dismissive on the phone", "Courier was rude at the door",
        "Chat agent closed the conversation without helping")  # fmt: skip
OUTAGE = ("Payment page down at checkout; charged but no confirmation",
          "App outage delayed the order confirmation for hours",
          "Order tracking unavailable for two days")  # fmt: skip


@dataclass(frozen=True)
class _Zone:
    """A time zone customers live in, with the locale, country and phone plan that go with it."""

    tz: str
    locale: str
    country_code: str  # E.164 calling code, digits only
    share: float
    phone_prefixes: tuple[int, ...]  # national prefixes (same number of digits each)
    subscriber_low: int
    subscriber_high: int
    subscriber_width: int


# Phone ranges, each checked with phonenumbers.is_valid_number (and that dropping the last digit makes the
# number invalid): GB mobiles 071-073; US area codes of each coast with exchanges 200-999; DE mobiles 015x
# with 8 digits (016x/017x also accept 7, so a dropped digit would stay valid); FR mobiles 06x except 063
# (0639 is not a mobile range) and 069 (overseas departments).
ZONES = (
    _Zone("Europe/London", "en_GB", "44", 0.40, (71, 72, 73), 0, 100_000_000, 8),
    _Zone("America/New_York", "en_US", "1", 0.18, (212, 646, 718, 917, 347, 617, 305, 404, 215, 202),
          2_000_000, 10_000_000, 7),
    _Zone("America/Los_Angeles", "en_US", "1", 0.12, (213, 310, 323, 415, 206, 503, 619, 702, 818, 408),
          2_000_000, 10_000_000, 7),
    _Zone("Europe/Berlin", "de_DE", "49", 0.15, (151, 152, 155, 156, 157, 159),
          0, 100_000_000, 8),
    _Zone("Europe/Paris", "fr_FR", "33", 0.15, (60, 61, 62, 64, 65, 66, 67, 68), 0, 10_000_000, 7),
)  # fmt: skip

FIRST_NAMES = {
    "en_GB": ("Oliver", "Amelia", "George", "Isla", "Harry", "Ava", "Jack", "Mia", "Charlie", "Sophie",
              "Thomas", "Emily", "Alfie", "Grace", "Oscar", "Freya", "James", "Poppy", "William", "Ruby"),
    "en_US": ("James", "Olivia", "Michael", "Emma", "William", "Sophia", "Ethan", "Ava", "Daniel", "Isabella",
              "Noah", "Mia", "Liam", "Abigail", "Mason", "Madison", "Lucas", "Harper", "Carter", "Chloe"),
    "de_DE": ("Lukas", "Mia", "Leon", "Emma", "Finn", "Hannah", "Jonas", "Lea", "Paul", "Lena", "Felix",
              "Anna", "Jürgen", "Sören", "Björn", "Jörg", "Käthe", "Maximilian", "Sophie", "Greta"),
    "fr_FR": ("Gabriel", "Léa", "Louis", "Chloé", "Raphaël", "Zoé", "Hugo", "Inès", "Jules", "Manon",
              "Arthur", "Camille", "Lucas", "Jade", "Théo", "Louise", "Noé", "Anaïs", "Adèle", "Mathis"),
}  # fmt: skip
LAST_NAMES = {
    "en_GB": ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel",
              "Wright", "Evans", "Walker", "Roberts", "Thompson", "Hughes", "O'Neill"),
    "en_US": ("Johnson", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez", "Anderson", "Lee", "Nguyen",
              "Clark", "Lewis", "Young", "Hill", "Scott", "Green", "Baker"),
    "de_DE": ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz",
              "Hoffmann", "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf"),
    "fr_FR": ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Lefèvre",
              "Moreau", "Laurent", "Simon", "Michel", "Garçon", "Fontaine", "Rousseau"),
}  # fmt: skip


# ---------------------------------------------------------------- public results


class DemoDataExistsError(StateError):
    """The demo's source tables already hold rows and `replace=True` was not given."""


@dataclass(frozen=True)
class DemoSummary:
    """What `generate_demo_warehouse` wrote, with the few truths a demo wants to print."""

    customers: int
    orders: int
    service_failures: int
    consents: int
    alive_at_as_of: int  # customers who had not dropped out by as_of (demo_truth)
    one_time_buyers: int  # customers with exactly one order
    customers_with_failure: int
    invalid_emails: int
    missing_emails: int
    invalid_phones: int
    missing_phones: int
    as_of: dt.datetime
    history_days: int
    seed: int
    dialect: str
    seconds: float

    @property
    def orders_per_customer(self) -> float:
        return self.orders / self.customers if self.customers else 0.0


@dataclass(frozen=True)
class ResponseSummary:
    """What `simulate_campaign_response` inserted, per arm, and the truth it used.

    `true_lift` is the nominal absolute lift added to each treated customer's return probability;
    `true_ate` is the exact average treatment effect over the decided customers after clipping at 1
    (mean of min(1, b + true_lift) − b over treatment and holdout alike), i.e. what the measured
    treatment-minus-holdout return rate estimates.
    """

    run_id: int
    as_of: dt.datetime
    window_days: int
    true_lift: float
    true_ate: float
    decided_treatment: int
    decided_holdout: int
    returned_treatment: int
    returned_holdout: int
    orders_inserted: int
    coupons_used: int
    replaced_orders: int  # "R<run>-" orders deleted first because of an earlier simulation of this run

    @property
    def measured_lift(self) -> float:
        """Treatment return rate minus holdout return rate (NaN when an arm is empty)."""
        if not self.decided_treatment or not self.decided_holdout:
            return float("nan")
        return self.returned_treatment / self.decided_treatment - self.returned_holdout / self.decided_holdout


# ---------------------------------------------------------------- the seasonal clock


@dataclass(frozen=True)
class _Clock:
    """Days since the history start, the seasonal warp per zone, and the sign-up distribution per zone.

    `warp[z]` is the cumulative order intensity Λ_z(t) on an hourly grid (normalised so Λ grows by one per
    day on average); a Poisson process with rate λ in Λ-time is a seasonal process with mean rate λ.
    """

    t0_us: int
    horizon: float
    grid: np.ndarray
    warp: tuple[np.ndarray, ...]
    signup_cdf: tuple[np.ndarray, ...]


def _black_friday_window(local: pd.DatetimeIndex) -> np.ndarray:
    """Friday after the fourth Thursday of November through Cyber Monday."""
    days = local.normalize().tz_localize(None)
    out = np.zeros(len(local), dtype=bool)
    for year in np.unique(local.year):
        nov1 = dt.date(int(year), 11, 1)
        first_thursday = 1 + (3 - nov1.weekday()) % 7
        start = pd.Timestamp(int(year), 11, first_thursday + 22)
        out |= np.asarray((days >= start) & (days <= start + pd.Timedelta(days=3)))
    return out


def _intensity(local: pd.DatetimeIndex) -> np.ndarray:
    """Relative order intensity at local times: months, Black Friday, Christmas, weekday and hour."""
    month = np.asarray(local.month) - 1
    day = np.asarray(local.day)
    s = MONTH_FACTOR[month] * WEEKDAY_FACTOR[np.asarray(local.day_of_week)] * HOUR_FACTOR[np.asarray(local.hour)]
    s = s * np.where(_black_friday_window(local), 2.0, 1.0)
    december = month == 11
    s = s * np.where(december & (day == 24), 0.7, 1.0) * np.where(december & (day == 25), 0.35, 1.0)
    return s / s.mean()


def _build_clock(as_of: dt.datetime, history_days: int) -> _Clock:
    """Hourly grid over the history with each zone's seasonal warp and sign-up CDF."""
    t0 = as_of - dt.timedelta(days=history_days)
    hours = history_days * 24
    grid = np.arange(hours + 1) / 24.0
    utc = pd.date_range(start=pd.Timestamp(t0), periods=hours + 1, freq="h")
    warps, cdfs = [], []
    growth = np.exp(SIGNUP_GROWTH * grid[:-2] / history_days)
    for zone in ZONES:
        s = _intensity(utc.tz_convert(zone.tz))
        warps.append(np.concatenate([[0.0], np.cumsum(s[:-1]) / 24.0]))
        w = s[:-2] * growth  # sign-ups end an hour before as_of
        cdfs.append(np.concatenate([[0.0], np.cumsum(w)]) / w.sum())
    t0_us = (t0 - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)
    return _Clock(int(t0_us), float(history_days), grid, tuple(warps), tuple(cdfs))


def _to_us(clock: _Clock, days: np.ndarray) -> np.ndarray:
    """Days since the history start → int64 µs since the epoch."""
    return clock.t0_us + np.rint(days * US_PER_DAY).astype(np.int64)


# ---------------------------------------------------------------- vectorised text helpers


def _codes(s: str) -> np.ndarray:
    return np.frombuffer(s.encode("utf-32-le"), dtype=np.uint32)


def _join_codes(parts: Sequence[np.ndarray], n: int) -> list[str]:
    """Concatenate per-row code-point blocks ((n, k) or (k,) arrays) into n Python strings."""
    blocks = [np.broadcast_to(p, (n, p.shape[-1])) for p in parts]
    codes = np.ascontiguousarray(np.concatenate(blocks, axis=1), dtype=np.uint32)
    return codes.view(f"<U{codes.shape[1]}").ravel().tolist()


def _digit_codes(numbers: np.ndarray, width: int) -> np.ndarray:
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return ((numbers.astype(np.int64)[:, None] // powers) % 10 + 48).astype(np.uint32)


def _ids(prefix: str, numbers: np.ndarray, width: int) -> list[str]:
    """Zero-padded ids like "C0000042", built without a Python loop (10M order ids matter)."""
    return _join_codes([_codes(prefix), _digit_codes(numbers, width)], len(numbers))


def _timestamps(us: np.ndarray, suffix: str = "") -> list[str | None]:
    """µs since the epoch → "YYYY-MM-DD HH:MM:SS.ffffff" + suffix; NULL_TS → None."""
    null = us == NULL_TS
    text_ = np.datetime_as_string(np.where(null, 0, us).astype("datetime64[us]"), unit="us")
    codes = text_.astype("<U26").view(np.uint32).reshape(len(us), 26).copy()
    codes[:, 10] = ord(" ")
    out: list[str | None] = _join_codes([codes, _codes(suffix)], len(us)) if suffix else _join_codes([codes], len(us))
    for i in np.flatnonzero(null).tolist():
        out[i] = None
    return out


@cache
def _ascii(name: str) -> str:
    """Fold a name into an email-safe lowercase ASCII word ("Jürgen" → "juergen", "O'Neill" → "oneill")."""
    folded = name.lower().replace("ä", "ae").replace("ö", "oe").replace("ü", "ue").replace("ß", "ss")
    folded = unicodedata.normalize("NFKD", folded).encode("ascii", "ignore").decode()
    return "".join(c for c in folded if c.isalnum())


# ---------------------------------------------------------------- one block of customers


@dataclass
class _Block:
    """Raw columns per table (numpy arrays, or lists of str/None); timestamps are int64 µs with NULL_TS."""

    tables: dict[str, dict[str, Any]]
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Events:
    """Every candidate order of a block, customer-major and time-ordered within each customer."""

    owner: np.ndarray  # customer index within the block
    pos: np.ndarray  # 0 = first order at sign-up
    t: np.ndarray  # days since history start
    starts: np.ndarray  # index of each customer's first event


def _pick_zones(rng: np.random.Generator, n: int) -> np.ndarray:
    shares = np.array([z.share for z in ZONES])
    return rng.choice(len(ZONES), size=n, p=shares / shares.sum())


def _signups(rng: np.random.Generator, zone: np.ndarray, clock: _Clock) -> np.ndarray:
    """Sign-up days drawn from each zone's growing, seasonal sign-up distribution."""
    u = rng.random(len(zone))
    out = np.empty(len(zone))
    for z in range(len(ZONES)):
        m = zone == z
        out[m] = np.interp(u[m], clock.signup_cdf[z], clock.grid[:-1])
    return out


def _candidate_events(
    rng: np.random.Generator, zone: np.ndarray, first: np.ndarray, lam: np.ndarray, clock: _Clock
) -> _Events:
    """The first order plus every repeat order the customer would place if they never dropped out."""
    n = len(zone)
    op_first = np.empty(n)
    op_end = np.empty(n)
    for z in range(len(ZONES)):
        m = zone == z
        op_first[m] = np.interp(first[m], clock.grid, clock.warp[z])
        op_end[m] = clock.warp[z][-1]
    span = np.maximum(op_end - op_first, 0.0)
    repeats = rng.poisson(lam * span)
    owner_r = np.repeat(np.arange(n), repeats)
    keys = 2.0 * owner_r + rng.random(len(owner_r))  # gap of 2 keeps customers apart after rounding
    keys.sort()
    op = op_first[owner_r] + (keys - 2.0 * owner_r) * span[owner_r]
    t_r = np.empty(len(op))
    for z in range(len(ZONES)):
        m = zone[owner_r] == z
        t_r[m] = np.interp(op[m], clock.warp[z], clock.grid)
    counts = repeats + 1
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    owner = np.repeat(np.arange(n), counts)
    pos = np.arange(len(owner)) - starts[owner]
    t = np.empty(len(owner))
    t[starts] = first
    t[pos > 0] = np.maximum(t_r, first[owner_r] + 1e-6)
    return _Events(owner, pos, t, starts)


@dataclass(frozen=True)
class _Failures:
    """One candidate failure per failed event (indices into the block's events)."""

    event: np.ndarray
    category: np.ndarray
    severity: np.ndarray  # 1..5
    occurred: np.ndarray  # days
    resolved: np.ndarray  # days, NaN = not resolved by as_of
    late_days: np.ndarray  # for late_delivery descriptions
    variant: np.ndarray  # which description template


def _failures(rng: np.random.Generator, ev: _Events, clock: _Clock) -> _Failures:
    """Service failures on candidate orders, more likely on recent orders; only those before as_of."""
    rel = ev.t / clock.horizon
    failed = np.flatnonzero(rng.random(len(ev.t)) < FAILURE_BASE * (0.5 + 1.5 * rel**2))
    k = len(failed)
    cat = rng.choice(len(CATEGORIES), size=k, p=CATEGORY_SHARE)
    cum = SEVERITY_SHARE.cumsum(axis=1)[cat]
    sev = 1 + (rng.random(k)[:, None] > cum).sum(axis=1).clip(max=4)
    late_low = np.array([1, 2, 4, 7, 12])[sev - 1]
    late_high = np.array([2, 4, 7, 12, 21])[sev - 1]
    late = rng.integers(late_low, late_high + 1)
    offsets = np.select(
        [cat == 0, cat <= 2, cat == 3, cat == 4],
        [rng.integers(2, 6, k) + late, rng.uniform(2, 6, k), rng.uniform(0.1, 3, k), rng.uniform(1, 10, k)],
        rng.uniform(0.01, 0.5, k),
    ) + rng.uniform(0, 0.5, k)
    occurred = ev.t[failed] + offsets
    delay = RESOLVE_MEDIAN_DAYS[cat] * (0.7 + 0.15 * sev) * rng.lognormal(0.0, 0.9, k)
    resolved = occurred + delay
    open_ = (rng.random(k) < NEVER_RESOLVED[cat]) | (resolved > clock.horizon)
    resolved[open_] = np.nan
    variant = rng.integers(0, 4, k)
    keep = occurred < clock.horizon
    return _Failures(failed[keep], cat[keep], sev[keep], occurred[keep], resolved[keep], late[keep], variant[keep])


def _survivors(
    rng: np.random.Generator, ev: _Events, dropout: np.ndarray, fail: _Failures
) -> tuple[np.ndarray, np.ndarray]:
    """Which candidate orders happen, and who is still alive at as_of.

    After every repeat order the customer leaves with probability p; a failure on an order adds its own
    chance of leaving after that order. Everything after the leaving order never happens.
    """
    q = np.where(ev.pos > 0, dropout[ev.owner], 0.0)
    boost = CHURN_BOOST[fail.severity - 1] * np.where(np.isnan(fail.resolved), 1.0, RESOLVED_CHURN_FACTOR)
    q[fail.event] = 1.0 - (1.0 - q[fail.event]) * (1.0 - boost)
    leaves = rng.random(len(q)) < q
    never = np.iinfo(np.int64).max
    first_leave = np.minimum.reduceat(np.where(leaves, ev.pos, never), ev.starts)
    return ev.pos <= first_leave[ev.owner], first_leave == never


def _descriptions(fail: _Failures, order_ids: Sequence[str]) -> list[str]:
    """Short human descriptions, the way an agent would log them."""
    out = []
    for cat, variant, late, oid in zip(
        fail.category.tolist(), fail.variant.tolist(), fail.late_days.tolist(), order_ids, strict=True
    ):
        if cat == 0:
            out.append(f"Parcel arrived {late} day{'s' if late != 1 else ''} late")
        elif cat == 1:
            out.append(DAMAGED[variant])
        elif cat == 2:
            out.append(WRONG[variant])
        elif cat == 3:
            out.append(BILLING[variant].format(oid))
        elif cat == 4:
            out.append(RUDE[variant % len(RUDE)])
        else:
            out.append(OUTAGE[variant % len(OUTAGE)])
    return out


def _names(rng: np.random.Generator, zone: np.ndarray) -> tuple[list[str], list[str]]:
    """First names and email-safe "first.last" handles from each locale's small lists."""
    first_names: list[str] = []
    handles: list[str] = []
    u1, u2 = rng.random(len(zone)), rng.random(len(zone))
    for z, a, b in zip(zone.tolist(), u1.tolist(), u2.tolist(), strict=True):
        locale = ZONES[z].locale
        first = FIRST_NAMES[locale][int(a * len(FIRST_NAMES[locale]))]
        last = LAST_NAMES[locale][int(b * len(LAST_NAMES[locale]))]
        first_names.append(first)
        handles.append(f"{_ascii(first)}.{_ascii(last)}")
    return first_names, handles


def _emails(rng: np.random.Generator, handles: list[str], numbers: np.ndarray) -> tuple[list[str | None], int, int]:
    """first.last.<n>@example.com; ≈3 % missing and ≈1 % broken (no '@', a space, or no TLD)."""
    u = rng.random(len(handles))
    kind = rng.integers(0, 3, len(handles))
    out: list[str | None] = []
    for h, n, x, k in zip(handles, numbers.tolist(), u.tolist(), kind.tolist(), strict=True):
        local = f"{h}.{n}"
        if x < 0.03:
            out.append(None)
        elif x < 0.04:
            out.append((f"{local}example.com", f"{local.replace('.', ' ', 1)}@example.com", f"{local}@example")[k])
        else:
            out.append(f"{local}@example.com")
    invalid = int(((u >= 0.03) & (u < 0.04)).sum())
    return out, invalid, int((u < 0.03).sum())


def _phones(
    rng: np.random.Generator, zone: np.ndarray, numbers: np.ndarray, salt: int
) -> tuple[list[str | None], int, int]:
    """Unique E.164 mobiles from valid ranges (a bijection of the customer number).

    ≈30 % missing, ≈1 % invalid.

    Invalid ones lose their last digit (a typo phonenumbers rejects in every range used here; dropping
    three digits is not enough: "+1310200…" truncations can still parse as valid).
    """
    u = rng.random(len(zone))
    out: list[str | None] = [None] * len(zone)
    for z, plan in enumerate(ZONES):
        idx = np.flatnonzero(zone == z)
        if not len(idx):
            continue
        width = plan.subscriber_width
        room = plan.subscriber_high - plan.subscriber_low
        space = len(plan.phone_prefixes) * room
        v = (numbers[idx].astype(np.int64) * 7_919 + salt % space) % space  # 7919 is prime, coprime to every space
        prefix = np.array(plan.phone_prefixes, dtype=np.int64)[v // room]
        national = prefix * 10**width + plan.subscriber_low + v % room
        digits = len(str(plan.phone_prefixes[0])) + width
        broken = u[idx] < 0.01
        national = np.where(broken, national // 10, national)
        valid_text = _join_codes([_codes("+" + plan.country_code), _digit_codes(national, digits)], len(idx))
        short_text = _join_codes([_codes("+" + plan.country_code), _digit_codes(national, digits - 1)], len(idx))
        for j, i in enumerate(idx.tolist()):
            if u[i] >= 0.70:
                continue
            out[i] = short_text[j] if broken[j] else valid_text[j]
    invalid = int((u < 0.01).sum())
    return out, invalid, int((u >= 0.70).sum())


def _preferred_channels(rng: np.random.Generator, has_email: np.ndarray, has_phone: np.ndarray) -> list[str | None]:
    """email / sms / None, only for channels the customer gave an address for."""
    u = rng.random(len(has_email))
    choice = np.full(len(u), None, dtype=object)
    both = has_email & has_phone
    choice[both & (u < 0.55)] = "email"
    choice[both & (u >= 0.55) & (u < 0.80)] = "sms"
    choice[has_email & ~has_phone & (u < 0.70)] = "email"
    choice[~has_email & has_phone & (u < 0.60)] = "sms"
    return choice.tolist()


def _consents(
    rng: np.random.Generator,
    ids: list[str],
    signup: np.ndarray,
    has_email: np.ndarray,
    has_phone: np.ndarray,
    clock: _Clock,
) -> dict[str, Any]:
    """Two rows per customer (email, sms): granted, where it was recorded, and when."""
    n = len(ids)
    import_day = min(45.0, clock.horizon / 4)
    import_year = (dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=clock.t0_us + import_day * US_PER_DAY)).year
    granted = np.empty(2 * n, dtype=bool)
    granted[0::2] = has_email & (rng.random(n) < 0.87)
    granted[1::2] = has_phone & (rng.random(n) < 0.45)
    sign = np.repeat(signup, 2)
    in_settings = rng.random(2 * n) < 0.28
    later = sign + rng.random(2 * n) * (clock.horizon - sign)
    imported = sign < import_day
    when = np.where(imported, import_day, np.where(in_settings, later, sign + rng.uniform(0.0005, 0.02, 2 * n)))
    source = np.where(imported, f"import_{import_year}", np.where(in_settings, "account_settings", "checkout"))
    return {
        "customer_id": [c for c in ids for _ in (0, 1)],
        "channel": ["email", "sms"] * n,
        "granted": granted,
        "source": source.tolist(),
        "recorded_at": _to_us(clock, np.minimum(when, clock.horizon)),
    }


@dataclass(frozen=True)
class _Latent:
    """Each customer's hidden state: where they live, when they joined, how they buy."""

    zone: np.ndarray
    signup: np.ndarray  # days since history start
    first: np.ndarray  # first order, minutes after sign-up
    rate: np.ndarray  # λ per day
    dropout: np.ndarray  # p per repeat order
    spend: np.ndarray  # expected order value


def _draw_latent(rng: np.random.Generator, n: int, clock: _Clock) -> _Latent:
    zone = _pick_zones(rng, n)
    signup = _signups(rng, zone, clock)
    first = signup + rng.uniform(1, 30, n) / 1440.0
    rate = np.minimum(rng.gamma(LAMBDA_SHAPE, 1.0 / LAMBDA_RATE, n), LAMBDA_CAP)
    dropout = rng.beta(DROPOUT_A, DROPOUT_B, n)
    spend = ORDER_SHAPE / rng.gamma(SPEND_SHAPE, 1.0 / SPEND_RATE, n)  # Gamma-Gamma: E[value] = p / ν
    return _Latent(zone, signup, first, rate, dropout, spend)


def _customer_rows(
    rng: np.random.Generator, lat: _Latent, numbers: np.ndarray, ids: list[str], seed: int, clock: _Clock
) -> tuple[dict[str, Any], dict[str, Any], dict[str, int]]:
    """The customers and consents tables of a block, and the contact-data counts."""
    first_names, handles = _names(rng, lat.zone)
    emails, bad_email, no_email = _emails(rng, handles, numbers)
    phones, bad_phone, no_phone = _phones(rng, lat.zone, numbers, salt=seed * 1_000_003)
    has_email = np.array([e is not None for e in emails])
    has_phone = np.array([p is not None for p in phones])
    n = len(ids)
    customers = {
        "customer_id": ids,
        "first_name": first_names,
        "email": emails,
        "phone": phones,
        "locale": [ZONES[z].locale for z in lat.zone.tolist()],
        "time_zone": [ZONES[z].tz for z in lat.zone.tolist()],
        "preferred_channel": _preferred_channels(rng, has_email, has_phone),
        "do_not_contact": rng.random(n) < 0.01,
        "fraud_flag": rng.random(n) < 0.005,
        "signed_up_at": _to_us(clock, lat.signup),
    }
    consents = _consents(rng, ids, lat.signup, has_email, has_phone, clock)
    counts = {"invalid_emails": bad_email, "missing_emails": no_email, "invalid_phones": bad_phone,
              "missing_phones": no_phone}  # fmt: skip
    return customers, consents, counts


def _failure_rows(
    fail: _Failures, owner: np.ndarray, order_numbers: np.ndarray, ids: list[str], first: int, clock: _Clock
) -> dict[str, Any]:
    """The service_failures table of a block; `owner` and `order_numbers` are indexed by event."""
    order_ids = _ids("O", order_numbers[fail.event], 9)
    unresolved = np.isnan(fail.resolved)
    return {
        "failure_id": _ids("F", first + np.arange(len(fail.event)), 8),
        "customer_id": [ids[i] for i in owner[fail.event].tolist()],
        "order_id": order_ids,
        "category": [CATEGORIES[c] for c in fail.category.tolist()],
        "severity": fail.severity,
        "occurred_at": _to_us(clock, fail.occurred),
        "resolved_at": np.where(unresolved, NULL_TS, _to_us(clock, np.nan_to_num(fail.resolved))),
        "description": _descriptions(fail, order_ids),
    }


def _generate_block(
    seed: int, block_no: int, first_number: int, n: int, clock: _Clock, next_ids: dict[str, int]
) -> _Block:
    """All rows for customers first_number .. first_number+n-1, from one RNG stream.

    `next_ids` carries the running order and failure numbers across blocks (updated in place).
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, block_no]))
    numbers = np.arange(first_number, first_number + n, dtype=np.int64)
    ids = _ids("C", numbers, 7)
    lat = _draw_latent(rng, n, clock)
    ev = _candidate_events(rng, lat.zone, lat.first, lat.rate, clock)
    fail = _failures(rng, ev, clock)
    happens, alive = _survivors(rng, ev, lat.dropout, fail)
    fail = _Failures(*(getattr(fail, f)[happens[fail.event]] for f in _Failures.__dataclass_fields__))

    kept = np.flatnonzero(happens)
    owner = ev.owner[kept]
    order_numbers = np.full(len(ev.t), -1, dtype=np.int64)
    order_numbers[kept] = next_ids["order"] + np.arange(len(kept))
    value = rng.gamma(ORDER_SHAPE, 1.0, len(kept)) * lat.spend[owner] / ORDER_SHAPE
    orders = {
        "order_id": _ids("O", order_numbers[kept], 9),
        "customer_id": [ids[i] for i in owner.tolist()],
        "ordered_at": _to_us(clock, ev.t[kept]),
        "amount": np.maximum(np.round(value, 2), 1.0),
        "coupon_code": [None] * len(kept),
    }
    failures = _failure_rows(fail, ev.owner, order_numbers, ids, next_ids["failure"], clock)
    customers, consents, counts = _customer_rows(rng, lat, numbers, ids, seed, clock)
    truth = {"customer_id": ids, "daily_rate": lat.rate, "alive_at_as_of": alive,
             "spend_scale": np.round(lat.spend, 4)}  # fmt: skip
    next_ids["order"] += len(kept)
    next_ids["failure"] += len(fail.event)
    counts |= {
        "customers": n,
        "orders": len(kept),
        "service_failures": len(fail.event),
        "consents": 2 * n,
        "alive_at_as_of": int(alive.sum()),
        "one_time_buyers": int((np.bincount(owner, minlength=n) == 1).sum()),
        "customers_with_failure": len(np.unique(ev.owner[fail.event])),
    }
    tables = {"customers": customers, "orders": orders, "service_failures": failures, "consents": consents,
              "demo_truth": truth}  # fmt: skip
    return _Block(tables, counts)


# ---------------------------------------------------------------- loading


TABLES: dict[str, Table] = {
    "customers": DemoCustomer.__table__,  # type: ignore[dict-item]
    "orders": DemoOrder.__table__,  # type: ignore[dict-item]
    "service_failures": DemoServiceFailure.__table__,  # type: ignore[dict-item]
    "consents": DemoConsent.__table__,  # type: ignore[dict-item]
    "demo_truth": demo_truth,
}


class _Sink:
    """Writes a block's raw columns in the backend's bulk format; one transaction per chunk."""

    ts_suffix = ""
    native_bool = False

    def __init__(self, dbapi_connection: Any) -> None:
        self.conn = dbapi_connection

    def encode(self, table: Table, raw: dict[str, Any]) -> list[Sequence[Any]]:
        """Columns in insert order, as Python values the driver takes without adaptation."""
        out: list[Sequence[Any]] = []
        for name, values in raw.items():
            kind = table.c[name].type
            if isinstance(kind, DateTime):
                out.append(_timestamps(values, self.ts_suffix))
            elif isinstance(kind, Boolean):
                out.append(values.tolist() if self.native_bool else values.astype(np.int8).tolist())
            elif isinstance(values, np.ndarray):
                out.append(values.tolist())
            else:
                out.append(values)
        return out

    def write(self, table: Table, raw: dict[str, Any]) -> None:
        raise NotImplementedError

    def commit(self) -> None:
        self.conn.commit()


class _SqliteSink(_Sink):
    def write(self, table: Table, raw: dict[str, Any]) -> None:
        cols = self.encode(table, raw)
        sql = f"INSERT INTO {table.name} ({', '.join(raw)}) VALUES ({', '.join('?' * len(raw))})"
        self.conn.executemany(sql, zip(*cols, strict=True))


class _PostgresSink(_Sink):
    ts_suffix = "+00"
    native_bool = True

    def write(self, table: Table, raw: dict[str, Any]) -> None:
        cols = self.encode(table, raw)
        with self.conn.cursor() as cur, cur.copy(f"COPY {table.name} ({', '.join(raw)}) FROM STDIN") as copy:
            for row in zip(*cols, strict=True):
                copy.write_row(row)


def _existing_rows(engine: Engine) -> list[str]:
    """Names of demo tables that exist and hold at least one row."""
    present = set(inspect(engine).get_table_names())
    busy = []
    with engine.connect() as conn:
        for name, table in TABLES.items():
            if name in present and conn.execute(select(1).select_from(table).limit(1)).first():
                busy.append(name)
    return busy


def _prepare_schema(engine: Engine, replace: bool) -> list[Any]:
    """Fresh, empty demo tables without their secondary indexes (returned, to build after loading)."""
    busy = _existing_rows(engine)
    if busy and not replace:
        raise DemoDataExistsError(
            f"demo tables already hold rows ({', '.join(busy)}); pass replace=True to drop and regenerate them"
        )
    with engine.begin() as conn:
        truth_metadata.drop_all(conn)
        SourceBase.metadata.drop_all(conn)
        SourceBase.metadata.create_all(conn)
        truth_metadata.create_all(conn)
        indexes = [ix for t in TABLES.values() for ix in t.indexes]
        for ix in indexes:
            ix.drop(conn)
    return indexes


def _finish(engine: Engine, raw: Any, indexes: list[Any]) -> None:
    """Build the secondary indexes on the loaded tables, then refresh planner statistics."""
    names = ", ".join(TABLES)
    cur = raw.cursor()
    for ix in indexes:
        cur.execute(str(CreateIndex(ix).compile(dialect=engine.dialect)))
    if engine.dialect.name == "sqlite":
        cur.execute("PRAGMA analysis_limit=1000")
        cur.execute("ANALYZE")
    else:
        raw.commit()
        cur.execute(f"ANALYZE {names}")
    raw.commit()
    cur.close()


SINKS: dict[str, type[_Sink]] = {"sqlite": _SqliteSink, "postgresql": _PostgresSink}


BULK_PRAGMAS = {"synchronous": "OFF", "cache_size": -262144}  # no fsync per chunk; 256 MiB for index sorts


def _sqlite_pragmas(raw: Any, values: dict[str, Any]) -> dict[str, Any]:
    """Set connection PRAGMAs and return their previous values, so a pooled connection can be restored."""
    cur = raw.cursor()
    before = {name: cur.execute(f"PRAGMA {name}").fetchone()[0] for name in values}
    for name, value in values.items():
        cur.execute(f"PRAGMA {name}={value}")
    cur.close()
    return before


def generate_demo_warehouse(
    engine: Engine,
    *,
    customers: int,
    seed: int = 7,
    as_of: dt.datetime,
    history_days: int = 730,
    chunk_size: int = 100_000,
    replace: bool = False,
) -> DemoSummary:
    """Create and fill the demo source tables plus `demo_truth`; see the module docstring for the model.

    Raises DemoDataExistsError when the demo tables already hold rows and `replace` is False; with
    `replace=True` they (and only they) are dropped and recreated. Memory is bounded by `chunk_size`
    customers' rows (~10 orders each); data do not depend on `chunk_size`.
    """
    if as_of.tzinfo is None or as_of.utcoffset() is None:
        raise ValueError("as_of must be timezone-aware (UTC)")
    if not 1 <= customers <= MAX_CUSTOMERS:
        raise ValueError(f"customers must be between 1 and {MAX_CUSTOMERS}")
    if history_days < 30:
        raise ValueError("history_days must be at least 30")
    if chunk_size < 1:
        raise ValueError("chunk_size must be positive")
    if engine.dialect.name not in SINKS:
        raise NotImplementedError(f"demo bulk loading supports {', '.join(SINKS)}, not {engine.dialect.name}")
    started = time.perf_counter()
    as_of = as_of.astimezone(dt.UTC)
    clock = _build_clock(as_of, history_days)
    indexes = _prepare_schema(engine, replace)
    counts: dict[str, int] = {}
    raw = engine.raw_connection()
    sqlite = engine.dialect.name == "sqlite"
    restore = _sqlite_pragmas(raw.driver_connection, BULK_PRAGMAS) if sqlite else {}
    try:
        _load_blocks(SINKS[engine.dialect.name](raw.driver_connection), seed, customers, chunk_size, clock, counts)
        _finish(engine, raw.driver_connection, indexes)
    except BaseException:
        raw.rollback()
        raise
    finally:
        if sqlite:
            _sqlite_pragmas(raw.driver_connection, restore)
        raw.close()
    return DemoSummary(
        **counts, as_of=as_of, history_days=history_days, seed=seed, dialect=engine.dialect.name,
        seconds=round(time.perf_counter() - started, 3),
    )  # fmt: skip


def _load_blocks(
    sink: _Sink, seed: int, customers: int, chunk_size: int, clock: _Clock, counts: dict[str, int]
) -> None:
    """Generate BLOCK customers at a time, write them, commit every `chunk_size` customers."""
    next_ids = {"order": 1, "failure": 1}
    since_commit = 0
    for block_no, start in enumerate(range(0, customers, BLOCK)):
        block = _generate_block(seed, block_no, start + 1, min(BLOCK, customers - start), clock, next_ids)
        for name, raw in block.tables.items():
            sink.write(TABLES[name], raw)
        for key, value in block.counts.items():
            counts[key] = counts.get(key, 0) + value
        since_commit += block.counts["customers"]
        if since_commit >= chunk_size:
            sink.commit()
            since_commit = 0
    sink.commit()


# ---------------------------------------------------------------- the demo's "future"


def _utc(value: dt.datetime) -> dt.datetime:
    """SQLite hands back naive UTC, PostgreSQL aware; make both aware UTC."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _decided(conn: Connection, run_id: int) -> pd.DataFrame:
    """Treatment and holdout customers of the run with their latent state; refuses non-demo customers."""
    d = Decision.__table__
    rows = conn.execute(
        select(d.c.customer_id, d.c.arm, demo_truth.c.daily_rate, demo_truth.c.alive_at_as_of,
               demo_truth.c.spend_scale)
        .select_from(d.outerjoin(demo_truth, demo_truth.c.customer_id == d.c.customer_id))
        .where(d.c.run_id == run_id, d.c.arm.in_(("treatment", "holdout")))
        .order_by(d.c.customer_id)
    ).all()  # fmt: skip
    frame = pd.DataFrame(rows, columns=["customer_id", "arm", "daily_rate", "alive", "spend_scale"])
    missing = frame["daily_rate"].isna()
    if missing.any():
        raise ValueError(
            f"run {run_id}: {int(missing.sum())} decided customers have no demo_truth row "
            f"(e.g. {frame.loc[missing, 'customer_id'].iloc[0]}); is this a demo warehouse?"
        )
    return frame


def _return_orders(
    rng: np.random.Generator,
    frame: pd.DataFrame,
    codes: dict[str, str],
    as_of: dt.datetime,
    window_days: int,
    redemption_share: float,
    run_id: int,
) -> list[dict[str, Any]]:
    """One or two orders per returner inside (as_of, as_of + window]; treated ones may use their coupon.

    Treated returners come back sooner (the message prompts them), holdout returners uniformly; a second
    order follows at the customer's own rate.
    """
    rows: list[dict[str, Any]] = []
    window_s = window_days * 86_400
    for rec in frame.itertuples(index=False):
        treated = rec.arm == "treatment"
        first = 60 + int((rng.beta(1.0, 2.0) if treated else rng.random()) * (window_s - 60))
        seconds = [first]
        if rng.random() < 1.0 - np.exp(-rec.daily_rate * (window_s - first) / 86_400):
            seconds.append(first + 1 + int(rng.random() * (window_s - first - 1)))
        use_coupon = treated and rec.customer_id in codes and rng.random() < redemption_share
        for k, offset in enumerate(seconds):
            amount = max(float(rng.gamma(ORDER_SHAPE, rec.spend_scale / ORDER_SHAPE)), 1.0)
            rows.append({
                "order_id": f"R{run_id}-{len(rows) + 1:07d}",
                "customer_id": rec.customer_id,
                "ordered_at": as_of + dt.timedelta(seconds=offset),
                "amount": Decimal(f"{amount:.2f}"),
                "coupon_code": codes[rec.customer_id] if use_coupon and k == 0 else None,
            })  # fmt: skip
    return rows


def simulate_campaign_response(
    engine: Engine,
    run_id: int,
    *,
    window_days: int = 30,
    true_lift: float = 0.05,
    redemption_share: float = 0.6,
    seed: int = 11,
) -> ResponseSummary:
    """Write the orders the decided customers place in the `window_days` after the run's as_of.

    Baseline return probability b = alive × (1 − exp(−λ·window_days)) from demo_truth (a customer who
    dropped out never returns); a treated customer returns with min(1, b + true_lift). Assignment to
    treatment/holdout was random, so treatment-minus-holdout return rate estimates the true average
    treatment effect on the return probability over the decided customers, `ResponseSummary.true_ate`
    (= true_lift unless clipping at 1 bites). Idempotent: orders "R<run_id>-…" from an earlier call are
    deleted first and the same seed regenerates the same orders. Offers are not marked redeemed — only
    the business's orders carry the coupon code, as in a real warehouse.
    """
    if not 0.0 <= true_lift <= 1.0:
        raise ValueError("true_lift must be an absolute probability lift in [0, 1]")
    runs, offers, orders = CampaignRun.__table__, Offer.__table__, DemoOrder.__table__
    with engine.begin() as conn:
        as_of_raw = conn.execute(select(runs.c.as_of).where(runs.c.id == run_id)).scalar_one_or_none()
        if as_of_raw is None:
            raise ValueError(f"no campaign run {run_id}")
        as_of = _utc(as_of_raw)
        frame = _decided(conn, run_id)
        codes = dict(conn.execute(select(offers.c.customer_id, offers.c.code).where(offers.c.run_id == run_id)).all())
        replaced = conn.execute(delete(orders).where(orders.c.order_id.like(f"R{run_id}-%"))).rowcount
        rng = np.random.default_rng(np.random.SeedSequence([seed, run_id]))
        base = frame["alive"].astype(float).to_numpy() * (1.0 - np.exp(-frame["daily_rate"].to_numpy() * window_days))
        treated = (frame["arm"] == "treatment").to_numpy()
        prob = np.where(treated, np.minimum(base + true_lift, 1.0), base)
        returned = rng.random(len(frame)) < prob
        rows = _return_orders(rng, frame[returned], codes, as_of, window_days, redemption_share, run_id)
        if rows:
            conn.execute(orders.insert(), rows)
    effect = np.minimum(base + true_lift, 1.0) - base
    return ResponseSummary(
        run_id=run_id, as_of=as_of, window_days=window_days, true_lift=true_lift,
        true_ate=float(effect.mean()) if len(effect) else 0.0,
        decided_treatment=int(treated.sum()), decided_holdout=int((~treated).sum()),
        returned_treatment=int((returned & treated).sum()), returned_holdout=int((returned & ~treated).sum()),
        orders_inserted=len(rows), coupons_used=sum(r["coupon_code"] is not None for r in rows),
        replaced_orders=max(replaced or 0, 0),
    )  # fmt: skip


def table_counts(engine: Engine) -> dict[str, int]:
    """Row counts of the demo tables, for reports and tests."""
    with engine.connect() as conn:
        return {name: int(conn.execute(select(func.count()).select_from(t)).scalar_one()) for name, t in TABLES.items()}


__all__ = [
    "DemoDataExistsError",
    "DemoSummary",
    "ResponseSummary",
    "demo_truth",
    "generate_demo_warehouse",
    "simulate_campaign_response",
    "table_counts",
]
