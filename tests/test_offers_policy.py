"""Compensation policy: rule matching, value tiers, caps, expected cost, and validation messages."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from winback.offers.policy import CompensationPolicy, Tiers, load_policy, price_offers, value_tier

NAN = float("nan")
REDEMPTION = 0.35
GOOD_RULE = "  - {segment: lapsed, offer: {kind: percent_discount, value: 10}}\n"
HEADER = "tiers: {medium: 60, high: 250}\nrules:\n"


def _candidate(**kw: object) -> dict[str, object]:
    row: dict[str, object] = {
        "customer_id": "c1",
        "segment": "aggrieved",
        "failure_category": "damaged_item",
        "severity": 4,
        "order_amount": 80.0,
        "customer_value": 100.0,
        "mean_spend": 40.0,
    }
    row.update(kw)
    return row


def _price(*rows: dict[str, object], policy: CompensationPolicy | None = None) -> pd.DataFrame:
    return price_offers(pd.DataFrame(list(rows)), policy or CompensationPolicy.default(), REDEMPTION)


def _one(policy: CompensationPolicy | None = None, **kw: object) -> pd.Series:
    return _price(_candidate(**kw), policy=policy).iloc[0]


# --------------------------------------------------------------------------- default policy


def test_default_policy_loads() -> None:
    policy = CompensationPolicy.default()
    assert policy.tiers.medium == 60
    assert policy.tiers.high == 250
    assert policy.caps.max_share_of_order == 0.5
    assert policy.caps.max_share_of_customer_value == 0.5
    assert policy.shipping_cost == 4.95
    assert len(policy.rules) == 11
    assert {r.segment for r in policy.rules} == {"lapsed", "aggrieved"}


# --------------------------------------------------------------------------- tiers


@pytest.mark.parametrize(
    ("value", "tier"),
    [(0.0, "low"), (59.99, "low"), (60.0, "medium"), (249.99, "medium"), (250.0, "high"), (10_000.0, "high")],
    ids=["zero", "just-below-medium", "at-medium", "just-below-high", "at-high", "very-high"],
)
def test_value_tier_thresholds_are_inclusive(value: float, tier: str) -> None:
    assert value_tier(pd.Series([value]), Tiers(medium=60, high=250)).iloc[0] == tier


# --------------------------------------------------------------------------- rule matching


@pytest.mark.parametrize(
    ("overrides", "kind", "value"),
    [
        # damaged 4/5: the high-tier rule (2nd) comes before the general one (3rd)
        ({"customer_value": 300.0}, "store_credit", 25.0),
        ({"customer_value": 100.0}, "store_credit", 15.0),
        # severity 3 falls through to the "severity [3]" rule: 15 % (of mean spend 40 = 6, under caps)
        ({"severity": 3}, "percent_discount", 15.0),
        # severity 2: only the aggrieved catch-all matches -> 10 %
        ({"severity": 2}, "percent_discount", 10.0),
        ({"failure_category": "late_delivery", "severity": 3}, "free_shipping", 0.0),
        ({"failure_category": "outage", "severity": 5}, "free_service", 10.0),
        ({"failure_category": "rude_staff", "severity": 5}, "store_credit", 10.0),
        ({"failure_category": "billing_error", "severity": 4}, "refund_share", 20.0),
        ({"segment": "lapsed", "customer_value": 300.0, "order_amount": NAN}, "store_credit", 15.0),
        ({"segment": "lapsed", "customer_value": 100.0, "order_amount": NAN}, "percent_discount", 15.0),
        ({"segment": "lapsed", "customer_value": 59.0, "order_amount": NAN}, "percent_discount", 10.0),
    ],
    ids=[
        "damaged-high-tier", "damaged-medium-tier", "damaged-sev3", "damaged-sev2", "late-delivery",
        "outage", "rude-staff-sev5", "billing-error", "lapsed-high", "lapsed-medium", "lapsed-low",
    ],
)  # fmt: skip
def test_default_policy_rules(overrides: dict[str, object], kind: str, value: float) -> None:
    row = _one(**overrides)
    assert row["offer_kind"] == kind
    assert row["offer_value"] == pytest.approx(value)


def test_first_matching_rule_wins() -> None:
    policy = CompensationPolicy.from_text(
        """
