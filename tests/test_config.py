"""Campaign configuration files: defaults, and errors that name the file and the key."""

from __future__ import annotations

import os
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


# -- settings: every variable in one described class, read at the edges ------------------------------------------

SRC = Path(__file__).resolve().parents[1] / "src" / "winback"


def test_a_bad_campaign_file_is_a_config_error_that_callers_may_still_catch_as_value_error(tmp_path: Path) -> None:
    from winback.errors import ConfigError, WinbackError

    path = tmp_path / "bad.yaml"
    path.write_text("budget: -5\n")
    with pytest.raises(ConfigError) as raised:
        CampaignConfig.from_yaml(path)
    assert isinstance(raised.value, WinbackError) and isinstance(raised.value, ValueError)


def test_every_variable_the_code_names_is_a_described_setting() -> None:
    import re

    from winback.settings import Settings

    fields = Settings.model_fields.values()
    aliases = {str(f.validation_alias) for f in fields}
    named = {name for path in SRC.rglob("*.py") for name in re.findall(r"\bWINBACK_[A-Z_]+\b", path.read_text())}
    assert named and named <= aliases, f"not in Settings: {sorted(named - aliases)}"
    assert {"SENDGRID_API_KEY", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"} <= aliases
    assert all(f.description and len(f.description) > 20 for f in fields)


def test_only_the_edges_read_the_environment() -> None:
    """Lower modules take their settings as arguments; Settings reads the environment, for the app's edges."""
    readers = {path.relative_to(SRC).as_posix() for path in SRC.rglob("*.py") if "os.environ" in path.read_text()}
    # Prefect's own set-up, the demo's sink journal for its in-process flows
    assert readers <= {"settings.py", "app/runtime.py", "app/demo.py"}, readers


def test_settings_come_from_the_environment_blank_meaning_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    from winback.settings import DEFAULT_DATABASE_URL, Settings

    monkeypatch.setenv("WINBACK_DATABASE_URL", "  ")
    monkeypatch.setenv("WINBACK_PUBLIC_URL", "https://hooks.example.com/")
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.secret")
    settings = Settings()
    assert settings.database_url == DEFAULT_DATABASE_URL and settings.public_url == "https://hooks.example.com"
    assert "SG.secret" not in repr(settings) and settings.sendgrid_api_key is not None
    assert Settings.from_mapping({}).sendgrid_api_key is None  # a mapping alone: the environment is not read


@pytest.mark.parametrize(
    ("name", "raw", "problem"),
    [
        ("WINBACK_SMS_RATE", "0", "must be above zero"),
        ("WINBACK_EMAIL_RATE", "fast", "not a number"),
        ("WINBACK_SEND_CONCURRENCY", "2.5", "not a whole number"),
        ("WINBACK_SENDERS", "-1", "must be above zero"),
    ],
)
def test_a_bad_setting_is_one_line_naming_the_variable(name: str, raw: str, problem: str) -> None:
    from pydantic import ValidationError

    from winback.app.failures import one_line
    from winback.settings import Settings

    with pytest.raises(ValidationError) as raised:
        Settings.from_mapping({name: raw})
    assert one_line(raised.value) == f"{name}='{raw}': {problem}"


def test_an_ephemeral_command_keeps_prefects_info_chatter_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    from winback.app.runtime import configure_prefect_environment

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv("PREFECT_LOGGING_LEVEL", raising=False)
    configure_prefect_environment()
    assert os.environ["PREFECT_LOGGING_LEVEL"] == "WARNING"
    monkeypatch.setenv("PREFECT_LOGGING_LEVEL", "DEBUG")  # a user's own choice stands
    configure_prefect_environment()
    assert os.environ["PREFECT_LOGGING_LEVEL"] == "DEBUG"
