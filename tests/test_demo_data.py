"""The demo warehouse: grains, realistic shapes, determinism, storage formats, and the simulated future.

Everything runs on SQLite files under tmp_path. The `demo_engine_factory` fixture is the one seam for other
backends: override it (e.g. in a PostgreSQL conftest) to run the backend-neutral tests elsewhere.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import phonenumbers
import pytest
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import Engine, insert, select, text
from sqlalchemy.orm import Session

from winback.app.demo_data import (
    DemoDataExistsError,
    DemoSummary,
    demo_truth,
    generate_demo_warehouse,
    simulate_campaign_response,
    table_counts,
)
from winback.warehouse.db import make_engine
from winback.warehouse.models import Base, Campaign, CampaignRun, Decision, Offer
from winback.warehouse.source_models import DemoOrder, DemoServiceFailure

AS_OF = dt.datetime(2025, 6, 30, tzinfo=dt.UTC)
HISTORY_START = AS_OF - dt.timedelta(days=730)
SMALL = 2_000
LARGE = 20_000
EngineFactory = Callable[[str], Engine]
PRIMARY_KEYS = {
    "customers": "customer_id",
    "orders": "order_id",
    "service_failures": "failure_id",
    "consents": "customer_id, channel",
    "demo_truth": "customer_id",
}
ZONE_OF_LOCALE = {
    "en_GB": {"Europe/London"},
    "en_US": {"America/New_York", "America/Los_Angeles"},
    "de_DE": {"Europe/Berlin"},
    "fr_FR": {"Europe/Paris"},
}
REGION_OF_LOCALE = {"en_GB": "GB", "en_US": "US", "de_DE": "DE", "fr_FR": "FR"}


@pytest.fixture(scope="module")
def demo_engine_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineFactory]:
    """Fresh, empty databases by name; every engine is disposed at the end of the module."""
    root = tmp_path_factory.mktemp("demo")
    engines: list[Engine] = []

    def make(name: str) -> Engine:
        engine = make_engine(f"sqlite:///{Path(root, name + '.db')}")
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.dispose()


@pytest.fixture(scope="module")
def small(demo_engine_factory: EngineFactory) -> tuple[Engine, DemoSummary]:
    engine = demo_engine_factory("small")
    return engine, generate_demo_warehouse(engine, customers=SMALL, seed=7, as_of=AS_OF)


@pytest.fixture(scope="module")
def large(demo_engine_factory: EngineFactory) -> tuple[Engine, DemoSummary]:
    engine = demo_engine_factory("large")
    return engine, generate_demo_warehouse(engine, customers=LARGE, seed=3, as_of=AS_OF)


def frame(engine: Engine, sql: str) -> pd.DataFrame:
    with engine.connect() as conn:
        result = conn.execute(text(sql))
        return pd.DataFrame(result.all(), columns=list(result.keys()))


def checksum(engine: Engine) -> str:
    """One digest over every demo table's rows in primary-key order."""
    digest = hashlib.sha256()
    with engine.connect() as conn:
        for table, key in PRIMARY_KEYS.items():
            for row in conn.execute(text(f"SELECT * FROM {table} ORDER BY {key}")):
                digest.update(repr(tuple(row)).encode())
    return digest.hexdigest()


def utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


# ---------------------------------------------------------------- counts and grains


def test_counts_match_the_summary(small: tuple[Engine, DemoSummary]) -> None:
    engine, summary = small
    assert table_counts(engine) == {
        "customers": SMALL,
        "orders": summary.orders,
        "service_failures": summary.service_failures,
        "consents": 2 * SMALL,
        "demo_truth": SMALL,
    }
    assert summary.alive_at_as_of == frame(engine, "SELECT SUM(alive_at_as_of) n FROM demo_truth").n[0]


def test_customer_ids_are_unique_zero_padded_and_sort(small: tuple[Engine, DemoSummary]) -> None:
    ids = frame(small[0], "SELECT customer_id FROM customers").customer_id
    assert ids.is_unique
    assert ids.str.fullmatch(r"C\d{7}").all()
    assert sorted(ids) == [f"C{n:07d}" for n in range(1, SMALL + 1)]


