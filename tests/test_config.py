"""Campaign configuration files: defaults, and errors that name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from winback.config import CampaignConfig


def test_a_campaign_file_overrides_defaults(tmp_path: Path) -> None:
    path = tmp_path / "spring.yaml"
    path.write_text("campaign_id: spring-winback\nbudget: 1200\nsegments: [lapsed]\neconomics: {margin: 0.4}\n")
    config = CampaignConfig.from_yaml(path)
    assert (config.campaign_id, config.budget, config.segments) == ("spring-winback", 1200.0, ["lapsed"])
    assert config.economics.margin == 0.4 and config.economics.horizon_days == 365


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("budget: -5\n", r"budget: Input should be greater than or equal to 0"),
        ("segmets: [lapsed]\n", r"segmets: Extra inputs are not permitted"),
        ("economics: {margin: 2}\n", r"economics\.margin: Input should be less than or equal to 1"),
        ("lapsed: {min_p_active: 0.9, max_p_active: 0.5}\n", r"min_p_active must be below"),
        ("budget: [\n", r"cannot read"),
    ],
    ids=["negative-budget", "typo-key", "margin-over-1", "inverted-band", "bad-yaml"],
)
def test_a_bad_campaign_file_names_the_file_and_the_key(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=rf"campaign config .*bad\.yaml: .*{problem}"):
        CampaignConfig.from_yaml(path)


def test_the_example_files_load() -> None:
    from winback.warehouse.source import SourceMapping

    examples = Path(__file__).resolve().parents[1] / "examples"
    config = CampaignConfig.from_yaml(examples / "weekly-winback.yaml")
    assert config.campaign_id == "weekly-winback" and config.economics.lift_prior["store_credit"] == 0.06
    mapping = SourceMapping.from_yaml(examples / "source-mapping.yaml")
    assert mapping.orders.table == "sales" and mapping.consents.granted == "opted_in"


def test_the_warehouse_assumes_the_configs_default_attribution_window() -> None:
    """warehouse.runs cannot import the config (it sits below it): its fallback must stay the same number."""
    from winback.warehouse.runs import DEFAULT_WINDOW_DAYS

    assert CampaignConfig.model_fields["attribution_days"].default == DEFAULT_WINDOW_DAYS
