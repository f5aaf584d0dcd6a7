"""The compensation policy: failure category × severity × customer value tier → offer kind and amount.

Declarative and validated: a bad file fails with the file, the rule's position and the problem named.
Amounts are capped relative to the failed order and to the customer's value: over-compensating does
not pay.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

OfferKind = Literal["percent_discount", "store_credit", "free_shipping", "refund_share", "free_service", "none"]
Tier = Literal["low", "medium", "high"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OfferSpec(_Strict):
    """What a rule grants: an offer kind and its value (a percentage, money, or unused: see default_policy.yaml)."""

    kind: OfferKind
    value: float = Field(ge=0)

    @model_validator(mode="after")
    def _percent_in_range(self) -> OfferSpec:
        if self.kind in ("percent_discount", "refund_share") and not 0 < self.value <= 100:
            raise ValueError(f"{self.kind} value must be a percentage in (0, 100], got {self.value}")
        return self


class Rule(_Strict):
    """One line of the policy: the offer for a segment, narrowed by category, severity and tier when given."""

    segment: Literal["lapsed", "aggrieved"]
    category: list[str] | None = None
    severity: list[int] | None = None
    tier: list[Tier] | None = None
    offer: OfferSpec

    @model_validator(mode="after")
    def _severity_range(self) -> Rule:
        if self.severity and any(not 1 <= s <= 5 for s in self.severity):
            raise ValueError(f"severity must be between 1 and 5, got {self.severity}")
        return self


class Caps(_Strict):
    """The most an offer may be worth, as a share of the failed order and of the customer's value."""

    max_share_of_order: float = Field(0.5, gt=0, le=1)
    max_share_of_customer_value: float = Field(0.5, gt=0, le=1)


class Tiers(_Strict):
    """Customer value thresholds: `medium` and above is the medium tier, `high` and above the high tier."""

    medium: float = Field(gt=0)
    high: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Tiers:
        if self.high <= self.medium:
            raise ValueError("tiers.high must be above tiers.medium")
        return self


class CompensationPolicy(_Strict):
    """The compensation policy: value tiers, caps, shipping cost and rules (the first matching rule wins)."""

    tiers: Tiers
    caps: Caps = Caps()
    shipping_cost: float = Field(4.95, ge=0)
    rules: list[Rule] = Field(min_length=1)

    @classmethod
    def from_yaml(cls, path: Path | str) -> CompensationPolicy:
        """The policy in a YAML file; ValueError naming the file, the rule's line and the problem."""
        text = Path(path).read_text()
        return cls.from_text(text, source=str(path))

    @classmethod
    def from_text(cls, text: str, source: str = "<policy>") -> CompensationPolicy:
        """The policy in YAML `text`; ValueError naming `source`, the rule's line and the problem."""
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"compensation policy {source}: not valid YAML: {exc}") from exc
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                loc = err["loc"]
                where = ".".join(str(p) for p in loc)
                if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
                    line = _rule_lines(text).get(loc[1])
                    at = f" at line {line}" if line else ""
                    where = f"rule {loc[1] + 1}{at} ({'.'.join(str(p) for p in loc[2:]) or 'rule'})"
                problems.append(f"{where}: {err['msg']}")
            raise ValueError(f"compensation policy {source}: " + "; ".join(problems)) from exc

    @classmethod
    def default(cls) -> CompensationPolicy:
        """The policy winback ships with (offers/default_policy.yaml), for campaigns that set none."""
        text = resources.files("winback.offers").joinpath("default_policy.yaml").read_text()
        return cls.from_text(text, source="offers/default_policy.yaml")


def load_policy(policy_file: Path | str | None) -> CompensationPolicy:
    """The policy a campaign prices its offers with: its `policy_file`, else the built-in default.

    Parameters
    ----------
    policy_file
        A campaign config's `policy_file` (already resolved beside the campaign file), or None.

    Returns
    -------
    CompensationPolicy
        The validated policy; a missing or bad file raises OSError or ValueError naming it.
    """
    return CompensationPolicy.from_yaml(policy_file) if policy_file else CompensationPolicy.default()


def _rule_lines(text: str) -> dict[int, int]:
    """Rule index → the 1-based line it starts on, so an error can point into the file."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    if not isinstance(root, yaml.MappingNode):
        return {}
    for key, value in root.value:
        if key.value == "rules" and isinstance(value, yaml.SequenceNode):
            return {i: node.start_mark.line + 1 for i, node in enumerate(value.value)}
    return {}


def value_tier(customer_value: pd.Series, tiers: Tiers) -> pd.Series:
    """Each customer's value tier (`low`, `medium` or `high`), for offers scaled to what they are worth."""
    return pd.Series(
        np.select([customer_value >= tiers.high, customer_value >= tiers.medium], ["high", "medium"], "low"),
        index=customer_value.index,
    )


def _membership(values: pd.Series) -> Callable[[Iterable[object]], np.ndarray]:
    """`values.isin(wanted)` as a function, the column factorised once: each test compares integer codes."""
    codes, uniques = pd.factorize(values)
    index = pd.Index(uniques)

    def isin(wanted: Iterable[object]) -> np.ndarray:
        found = index.get_indexer(list(wanted))
        return np.isin(codes, found[found >= 0])

    return isin