def test_every_order_and_failure_belongs_to_an_existing_customer(small: tuple[Engine, DemoSummary]) -> None:
    engine = small[0]
    orphans = frame(
        engine,
        "SELECT COUNT(*) n FROM orders o LEFT JOIN customers c ON c.customer_id = o.customer_id "
        "WHERE c.customer_id IS NULL",
    )
    assert orphans.n[0] == 0
    mismatched = frame(
        engine,
        "SELECT COUNT(*) n FROM service_failures f LEFT JOIN orders o ON o.order_id = f.order_id "
        "WHERE o.order_id IS NULL OR o.customer_id <> f.customer_id",
    )
    assert mismatched.n[0] == 0
    every_customer_ordered = frame(engine, "SELECT COUNT(DISTINCT customer_id) n FROM orders")
    assert every_customer_ordered.n[0] == SMALL


def test_consents_are_one_row_per_customer_and_channel(small: tuple[Engine, DemoSummary]) -> None:
    engine = small[0]
    c = frame(engine, "SELECT customer_id, channel, granted, source FROM consents")
    assert not c.duplicated(["customer_id", "channel"]).any()
    assert c.groupby("customer_id").channel.apply(frozenset).eq(frozenset({"email", "sms"})).all()
    joined = c.merge(frame(engine, "SELECT customer_id, email, phone FROM customers"), on="customer_id")
    email, sms = joined[joined.channel == "email"], joined[joined.channel == "sms"]
    assert not email.loc[email.email.isna(), "granted"].any(), "no email consent without an address"
    assert not sms.loc[sms.phone.isna(), "granted"].any(), "no sms consent without a number"
    assert 0.78 <= email.granted.mean() <= 0.90
    assert 0.38 <= sms.loc[sms.phone.notna(), "granted"].mean() <= 0.52
    assert set(c.source) <= {"checkout", "account_settings", "import_2023"}


def test_timestamps_stay_inside_the_history(small: tuple[Engine, DemoSummary]) -> None:
    engine = small[0]
    start, end = HISTORY_START.replace(tzinfo=None), AS_OF.replace(tzinfo=None)
    o = frame(
        engine,
        "SELECT o.ordered_at, c.signed_up_at FROM orders o JOIN customers c USING (customer_id)",
    )
    ordered, signed = pd.to_datetime(o.ordered_at), pd.to_datetime(o.signed_up_at)
    assert ordered.between(start, end).all()
    assert (ordered >= signed).all()
    f = frame(
        engine,
        "SELECT f.occurred_at, f.resolved_at, o.ordered_at FROM service_failures f JOIN orders o USING (order_id)",
    )
    occurred, resolved = pd.to_datetime(f.occurred_at), pd.to_datetime(f.resolved_at)
    assert (occurred > pd.to_datetime(f.ordered_at)).all()
    assert (occurred <= end).all() and (resolved.dropna() <= end).all()
    assert (resolved.dropna() >= occurred[resolved.notna()]).all()
    assert 0.05 <= resolved.isna().mean() <= 0.35, "most failures resolved, some never"


# ---------------------------------------------------------------- realistic shapes


def test_purchase_counts_look_like_a_customer_base(small: tuple[Engine, DemoSummary]) -> None:
    engine, summary = small
    per_customer = frame(engine, "SELECT customer_id, COUNT(*) n FROM orders GROUP BY customer_id").n
    assert 7.5 <= per_customer.mean() <= 13.5
    assert summary.orders_per_customer == pytest.approx(per_customer.mean())
    assert 0.25 <= (per_customer == 1).mean() <= 0.45, "many one-time buyers"
    assert summary.one_time_buyers == int((per_customer == 1).sum())
    assert per_customer.quantile(0.99) >= 40, "and some heavy buyers"
    assert 0.55 <= summary.alive_at_as_of / SMALL <= 0.85, "some customers truly churned"


