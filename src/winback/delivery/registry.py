"""Which channel object sends each kind of message: a provider when its keys are set, else the local sink."""

from __future__ import annotations

import logging

from winback.channels.sendgrid import SendGridChannel, SendGridSettings
from winback.channels.sink import SinkChannel
from winback.channels.twilio import TwilioChannel, TwilioSettings
from winback.delivery.dispatch import Channel
from winback.settings import Settings


def configured_channels(settings: Settings) -> dict[str, Channel]:
    """The sender for each channel (`{"email": ..., "sms": ...}`) as the edge's settings configure them.

    Both channels fall back to one shared sink. A half-configured provider raises ConfigError before
    anything is sent.
    """
    # the SDKs log request bodies (addresses, numbers) at DEBUG/INFO: keep them out of winback's logs
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
    logging.getLogger("python_http_client").setLevel(logging.INFO)
    sendgrid = SendGridSettings.from_settings(settings)
    twilio = TwilioSettings.from_settings(settings)
    sink = SinkChannel(settings.sink_path)
    return {
        "email": SendGridChannel(sendgrid) if sendgrid else sink,
        "sms": TwilioChannel(twilio) if twilio else sink,
    }
