"""Every setting winback reads from the environment, in one place, each described.

The CLI, the server and each flow build one `Settings()` when they start and hand its values down
(engine URL, source mapping, channels, limits, unsubscribe links): the layers below take arguments and
never look at `os.environ` themselves. `docs/cli.md`'s table of settings is this class.

A variable set to an empty string counts as not set, as it always has; surrounding blanks are ignored.
A value that cannot be used (a rate of 0, a URL without a scheme) fails when the settings are read, with
the variable named.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///winback.db"
DEFAULT_WAREHOUSE_FILE = "winback-warehouse.duckdb"  # beside the default winback.db: what `winback demo` builds
DEFAULT_WAREHOUSE_URL = f"duckdb:///{DEFAULT_WAREHOUSE_FILE}"
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8080"
DEFAULT_SINK_PATH = "outbox_sink.jsonl"
DEV_UNSUBSCRIBE_SECRET = "winback-dev-unsubscribe-secret"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
SENDGRID_API_HOST = "https://api.sendgrid.com"
TWILIO_API_BASE_URL = "https://api.twilio.com"


class Settings(BaseSettings):
    """winback's settings, from environment variables (the names in each field's alias)."""

    model_config = SettingsConfigDict(
        env_ignore_empty=True, extra="ignore", populate_by_name=True, frozen=True, hide_input_in_errors=True
    )

    # -- where winback works
    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        validation_alias="WINBACK_DATABASE_URL",
        description="SQLAlchemy URL of winback's own state (runs, decisions, offers, outbox, events), and of the "
        "source tables too unless WINBACK_WAREHOUSE_URL is set (`postgres://` accepted as hosting providers give "
        "it). Default: winback.db in the working directory.",
    )
    warehouse_url_setting: str | None = Field(
        None,
        validation_alias="WINBACK_WAREHOUSE_URL",
        description="SQLAlchemy URL of the business's warehouse holding the source tables, opened read only "
        "(`duckdb:///file.duckdb`, `postgresql://`, `sqlite:///`, `snowflake://`, `bigquery://`). Default: "
        "the DuckDB file `winback demo` builds beside a SQLite state file (winback.db → winback-warehouse.duckdb) "
        "when it exists, else WINBACK_DATABASE_URL.",
    )
    source_mapping: str | None = Field(
        None,
        validation_alias="WINBACK_SOURCE_MAPPING",
        description="YAML file naming the business's own tables and columns (see examples/source-mapping.yaml). "
        "Default: the demo's names (customers, orders, service_failures, consents).",
    )
    sink_path: str = Field(
        DEFAULT_SINK_PATH,
        validation_alias="WINBACK_SINK_PATH",
        description="Journal (JSON lines) of every message 'sent' while no provider keys are set.",
    )
    dask_address: str | None = Field(
        None,
        validation_alias="WINBACK_DASK_ADDRESS",
        description="Scheduler address of an existing Dask cluster (tcp://host:8786) that reads every campaign "
        "run's partitions. Default: a temporary local cluster for large runs, none for small ones.",
    )
    partition_size: int | None = Field(
        None,
        gt=0,
        validation_alias="WINBACK_PARTITION_SIZE",
        description="Customers per partition of a campaign run; set, it partitions any run. Default: runs of "
        "more than 2,000,000 customers are partitioned by 125,000, smaller ones read in one process.",
    )
    # -- links in messages, and the server
    public_url: str = Field(
        DEFAULT_PUBLIC_URL,
        validation_alias="WINBACK_PUBLIC_URL",
        description="Public base URL of `winback serve`, including any path prefix a proxy strips: unsubscribe "
        "links start with it, and Twilio's signatures are checked against it.",
    )
    unsubscribe_secret: SecretStr = Field(
        SecretStr(DEV_UNSUBSCRIBE_SECRET),
        validation_alias="WINBACK_UNSUBSCRIBE_SECRET",
        description="Key that signs unsubscribe links. Set it in production: the default is public.",
    )
    brand_name: str | None = Field(
        None,
        validation_alias="WINBACK_BRAND_NAME",
        description="The sender's name in the server's pages and SMS keyword replies. Default: the demo brand.",
    )
    max_body_bytes: int = Field(
        DEFAULT_MAX_BODY_BYTES,
        gt=0,
        validation_alias="WINBACK_MAX_BODY_BYTES",
        description="Largest request body the server reads; larger ones get 413.",
    )
    sendgrid_webhook_public_key: str | None = Field(
        None,
        validation_alias="WINBACK_SENDGRID_WEBHOOK_PUBLIC_KEY",
        description="SendGrid Event Webhook verification key (base64 DER). Unset: that endpoint answers 503.",
    )
    crm_secret: SecretStr | None = Field(
        None,
        validation_alias="WINBACK_CRM_SECRET",
        description="HMAC key of the CRM intake's X-Winback-Signature. Unset: that endpoint answers 503.",
    )
    # -- service recovery
    recovery_budget: float = Field(
        2000.0,
        ge=0,
        validation_alias="WINBACK_RECOVERY_BUDGET",
        description="Compensation budget per calendar month (expected cost of the codes issued), currency units.",
    )
    # -- sending
    email_rate: float = Field(100.0, validation_alias="WINBACK_EMAIL_RATE", description="Emails per second, at most.")
    sms_rate: float = Field(10.0, validation_alias="WINBACK_SMS_RATE", description="Text messages per second, at most.")
    send_concurrency: int = Field(
        8, validation_alias="WINBACK_SEND_CONCURRENCY", description="Provider calls in flight per sender."
    )
    senders: int | None = Field(
        None,
        validation_alias="WINBACK_SENDERS",
        description="Concurrent senders a large send starts (Prefect tasks of the sending flow). Default: one per CPU.",
    )
    twilio_visibility_delay: float = Field(
        39_600.0,
        ge=0,
        validation_alias="WINBACK_TWILIO_VISIBILITY_DELAY",
        description="Seconds after its call before an SMS missing from Twilio's Messages list counts as never "
        "sent and is re-queued once (Twilio lists a message once it leaves its queue: up to its 10 h validity).",
    )
    unknown_operator_wait: float = Field(
        86_400.0,
        ge=0,
        validation_alias="WINBACK_UNKNOWN_OPERATOR_WAIT",
        description="Seconds an `unknown` message waits for a provider event before it is listed for an operator.",
    )
    # -- SendGrid (email): unset SENDGRID_API_KEY means the local sink
    sendgrid_api_key: SecretStr | None = Field(
        None, validation_alias="SENDGRID_API_KEY", description="SendGrid API key; unset: emails go to the sink."
    )
    sendgrid_api_host: str = Field(
        SENDGRID_API_HOST, validation_alias="SENDGRID_API_HOST", description="SendGrid API base URL (a stand-in)."
    )
    email_from: str | None = Field(
        None,
        validation_alias="WINBACK_EMAIL_FROM",
        description="Sender address, `Name <address>` or `address`; required with SENDGRID_API_KEY.",
    )
    postal_address: str | None = Field(
        None,
        validation_alias="WINBACK_POSTAL_ADDRESS",
        description="Sender's postal address, added to every email (CAN-SPAM); required with SENDGRID_API_KEY.",
    )
    unsubscribe_mailto: str | None = Field(
        None,
        validation_alias="WINBACK_UNSUBSCRIBE_MAILTO",
        description="Optional mailto: unsubscribe address in List-Unsubscribe, beside the link.",
    )
    # -- Twilio (SMS): neither sid nor token means the local sink
    twilio_account_sid: str | None = Field(
        None, validation_alias="TWILIO_ACCOUNT_SID", description="Twilio account SID; unset: texts go to the sink."
    )
    twilio_auth_token: SecretStr | None = Field(
        None,
        validation_alias="TWILIO_AUTH_TOKEN",
        description="Twilio auth token: sends, and checks the signatures of Twilio's webhooks.",
    )
    twilio_from_number: str | None = Field(
        None, validation_alias="TWILIO_FROM_NUMBER", description="Sending number (or a messaging service)."
    )
    twilio_messaging_service_sid: str | None = Field(
        None,
        validation_alias="TWILIO_MESSAGING_SERVICE_SID",
        description="Messaging Service SID; preferred over TWILIO_FROM_NUMBER when both are set.",
    )
    twilio_api_base_url: str = Field(
        TWILIO_API_BASE_URL, validation_alias="TWILIO_API_BASE_URL", description="Twilio API base URL (a stand-in)."
    )
    twilio_status_callback_url: str | None = Field(
        None,
        validation_alias="TWILIO_STATUS_CALLBACK_URL",
        description="Where Twilio posts delivery statuses: the server's /webhooks/twilio/status, public.",
    )
    # -- Prefect's own, read only to say where flows run
    prefect_api_url: str | None = Field(
        None,
        validation_alias="PREFECT_API_URL",
        description="Prefect's server. Unset: each command runs its flows on a temporary local one.",
    )

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, data: Any) -> Any:
        """Strip values; an empty one is not set (the environment source does this, a mapping must too)."""
        if not isinstance(data, Mapping):
            return data
        out = {}
        for key, value in data.items():
            if isinstance(value, str):
                value = value.strip()
                if not value:
                    continue
            out[key] = value
        return out

    @field_validator("email_rate", "sms_rate", mode="before")
    @classmethod
    def _positive_number(cls, value: Any, info: ValidationInfo) -> float:
        return _positive(_variable(cls, info), value, float)

    @field_validator("send_concurrency", "senders", mode="before")
    @classmethod
    def _positive_whole_number(cls, value: Any, info: ValidationInfo) -> int | None:
        return None if value is None else int(_positive(_variable(cls, info), value, int))

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then the environment; no .env file or secrets directory is read behind anyone's back."""
        return init_settings, env_settings

    @classmethod
    def from_mapping(cls, env: Mapping[str, str]) -> Settings:
        """Settings from these variables only (tests, a job description), ignoring the process environment."""
        return _MappingOnly(**dict(env))

    @property
    def warehouse_url(self) -> str:
        """Where the source tables are read (read only): WINBACK_WAREHOUSE_URL, else the discoverable default.

        Unset, the DuckDB file `winback demo` builds beside the SQLite state (`winback-warehouse.duckdb`
        beside `winback.db`, `demo-warehouse.duckdb` beside `demo.db`) when it is there; otherwise the
        database URL, so a single-database set-up works as it always has.
        """
        return self.warehouse_url_for(self.database_url)

    def warehouse_url_for(self, database_url: str) -> str:
        """The warehouse that goes with the state at `database_url` (a flow's override): see `warehouse_url`."""
        if self.warehouse_url_setting:
            return self.warehouse_url_setting
        beside = demo_warehouse_file(database_url)
        if beside is not None and beside.exists():
            return f"duckdb:///{beside}"
        return database_url

    @property
    def separate_warehouse(self) -> bool:
        """Whether the source tables live apart from winback's state."""
        return self.warehouse_url != self.database_url

    @property
    def sending_to_providers(self) -> bool:
        """Whether any provider keys are set (else every message goes to the local sink)."""
        return bool(self.sendgrid_api_key or self.twilio_account_sid or self.twilio_auth_token)


def demo_warehouse_file(database_url: str) -> Path | None:
    """The DuckDB file `winback demo` builds beside a SQLite state file (`x.db` → `x-warehouse.duckdb`), else None."""
    if not database_url.startswith("sqlite:///") or "?" in database_url:
        return None
    database = Path(database_url.removeprefix("sqlite:///"))
    if database.name in ("", ":memory:"):
        return None
    return database.with_name(f"{database.stem}-warehouse.duckdb")


def _variable(cls: type[BaseSettings], info: ValidationInfo) -> str:
    """The environment variable of the field being validated."""
    return str(cls.model_fields[str(info.field_name)].validation_alias)


def _positive(name: str, value: Any, kind: type[int] | type[float]) -> float:
    """A sending figure above zero; the message names the variable and says which kind of number it wants."""
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r}: not {'a whole number' if kind is int else 'a number'}") from None
    if not number > 0:
        raise ValueError(f"{name}={value!r}: must be above zero")
    return number


class _MappingOnly(Settings):
    """`Settings.from_mapping`: the same fields and checks, with no environment source."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)
