"""What the server needs, taken from `Settings` when it starts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sendgrid.helpers.eventwebhook import EventWebhook

from winback.errors import ConfigError
from winback.messages.render import Brand
from winback.messages.unsubscribe import UnsubscribeLinks
from winback.settings import DEFAULT_MAX_BODY_BYTES, DEFAULT_PUBLIC_URL, Settings


@dataclass(frozen=True)
class ServerSettings:
    """What the server needs; an endpoint whose secret is None answers 503 (not configured).

    `public_url`: the public base URL, including any path prefix a proxy strips (Twilio signs the URL it
    called, which the app rebuilds from this). `unsubscribe` reads the tokens of unsubscribe links.
    """

    public_url: str = DEFAULT_PUBLIC_URL
    sendgrid_webhook_public_key: str | None = field(default=None, repr=False)
    twilio_auth_token: str | None = field(default=None, repr=False)
    crm_secret: str | None = field(default=None, repr=False)
    brand_name: str = Brand().name
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    replay_window_seconds: float = 300.0
    unsubscribe: UnsubscribeLinks = field(default_factory=UnsubscribeLinks)

    def __post_init__(self) -> None:
        if not self.public_url.startswith(("http://", "https://")):
            raise ConfigError("WINBACK_PUBLIC_URL must start with http:// or https://")
        if self.max_body_bytes <= 0:
            raise ConfigError("max_body_bytes must be positive")
        if self.sendgrid_webhook_public_key:
            try:  # a bad key must fail at start-up, not reject every event later
                EventWebhook(self.sendgrid_webhook_public_key)
            except (ValueError, TypeError) as exc:
                raise ConfigError("WINBACK_SENDGRID_WEBHOOK_PUBLIC_KEY is not a base64 DER public key") from exc

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerSettings:
        """The server's part of the one Settings, secrets unwrapped (they stay out of reprs and logs)."""

        def secret(value: object) -> str | None:
            return value.get_secret_value() if value is not None else None  # type: ignore[attr-defined]

        return cls(
            public_url=settings.public_url,
            sendgrid_webhook_public_key=settings.sendgrid_webhook_public_key,
            twilio_auth_token=secret(settings.twilio_auth_token),
            crm_secret=secret(settings.crm_secret),
            brand_name=settings.brand_name or Brand().name,
            max_body_bytes=settings.max_body_bytes,
            unsubscribe=UnsubscribeLinks.from_settings(settings),
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ServerSettings:
        """`from_settings` for these variables only (not the process environment)."""
        return cls.from_settings(Settings.from_mapping(env))
