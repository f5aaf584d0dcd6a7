"""Which channel object sends each kind of message: a provider when its keys are set, else the local sink."""

from __future__ import annotations

import logging

from winback.channels.sendgrid import SendGridChannel, SendGridSettings
from winback.channels.sink import SinkChannel
from winback.channels.twilio import TwilioChannel, TwilioSettings
from winback.delivery.dispatch import Channel


def configured_channels() -> dict[str, Channel]:
    """{"email": ..., "sms": ...} from the environment; both fall back to one shared sink."""
    # the SDKs log request bodies (addresses, numbers) at DEBUG/INFO: keep them out of winback's logs
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
    logging.getLogger("python_http_client").setLevel(logging.INFO)
    sink = SinkChannel()
    sendgrid = SendGridSettings.from_env()
    twilio = TwilioSettings.from_env()
    return {
        "email": SendGridChannel(sendgrid) if sendgrid else sink,
        "sms": TwilioChannel(twilio) if twilio else sink,
    }