def test_orders_peak_in_november_and_december(small: tuple[Engine, DemoSummary]) -> None:
    month = pd.to_datetime(frame(small[0], "SELECT ordered_at FROM orders").ordered_at).dt.month
    days = pd.date_range(HISTORY_START.date(), AS_OF.date(), freq="D", inclusive="left")
    exposure = days.month.isin([11, 12]).mean()
    share = month.isin([11, 12]).mean()
    assert share > exposure * 1.2, f"Nov–Dec share {share:.3f} vs uniform {exposure:.3f}"


def test_order_values_are_heterogeneous_money(small: tuple[Engine, DemoSummary]) -> None:
    engine = small[0]
    o = frame(engine, "SELECT customer_id, amount FROM orders")
    assert (o.amount >= 1.0).all()
    assert np.allclose(o.amount, o.amount.round(2))
    assert 35 <= o.amount.mean() <= 80
    per_customer = o.groupby("customer_id").amount.mean()
    assert per_customer.quantile(0.9) > 2 * per_customer.quantile(0.1), "spend differs by customer"


def test_failures_have_realistic_categories_severities_and_words(large: tuple[Engine, DemoSummary]) -> None:
    engine, summary = large
    f = frame(engine, "SELECT * FROM service_failures")
    assert 0.04 <= summary.customers_with_failure / LARGE <= 0.09
    assert f.severity.between(1, 5).all()
    share = f.category.value_counts(normalize=True)
    assert share.idxmax() == "late_delivery"
    assert set(share.index) == {
        "late_delivery", "damaged_item", "wrong_item", "billing_error", "rude_staff", "outage",
    }  # fmt: skip
    severity = f.groupby("category").severity.mean()
    assert severity["billing_error"] > severity["late_delivery"] + 0.8
    assert severity["outage"] > severity["late_delivery"] + 0.8
    late = f[f.category == "late_delivery"].description
    assert late.str.fullmatch(r"Parcel arrived \d+ days? late").all()
    billing = f[f.category == "billing_error"]
    named = billing.description.str.contains("order O")
    assert named.any()
    assert all(oid in d for oid, d in zip(billing.order_id[named], billing.description[named], strict=True))
    recent = pd.to_datetime(f.occurred_at) >= pd.Timestamp(AS_OF.replace(tzinfo=None)) - pd.Timedelta(days=182)
    assert recent.mean() > 0.35, "failures are more frequent on recent orders"


def test_unresolved_severe_failures_raise_churn(large: tuple[Engine, DemoSummary]) -> None:
    engine = large[0]
    truth = frame(engine, "SELECT customer_id, alive_at_as_of FROM demo_truth").set_index("customer_id")
    f = frame(engine, "SELECT customer_id, severity, resolved_at FROM service_failures")
    aggrieved = f[(f.severity >= 4) & f.resolved_at.isna()].customer_id.unique()
    untouched = truth.index.difference(f.customer_id.unique())
    assert len(aggrieved) >= 40
    alive_aggrieved = truth.loc[aggrieved, "alive_at_as_of"].mean()
    alive_untouched = truth.loc[untouched, "alive_at_as_of"].mean()
    assert alive_aggrieved < alive_untouched - 0.15, (alive_aggrieved, alive_untouched)


# ---------------------------------------------------------------- contact data


def test_phones_are_valid_e164_for_their_country_except_the_broken_share(
    small: tuple[Engine, DemoSummary],
) -> None:
    engine, summary = small
    c = frame(engine, "SELECT locale, time_zone, phone FROM customers")
    assert all(tz in ZONE_OF_LOCALE[loc] for loc, tz in zip(c.locale, c.time_zone, strict=True))
    present = c[c.phone.notna()]
    assert 0.25 <= 1 - len(present) / SMALL <= 0.35
    assert present.phone.str.fullmatch(r"\+\d{6,15}").all()
    assert present.phone.is_unique
    parsed = [phonenumbers.parse(p) for p in present.phone]
    valid = np.array([phonenumbers.is_valid_number(n) for n in parsed])
    assert (~valid).sum() == summary.invalid_phones
    assert 0.002 <= summary.invalid_phones / SMALL <= 0.025
    regions = [phonenumbers.region_code_for_number(n) for n, ok in zip(parsed, valid, strict=True) if ok]
    assert regions == [REGION_OF_LOCALE[loc] for loc, ok in zip(present.locale, valid, strict=True) if ok]


