"""Which channel object sends each kind of message: a provider when its keys are set, else the local sink."""

from __future__ import annotations

import logging

from winback.channels.sendgrid import SendGridChannel, SendGridSettings
from winback.channels.sink import SinkChannel
from winback.channels.twilio import TwilioChannel, TwilioSettings
from winback.delivery.dispatch import Channel
from winback.settings import Settings


def configured_channels(settings: Settings | None = None) -> dict[str, Channel]:
    """The sender for each channel (`{"email": ..., "sms": ...}`) as the settings configure them.

    Both channels fall back to one shared sink. A half-configured provider raises ConfigError before
    anything is sent. Pass the edge's settings: reading the environment here when given none is kept only
    for stages/campaign.py's callers until they pass theirs (tests/test_settings_edge.py's NOT_YET).
    """
    # the SDKs log request bodies (addresses, numbers) at DEBUG/INFO: keep them out of winback's logs
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
    logging.getLogger("python_http_client").setLevel(logging.INFO)
    settings = settings or Settings()
    sendgrid = SendGridSettings.from_settings(settings)
    twilio = TwilioSettings.from_settings(settings)
    sink = SinkChannel(settings.sink_path)
    return {
        "email": SendGridChannel(sendgrid) if sendgrid else sink,
        "sms": TwilioChannel(twilio) if twilio else sink,
    }
