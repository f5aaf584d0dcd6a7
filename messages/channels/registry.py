"""Which channel object sends each kind of message: a provider when its keys are set, else the local sink."""

from __future__ import annotations

from messages.channels.sendgrid import SendGridChannel, SendGridSettings
from messages.channels.sink import SinkChannel
from messages.channels.twilio import TwilioChannel, TwilioSettings
from messages.dispatch import Channel


def configured_channels() -> dict[str, Channel]:
    """{"email": ..., "sms": ...} from the environment; both fall back to one shared sink."""
    sink = SinkChannel()
    sendgrid = SendGridSettings.from_env()
    twilio = TwilioSettings.from_env()
    return {
        "email": SendGridChannel(sendgrid) if sendgrid else sink,
        "sms": TwilioChannel(twilio) if twilio else sink,
    }