def test_emails_are_valid_except_the_missing_and_broken_shares(small: tuple[Engine, DemoSummary]) -> None:
    engine, summary = small
    emails = frame(engine, "SELECT email FROM customers").email
    assert emails.isna().sum() == summary.missing_emails
    assert 0.015 <= summary.missing_emails / SMALL <= 0.045

    def ok(address: str) -> bool:
        try:
            validate_email(address, check_deliverability=False)
        except EmailNotValidError:
            return False
        return True

    invalid = [e for e in emails.dropna() if not ok(e)]
    assert len(invalid) == summary.invalid_emails
    assert 0.004 <= len(invalid) / SMALL <= 0.02
    assert emails.dropna().is_unique


def test_flags_and_channels_have_plausible_shares(large: tuple[Engine, DemoSummary]) -> None:
    c = frame(large[0], "SELECT email, phone, preferred_channel, do_not_contact, fraud_flag FROM customers")
    assert 0.005 <= c.do_not_contact.mean() <= 0.015
    assert 0.002 <= c.fraud_flag.mean() <= 0.009
    assert set(c.preferred_channel.dropna()) == {"email", "sms"}
    assert c.loc[c.preferred_channel == "sms", "phone"].notna().all()
    assert c.loc[c.preferred_channel == "email", "email"].notna().all()


# ---------------------------------------------------------------- determinism and storage


def test_same_seed_same_data_regardless_of_chunk_size(
    small: tuple[Engine, DemoSummary], demo_engine_factory: EngineFactory
) -> None:
    again = demo_engine_factory("again")
    generate_demo_warehouse(again, customers=SMALL, seed=7, as_of=AS_OF, chunk_size=300)
    assert checksum(again) == checksum(small[0])


def test_different_seed_different_data(small: tuple[Engine, DemoSummary], demo_engine_factory: EngineFactory) -> None:
    other = demo_engine_factory("other_seed")
    generate_demo_warehouse(other, customers=SMALL, seed=8, as_of=AS_OF)
    assert checksum(other) != checksum(small[0])


def test_refuses_to_overwrite_unless_replace(demo_engine_factory: EngineFactory) -> None:
    engine = demo_engine_factory("replace")
    first = generate_demo_warehouse(engine, customers=300, as_of=AS_OF)
    with pytest.raises(DemoDataExistsError, match="replace=True"):
        generate_demo_warehouse(engine, customers=300, as_of=AS_OF)
    second = generate_demo_warehouse(engine, customers=200, as_of=AS_OF, replace=True)
    assert table_counts(engine)["customers"] == 200
    assert second.orders < first.orders


def test_rejects_naive_as_of(demo_engine_factory: EngineFactory) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        generate_demo_warehouse(demo_engine_factory("naive"), customers=10, as_of=dt.datetime(2025, 1, 1))


def test_sqlite_storage_formats_match_sqlalchemy(small: tuple[Engine, DemoSummary]) -> None:
    engine = small[0]
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite storage format")
    row = frame(
        engine,
        "SELECT o.ordered_at, typeof(o.ordered_at) t_ts, typeof(o.amount) t_amount, "
        "typeof(c.do_not_contact) t_bool, c.do_not_contact "
        "FROM orders o JOIN customers c USING (customer_id) LIMIT 1",
    ).iloc[0]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", row.ordered_at)
    assert (row.t_ts, row.t_amount, row.t_bool) == ("text", "real", "integer")
    assert row.do_not_contact in (0, 1)
    indexes = set(frame(engine, "SELECT name FROM sqlite_master WHERE type = 'index'").name)
    assert {"ix_orders_customer_time_amount", "ix_service_failures_customer"} <= indexes
    assert frame(engine, "SELECT COUNT(*) n FROM sqlite_stat1").n[0] > 0, "ANALYZE ran"