def _first_rule(rules: list[Rule], frame: pd.DataFrame) -> np.ndarray:
    """The index of the first rule each row matches; len(rules) where none does."""
    segment, category, tier = (_membership(frame[c]) for c in ("segment", "failure_category", "tier"))
    first = np.full(len(frame), len(rules))
    for i in reversed(range(len(rules))):  # earlier rules overwrite later ones: the first match wins
        rule = rules[i]
        hit = segment([rule.segment])
        if rule.category is not None:
            hit &= category(rule.category)
        if rule.severity is not None:
            hit &= frame["severity"].isin(rule.severity).to_numpy()
        if rule.tier is not None:
            hit &= tier(rule.tier)
        first[hit] = i
    return first


def price_offers(candidates: pd.DataFrame, policy: CompensationPolicy, redemption_rate: float) -> pd.DataFrame:
    """Choose each candidate's offer and its expected cost.

    Parameters
    ----------
    candidates
        customer_id, segment, failure_category, severity, order_amount, customer_value, mean_spend.

    Returns
    -------
    The candidates with tier, offer_kind, offer_value (percent or currency, after caps), offer_amount (the
    money it is worth on a typical order) and offer_cost (expected cost: amount × chance it is used;
    a refund is paid outright).
    """
    required = [
        "customer_id",
        "segment",
        "failure_category",
        "severity",
        "order_amount",
        "customer_value",
        "mean_spend",
    ]
    missing = [c for c in required if c not in candidates.columns]
    if missing:
        raise ValueError(f"price_offers: required columns missing: {', '.join(missing)}")
    out = candidates.copy(deep=False)  # copy-on-write: columns are copied only when changed
    out["tier"] = value_tier(out["customer_value"], policy.tiers)
    first = _first_rule(policy.rules, out)
    kinds = np.array([*(r.offer.kind for r in policy.rules), "none"], dtype=object)
    kind = pd.Series(kinds[first], index=out.index, dtype=object)
    value = pd.Series(np.array([*(r.offer.value for r in policy.rules), 0.0], dtype=float)[first], index=out.index)
    return _priced(out, kind, value, policy, redemption_rate)


def _priced(
    out: pd.DataFrame, kind: pd.Series, value: pd.Series, policy: CompensationPolicy, redemption_rate: float
) -> pd.DataFrame:
    """Offers of these kinds and stated values, capped and priced: offer_kind/value/amount/cost set on `out`."""

    def of_kind(name: str) -> np.ndarray:
        return (kind == name).to_numpy()

    basis = out["order_amount"].where(out["order_amount"].notna() & (out["order_amount"] > 0), out["mean_spend"])
    amount = np.select(
        [of_kind("percent_discount"), of_kind("refund_share"), of_kind("free_shipping")],
        [value / 100.0 * out["mean_spend"], value / 100.0 * basis, policy.shipping_cost],
        value,
    )
    cap = np.minimum(
        policy.caps.max_share_of_order * basis,
        policy.caps.max_share_of_customer_value * out["customer_value"].clip(lower=0),
    )
    capped_amount = np.minimum(amount, cap)
    # scale the stated value down with the amount, so the coupon says what it is worth
    ratio = np.divide(capped_amount, amount, out=np.ones_like(capped_amount, dtype=float), where=amount > 0)
    stated = value * ratio
    # a discount is stated in whole percent, rounded down: the message prints "13% off" for 12.6 otherwise,
    # more than the cap allows, and the code would say one thing and the message another
    percent = of_kind("percent_discount")
    stated = np.where(percent, np.floor(stated + 1e-9), stated)
    capped_amount = np.where(percent, stated / 100.0 * out["mean_spend"], capped_amount)
    # free shipping or a free service cannot be given in part: under a lower cap, no offer
    whole_only = of_kind("free_shipping") | of_kind("free_service")
    worth_it = (capped_amount > 0.005) & ~(whole_only & (capped_amount < amount - 0.005))
    out["offer_kind"] = kind.where(worth_it, "none")
    out["offer_value"] = np.where(of_kind("free_shipping"), 0.0, np.round(stated, 2))
    out["offer_amount"] = np.round(capped_amount, 2)
    use = np.where(of_kind("refund_share"), 1.0, redemption_rate)
    out["offer_cost"] = np.round(capped_amount * use, 2)
    none = ~worth_it | of_kind("none")
    out.loc[none, ["offer_value", "offer_amount", "offer_cost"]] = 0.0
    return out


# offer kinds whose value a campaign's variant may change: a percentage, or an amount of money
VALUED_KINDS = ("percent_discount", "store_credit", "refund_share")


def reprice_offers(
    priced: pd.DataFrame, value: pd.Series, policy: CompensationPolicy, redemption_rate: float
) -> pd.DataFrame:
    """The priced offers with a new stated value where ``value`` has one (and the offer kind has a value).

    The policy's caps apply as to any offer; other rows keep their offer unchanged.
    """
    out = priced.copy(deep=False)
    rows = value.notna() & out["offer_kind"].isin(VALUED_KINDS)
    if not rows.any():
        return out
    changed = _priced(
        out.loc[rows].copy(), out.loc[rows, "offer_kind"], value[rows].astype(float), policy, redemption_rate
    )
    out.loc[rows, ["offer_kind", "offer_value", "offer_amount", "offer_cost"]] = changed[
        ["offer_kind", "offer_value", "offer_amount", "offer_cost"]
    ]
    return out