tiers: {medium: 60, high: 250}
rules:
  - {segment: aggrieved, severity: [4], offer: {kind: store_credit, value: 7}}
  - {segment: aggrieved, category: [damaged_item], severity: [4], offer: {kind: store_credit, value: 9}}
"""
    )
    assert _one(policy)["offer_value"] == 7.0


def test_no_matching_rule_means_no_offer() -> None:
    policy = CompensationPolicy.from_text(HEADER + "  - {segment: lapsed, offer: {kind: store_credit, value: 5}}\n")
    row = _one(policy, segment="aggrieved")
    assert row["offer_kind"] == "none"
    assert (row["offer_value"], row["offer_amount"], row["offer_cost"]) == (0.0, 0.0, 0.0)


def test_each_row_gets_its_own_rule() -> None:
    out = _price(
        _candidate(customer_id="a", customer_value=300.0),
        _candidate(customer_id="b", customer_value=100.0),
        _candidate(customer_id="c", segment="lapsed", customer_value=30.0, order_amount=NAN),
    )
    assert out["tier"].tolist() == ["high", "medium", "low"]
    assert out["offer_kind"].tolist() == ["store_credit", "store_credit", "percent_discount"]
    assert out["offer_value"].tolist() == [25.0, 15.0, 10.0]


# --------------------------------------------------------------------------- amounts, caps and cost


def test_store_credit_amount_and_expected_cost() -> None:
    row = _one(customer_value=100.0)  # 15 credit; caps 40 (half of 80) and 50 (half of 100)
    assert row["offer_amount"] == 15.0
    assert row["offer_cost"] == pytest.approx(15.0 * REDEMPTION)


def test_percent_discount_is_worth_percent_of_mean_spend() -> None:
    row = _one(segment="lapsed", customer_value=100.0, mean_spend=40.0, order_amount=NAN)
    assert row["offer_value"] == 15.0
    assert row["offer_amount"] == pytest.approx(6.0)
    assert row["offer_cost"] == pytest.approx(2.1)


def test_cap_by_order_value_scales_the_stated_value() -> None:
    # 15 credit on a 20 order: capped at half the order, 10; the coupon then says 10
    row = _one(order_amount=20.0, customer_value=100.0)
    assert row["offer_kind"] == "store_credit"
    assert row["offer_amount"] == pytest.approx(10.0)
    assert row["offer_value"] == pytest.approx(10.0)
    assert row["offer_cost"] == pytest.approx(3.5)


def test_cap_by_customer_value_scales_a_percentage_down_to_a_whole_percent() -> None:
    # lapsed low tier: 10 % of 200 = 20, capped at half the customer's value of 10 -> 5 = 2.5 % -> 2 %
    row = _one(segment="lapsed", customer_value=10.0, mean_spend=200.0, order_amount=NAN)
    assert row["offer_kind"] == "percent_discount"
    assert row["offer_value"] == 2.0  # what the message prints ("2% off") and the code carries
    assert row["offer_amount"] == pytest.approx(4.0)
    assert row["offer_cost"] == pytest.approx(1.4)


def test_a_cap_below_one_percent_leaves_no_discount() -> None:
    row = _one(segment="lapsed", customer_value=1.0, mean_spend=200.0, order_amount=NAN)  # cap 0.5 = 0.25 %
    assert row["offer_kind"] == "none"
    assert row["offer_amount"] == 0.0


@pytest.mark.parametrize(("category", "severity", "kind"), [("late_delivery", 3, "free_shipping"),
                                                             ("outage", 4, "free_service")])  # fmt: skip
def test_what_cannot_be_given_in_part_is_not_offered_under_a_lower_cap(category: str, severity: int,
                                                                        kind: str) -> None:  # fmt: skip
    whole = _one(failure_category=category, severity=severity)
    assert whole["offer_kind"] == kind
    capped = _one(failure_category=category, severity=severity, order_amount=6.0)  # cap: half of 6 = 3
    assert capped["offer_kind"] == "none"
    assert capped["offer_amount"] == capped["offer_cost"] == 0.0


def test_order_cap_uses_mean_spend_when_there_is_no_failed_order() -> None:
    # lapsed high tier: 15 credit, basis = mean spend 12 -> cap 6
    row = _one(segment="lapsed", customer_value=300.0, mean_spend=12.0, order_amount=NAN)
    assert row["offer_amount"] == pytest.approx(6.0)
    assert row["offer_value"] == pytest.approx(6.0)


def test_refund_share_costs_the_full_amount() -> None:
    # 20 % of the 80 order = 16; caps 40 and 150; paid outright, not × redemption rate
    row = _one(failure_category="billing_error", severity=5, customer_value=300.0)
    assert row["offer_kind"] == "refund_share"
    assert row["offer_value"] == 20.0
    assert row["offer_amount"] == pytest.approx(16.0)
    assert row["offer_cost"] == pytest.approx(16.0)


def test_refund_share_capped_by_customer_value() -> None:
    # 16 refund capped at half of a 20 customer value = 10, i.e. 12.5 % of the order
    row = _one(failure_category="billing_error", severity=5, customer_value=20.0)
    assert row["offer_amount"] == pytest.approx(10.0)
    assert row["offer_value"] == pytest.approx(12.5)
    assert row["offer_cost"] == pytest.approx(10.0)


def test_free_shipping_is_worth_the_shipping_cost() -> None:
    row = _one(failure_category="late_delivery", severity=3)
    assert row["offer_kind"] == "free_shipping"
    assert row["offer_value"] == 0.0
    assert row["offer_amount"] == pytest.approx(4.95)
    assert row["offer_cost"] == pytest.approx(4.95 * REDEMPTION, abs=0.005)


def test_free_service_value_is_its_cost() -> None:
    row = _one(failure_category="outage", severity=4)
    assert row["offer_kind"] == "free_service"
    assert row["offer_amount"] == pytest.approx(10.0)
    assert row["offer_cost"] == pytest.approx(3.5)


def test_worthless_customer_gets_no_offer() -> None:
    row = _one(customer_value=0.0)
    assert row["offer_kind"] == "none"
    assert (row["offer_value"], row["offer_amount"], row["offer_cost"]) == (0.0, 0.0, 0.0)


def test_negative_customer_value_is_treated_as_zero() -> None:
    row = _one(customer_value=-50.0)
    assert row["offer_kind"] == "none"
    assert row["offer_cost"] == 0.0


def test_redemption_rate_scales_cost() -> None:
    frame = pd.DataFrame([_candidate()])
    policy = CompensationPolicy.default()
    low = price_offers(frame, policy, 0.1).iloc[0]["offer_cost"]
    high = price_offers(frame, policy, 0.8).iloc[0]["offer_cost"]
    assert (low, high) == (pytest.approx(1.5), pytest.approx(12.0))


def test_price_offers_keeps_input_columns_and_does_not_mutate() -> None:
    frame = pd.DataFrame([_candidate(extra="kept")])
    before = frame.copy()
    out = price_offers(frame, CompensationPolicy.default(), REDEMPTION)
    pd.testing.assert_frame_equal(frame, before)
    assert out["extra"].tolist() == ["kept"]
    assert {"tier", "offer_kind", "offer_value", "offer_amount", "offer_cost"} <= set(out.columns)
    assert np.isfinite(out["offer_cost"]).all()


def test_price_offers_missing_columns_named() -> None:
    frame = pd.DataFrame([_candidate()]).drop(columns=["mean_spend", "order_amount"])
    with pytest.raises(ValueError, match=r"price_offers: required columns missing: order_amount, mean_spend"):
        price_offers(frame, CompensationPolicy.default(), REDEMPTION)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        (
            HEADER + GOOD_RULE + "  - {segment: lapsed, offer: {kind: percent_discount, value: 150}}\n",
            r"rule 2 at line \d+ \(offer\): .*percent_discount value must be a percentage in \(0, 100\], got 150",
        ),
        (
            HEADER + "  - {segment: aggrieved, offer: {kind: refund_share, value: 0}}\n",
            r"rule 1 at line \d+ \(offer\): .*refund_share value must be a percentage",
        ),
        (
            HEADER + GOOD_RULE * 2 + "  - {segment: lapsed, severity: [9], offer: {kind: none, value: 0}}\n",
            r"rule 3 at line \d+ \(.*\): .*severity must be between 1 and 5",
        ),
        (
            HEADER + "  - {segment: lapsed, offer: {kind: voucher, value: 10}}\n",
            r"rule 1 at line \d+ \(offer\.kind\): Input should be 'percent_discount'",
        ),
        (
            HEADER + "  - {segment: lapsed, offer: {kind: store_credit, value: -5}}\n",
            r"rule 1 at line \d+ \(offer\.value\): Input should be greater than or equal to 0",
        ),
        (
            HEADER + "  - {segment: loyal, offer: {kind: store_credit, value: 5}}\n",
            r"rule 1 at line \d+ \(segment\): Input should be 'lapsed' or 'aggrieved'",
        ),
        (
            HEADER + "  - {segment: lapsed, tier: [gold], offer: {kind: store_credit, value: 5}}\n",
            r"rule 1 at line \d+ \(tier\.0\): Input should be 'low', 'medium' or 'high'",
        ),
        (
            HEADER + GOOD_RULE + "  - {segment: lapsed, colour: red, offer: {kind: none, value: 0}}\n",
            r"rule 2 at line \d+ \(colour\): Extra inputs are not permitted",
        ),
        (
            "tiers: {medium: 250, high: 60}\nrules:\n" + GOOD_RULE,
            r"tiers: .*tiers\.high must be above tiers\.medium",
        ),
        (
            "tiers: {medium: 60, high: 60}\nrules:\n" + GOOD_RULE,
            r"tiers: .*tiers\.high must be above tiers\.medium",
        ),
        (
            HEADER + GOOD_RULE + "caps: {max_share_of_order: 1.5}\n",
            r"caps\.max_share_of_order: Input should be less than or equal to 1",
        ),
        (HEADER, r"rules: Input should be a valid list"),
        ("tiers: {medium: 60, high: 250}\nrules: []\n", r"rules: List should have at least 1 item"),
        ("rules:\n" + GOOD_RULE, r"tiers: Field required"),
        ("tiers: {medium: 60\nrules: [", r"not valid YAML"),
    ],
    ids=[
        "percent-150", "refund-share-0", "severity-9", "unknown-kind", "negative-value", "unknown-segment",
        "unknown-tier", "unknown-rule-key", "tiers-reversed", "tiers-equal", "cap-above-1", "rules-null",
        "rules-empty", "tiers-missing", "invalid-yaml",
    ],
)  # fmt: skip
def test_bad_policy_errors_name_the_source_and_the_problem(text: str, pattern: str) -> None:
    with pytest.raises(ValueError, match=r"^compensation policy team-policy\.yaml: " + pattern):
        CompensationPolicy.from_text(text, source="team-policy.yaml")


def test_from_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(HEADER + "  - {segment: lapsed, offer: {kind: percent_discount, value: 101}}\n")
    with pytest.raises(ValueError, match=rf"compensation policy {re.escape(str(path))}: rule 1 at line \d+ \(offer\)"):
        CompensationPolicy.from_yaml(path)


def test_from_yaml_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(
        "tiers: {medium: 10, high: 20}\nshipping_cost: 3.5\n"
        "rules:\n"
        "  - {segment: aggrieved, category: [late_delivery], offer: {kind: free_shipping, value: 0}}\n"
    )
    policy = CompensationPolicy.from_yaml(path)
    assert policy.shipping_cost == 3.5
    row = _one(policy, failure_category="late_delivery")
    assert row["offer_amount"] == pytest.approx(3.5)


def test_a_campaign_without_a_policy_file_gets_the_default_and_one_with_it_gets_its_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(HEADER.replace("60", "61") + GOOD_RULE)
    assert load_policy(None) == CompensationPolicy.default()
    assert load_policy(str(path)).tiers.medium == 61 != CompensationPolicy.default().tiers.medium
    with pytest.raises(OSError):
        load_policy(str(tmp_path / "missing.yaml"))


def test_percentage_of_exactly_100_is_allowed() -> None:
    policy = CompensationPolicy.from_text(
        HEADER + "  - {segment: lapsed, offer: {kind: percent_discount, value: 100}}\n"
    )
    assert policy.rules[0].offer.value == 100.0


def test_a_bad_rule_is_named_with_its_line() -> None:
    text = (
        "tiers: {medium: 60, high: 250}\n"
        "rules:\n"
        "  - {segment: lapsed, offer: {kind: percent_discount, value: 10}}\n"
        "  - segment: aggrieved\n"
        "    severity: [9]\n"
        "    offer: {kind: store_credit, value: 5}\n"
    )
    with pytest.raises(ValueError, match=r"my.yaml: rule 2 at line 4 \(.*severity must be between 1 and 5"):
        CompensationPolicy.from_text(text, source="my.yaml")