def test_orm_reads_back_utc_datetimes_and_money(small: tuple[Engine, DemoSummary]) -> None:
    engine = small[0]
    raw = frame(engine, "SELECT order_id, ordered_at FROM orders ORDER BY order_id LIMIT 1").iloc[0]
    with Session(engine) as session:
        order = session.get(DemoOrder, raw.order_id)
        failure = session.scalars(select(DemoServiceFailure).limit(1)).one()
    assert order is not None
    when = utc(order.ordered_at)
    assert HISTORY_START <= when <= AS_OF
    assert when.replace(tzinfo=None) == pd.Timestamp(raw.ordered_at).to_pydatetime()
    assert order.amount == order.amount.quantize(order.amount.__class__("0.01"))
    assert utc(failure.occurred_at) <= AS_OF


# ---------------------------------------------------------------- the simulated future


def _decide_everyone(engine: Engine, as_of: dt.datetime, seed: int) -> tuple[int, pd.DataFrame]:
    """A hand-made run that considers every demo customer: half treatment, half holdout, offers for some."""
    Base.metadata.create_all(engine)
    rng = np.random.default_rng(seed)
    ids = frame(engine, "SELECT customer_id FROM customers ORDER BY customer_id").customer_id.tolist()
    arms = np.where(rng.random(len(ids)) < 0.5, "treatment", "holdout")
    skipped = rng.random(len(ids)) < 0.02
    now = dt.datetime(2025, 7, 1, tzinfo=dt.UTC)
    with engine.begin() as conn:
        conn.execute(insert(Campaign), [{"id": "demo", "kind": "winback", "config": {}, "created_at": now}])
        run_id = conn.execute(
            insert(CampaignRun).returning(CampaignRun.id),
            [{"campaign_id": "demo", "as_of": as_of, "status": "decided", "started_at": now, "stats": {}}],
        ).scalar_one()
        conn.execute(
            insert(Decision),
            [
                {
                    "run_id": run_id, "customer_id": c, "segment": "lapsed",
                    "action": "skip" if s else ("contact" if a == "treatment" else "holdout"),
                    "arm": None if s else a, "reason": "test", "decided_at": now,
                }
                for c, a, s in zip(ids, arms, skipped, strict=True)
            ],
        )  # fmt: skip
        offered = [c for c, a, s in zip(ids, arms, skipped, strict=True) if a == "treatment" and not s][::2]
        conn.execute(
            insert(Offer),
            [
                {
                    "code": f"WB-{i:06d}", "run_id": run_id, "customer_id": c, "kind": "percent_discount",
                    "value": 10, "currency": "EUR", "expected_cost": 3, "issued_at": now,
                    "expires_at": now + dt.timedelta(days=30),
                }
                for i, c in enumerate(offered)
            ],
        )  # fmt: skip
    decided = pd.DataFrame({"customer_id": ids, "arm": np.where(skipped, None, arms)})
    return run_id, decided


@pytest.fixture(scope="module")
def decided_run(large: tuple[Engine, DemoSummary]) -> tuple[Engine, int, pd.DataFrame]:
    engine = large[0]
    run_id, decided = _decide_everyone(engine, AS_OF, seed=5)
    return engine, run_id, decided


def test_measured_lift_matches_the_true_lift(decided_run: tuple[Engine, int, pd.DataFrame]) -> None:
    engine, run_id, decided = decided_run
    summary = simulate_campaign_response(engine, run_id, true_lift=0.10, seed=11)
    arms = decided.arm.value_counts()
    assert (summary.decided_treatment, summary.decided_holdout) == (arms["treatment"], arms["holdout"])
    assert 0.08 <= summary.true_ate <= 0.10, "clipping at 1 only trims the effect for heavy buyers"
    assert summary.measured_lift == pytest.approx(summary.true_ate, abs=0.025)
    null = simulate_campaign_response(engine, run_id, true_lift=0.0, seed=11)
    assert null.measured_lift == pytest.approx(0.0, abs=0.025)
    assert null.true_ate == 0.0


