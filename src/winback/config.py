"""A campaign's configuration: one validated model, loadable from YAML, passed to flows as a parameter."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import jinja2
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from winback.yaml_models import load_yaml_model


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LapsedRule(_Strict):
    """Who counts as lapsed: overdue against their own rhythm, or unlikely to still be active."""

    overdue_factor: float = Field(1.5, gt=0, description="days since last order / own mean gap")
    min_days_since_last: int = Field(30, ge=0)
    max_days_since_last: int = Field(540, gt=0, description="beyond this, too far gone to win back")
    max_p_active: float = Field(0.6, gt=0, le=1, description="model rule: P(active) below this is lapsing")
    min_p_active: float = Field(0.02, ge=0, lt=1, description="model rule: below this, already gone")


class AggrievedRule(_Strict):
    """Who counts as aggrieved: a recent failure, or an unresolved one, weighted by severity."""

    lookback_days: int = Field(90, gt=0)
    min_severity: int = Field(2, ge=1, le=5)
    slow_resolution_days: int = Field(7, gt=0, description="resolved later than this = badly closed")


class Economics(_Strict):
    """The numbers that make a contact worth it or not."""

    margin: float = Field(0.3, gt=0, le=1, description="gross margin on revenue")
    horizon_days: int = Field(365, gt=0, description="CLV horizon")
    annual_discount_rate: float = Field(0.1, ge=0)
    contact_cost: dict[Literal["email", "sms"], float] = {"email": 0.002, "sms": 0.05}
    lift_prior: dict[str, float] = Field(
        default_factory=lambda: {
            "none": 0.01,
            "percent_discount": 0.04,
            "free_shipping": 0.03,
            "store_credit": 0.06,
            "refund_share": 0.06,
            "free_service": 0.05,
        },
        description="expected absolute lift in return probability by offer kind, before evidence",
    )
    redemption_rate: float = Field(0.35, gt=0, le=1, description="share of offers expected to be used")
    min_expected_gain: float = Field(0.0, description="contact only when expected gain exceeds this")


class ContactRules(_Strict):
    """How often and when a customer may be messaged: cooldown, a 30-day cap and quiet hours."""

    cooldown_days: int = Field(14, ge=0, description="no campaign contact within this many days")
    max_messages_per_30_days: int = Field(4, ge=1)
    quiet_start_hour: int = Field(21, ge=0, le=23)
    quiet_end_hour: int = Field(8, ge=0, le=23)


class DataQuality(_Strict):
    """What the gate on the source tables accepts: a bad row is quarantined and never used; too many stop the run."""

    max_bad_share: float = Field(
        0.05,
        ge=0,
        le=1,
        description="stop the run, deciding nothing, when more than this share of a source table's rows read is "
        "bad: a broken feed, not a few bad rows",
    )
    max_plausible_amount: float = Field(
        100_000.0,
        gt=0,
        description="an order amount above this (currency units) is quarantined as implausible, not summed",
    )


class Variant(_Strict):
    """One message or offer variant a campaign tests: a contacted customer of the segment gets one at random."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$", description="shown in the report")
    subject: str | None = Field(None, min_length=1, description="email subject; the template's variables apply")
    template: Literal["winback", "apology", "resolved", "follow_up"] | None = Field(
        None, description="the message template (default: the segment's own)"
    )
    offer_value: float | None = Field(
        None, gt=0, description="replaces the offer's value (percent, or money for store credit); caps still apply"
    )

    @field_validator("subject")
    @classmethod
    def _subject_parses(cls, subject: str | None) -> str | None:
        """A subject is a template too: a syntax error is refused when the campaign file is read, not at send."""
        if subject is not None:
            try:
                jinja2.Environment().parse(subject)
            except jinja2.TemplateSyntaxError as exc:
                raise ValueError(f"the subject is not a valid template: {exc.message}") from exc
        return subject


class CampaignConfig(_Strict):
    """Everything a run needs besides the data; a marketer edits this, not code."""

    campaign_id: str = Field("winback-default", pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    segments: list[Literal["lapsed", "aggrieved"]] = ["lapsed", "aggrieved"]
    holdout_share: float = Field(0.1, ge=0, lt=1)
    budget: float = Field(5000.0, ge=0, description="total expected offer cost allowed, currency units")
    currency: str = Field("EUR", min_length=3, max_length=3)
    offer_expiry_days: int = Field(30, gt=0)
    attribution_days: int = Field(30, gt=0)
    batch_size: int = Field(250_000, gt=0, description="customers per batch (an id range)")
    use_models: bool = Field(True, description="BG/NBD + Gamma-Gamma scores; False = simple rules")
    lapsed: LapsedRule = LapsedRule()
    aggrieved: AggrievedRule = AggrievedRule()
    economics: Economics = Economics()
    contact: ContactRules = ContactRules()
    data_quality: DataQuality = DataQuality()
    policy_file: str | None = Field(None, description="compensation policy YAML; default: built-in")
    dry_run: bool = Field(False, description="decide and count what a run would contact and spend; write nothing")
    variants: dict[Literal["lapsed", "aggrieved"], list[Variant]] = Field(
        default_factory=dict, description="message/offer variants to test, per segment (two or more each)"
    )

    @model_validator(mode="after")
    def _check(self) -> CampaignConfig:
        if self.lapsed.min_p_active >= self.lapsed.max_p_active:
            raise ValueError("lapsed.min_p_active must be below lapsed.max_p_active")
        for segment, variants in self.variants.items():
            names = [v.name for v in variants]
            if len(names) < 2 or len(set(names)) < len(names):
                raise ValueError(f"variants.{segment}: two or more variants, each with its own name")
            if segment == "aggrieved" and any(v.template == "winback" for v in variants):
                raise ValueError(
                    "variants.aggrieved: an aggrieved customer is owed an apology, not the winback template"
                )
        return self

    @classmethod
    def from_yaml(cls, path: Path) -> CampaignConfig:
        """Load a campaign file; errors name the file and each offending key.

        A relative `policy_file` is read beside the campaign file (where its author put it, whatever the
        working directory). The policy itself is checked by `winback.app.campaign_file.load_campaign`.
        """
        config = load_yaml_model(cls, path, "campaign config")
        if config.policy_file and not Path(config.policy_file).is_absolute():
            config = config.model_copy(update={"policy_file": str(Path(path).parent / config.policy_file)})
        return config