def test_response_orders_are_inside_the_window_and_only_for_the_living(
    decided_run: tuple[Engine, int, pd.DataFrame],
) -> None:
    engine, run_id, decided = decided_run
    summary = simulate_campaign_response(engine, run_id, true_lift=0.05, window_days=30)
    o = frame(engine, f"SELECT * FROM orders WHERE order_id LIKE 'R{run_id}-%'")
    assert len(o) == summary.orders_inserted > 0
    assert o.order_id.is_unique
    when = pd.to_datetime(o.ordered_at)
    start = pd.Timestamp(AS_OF.replace(tzinfo=None))
    assert ((when > start) & (when <= start + pd.Timedelta(days=30))).all()
    returners = o.groupby("customer_id").size()
    assert returners.max() <= 2
    assert len(returners) == summary.returned_treatment + summary.returned_holdout
    arm = decided.set_index("customer_id").arm
    assert arm[returners.index].notna().all(), "skipped customers are not simulated"
    truth = frame(engine, "SELECT customer_id, alive_at_as_of FROM demo_truth").set_index("customer_id")
    dead_holdout_returners = [c for c in returners.index if arm[c] == "holdout" and not truth.alive_at_as_of[c]]
    assert dead_holdout_returners == [], "a churned customer never comes back on their own"


def test_coupons_are_redeemed_by_treated_customers_with_offers(
    decided_run: tuple[Engine, int, pd.DataFrame],
) -> None:
    engine, run_id, _ = decided_run
    summary = simulate_campaign_response(engine, run_id, redemption_share=0.6)
    used = frame(
        engine,
        f"SELECT o.customer_id, o.coupon_code, f.code, d.arm FROM orders o "
        f"LEFT JOIN wb_offers f ON f.run_id = {run_id} AND f.customer_id = o.customer_id "
        f"JOIN wb_decisions d ON d.run_id = {run_id} AND d.customer_id = o.customer_id "
        f"WHERE o.order_id LIKE 'R{run_id}-%'",
    )
    with_coupon = used[used.coupon_code.notna()]
    assert len(with_coupon) == summary.coupons_used > 0
    assert (with_coupon.coupon_code == with_coupon.code).all()
    assert (with_coupon.arm == "treatment").all()
    offered_returners = used[(used.arm == "treatment") & used.code.notna()].customer_id.unique()
    assert 0.45 <= summary.coupons_used / len(offered_returners) <= 0.75


def test_response_is_idempotent(decided_run: tuple[Engine, int, pd.DataFrame]) -> None:
    engine, run_id, _ = decided_run
    first = simulate_campaign_response(engine, run_id, seed=3)
    before = frame(engine, f"SELECT * FROM orders WHERE order_id LIKE 'R{run_id}-%' ORDER BY order_id")
    total = table_counts(engine)["orders"]
    second = simulate_campaign_response(engine, run_id, seed=3)
    after = frame(engine, f"SELECT * FROM orders WHERE order_id LIKE 'R{run_id}-%' ORDER BY order_id")
    assert table_counts(engine)["orders"] == total
    assert second.replaced_orders == first.orders_inserted
    assert before.equals(after)
    assert (first.returned_treatment, first.returned_holdout) == (
        second.returned_treatment,
        second.returned_holdout,
    )


def test_response_refuses_customers_without_truth(demo_engine_factory: EngineFactory) -> None:
    engine = demo_engine_factory("no_truth")
    generate_demo_warehouse(engine, customers=50, as_of=AS_OF)
    run_id, _ = _decide_everyone(engine, AS_OF, seed=1)
    with engine.begin() as conn:
        conn.execute(demo_truth.delete().where(demo_truth.c.customer_id == "C0000001"))
        conn.execute(text("UPDATE wb_decisions SET arm = 'treatment' WHERE customer_id = 'C0000001'"))
    with pytest.raises(ValueError, match="no demo_truth row"):
        simulate_campaign_response(engine, run_id)
