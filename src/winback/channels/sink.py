"""The local sink: with no provider keys, every message is recorded here instead of being sent.

It is a journal (JSON lines, written and flushed to the kernel before `send` returns, so a killed
process loses nothing it reported sent; `sync()` forces it to disk), so it also answers "did this
message leave?" after a crash, which lets the outbox reconcile exactly. Addresses are masked: the journal is for
reading what would have been sent, not a copy of the customer list.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from pathlib import Path

from winback.channels.outcomes import OutgoingMessage, SendOutcome, Sent
from winback.messages.redact import mask_email, mask_phone
from winback.messages.safe_text import CUSTOM_ARG_MAX_CHARS, header_value, sms_body, subject_line
from winback.settings import DEFAULT_SINK_PATH

DEFAULT_PATH = DEFAULT_SINK_PATH


class SinkChannel:
    """Implements the channel interface (`send`) for both email and SMS."""

    name = "sink"
    rate_limited = False

    def __init__(self, path: Path | str) -> None:
        """`path`: the journal (WINBACK_SINK_PATH's, as the edge read it: `settings.sink_path`)."""
        self.path = Path(path)
        self._fh = None
        self._lock = threading.Lock()

    def send(self, message: OutgoingMessage) -> SendOutcome:
        """Append the message to the journal (address masked) and call it sent; safe across threads and processes."""
        self._append(_line(message))
        return Sent(self.name, f"sink-{message.message_id}")

    def send_many(self, messages: list[OutgoingMessage]) -> list[SendOutcome]:
        """`send` for each message, their lines appended with one write and one flush (a claim's worth).

        A process killed during the write leaves whole lines (sent, as the journal says after the crash) and
        at most one torn last line (not sent), as a kill during single sends would. A subclass that
        overrides `send` has it called for each message.
        """
        if type(self).send is not SinkChannel.send:
            return [self.send(message) for message in messages]
        if messages:
            self._append("".join(_line(message) for message in messages))
        return [Sent(self.name, f"sink-{message.message_id}") for message in messages]

    def _append(self, text: str) -> None:
        with self._lock:
            fh = self._handle()
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                fh.write(text)
                fh.flush()
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _handle(self):  # type: ignore[no-untyped-def]
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("a", encoding="utf-8")
            if self._fh.tell() > 0:
                with self.path.open("rb") as tail:
                    tail.seek(-1, os.SEEK_END)
                    if tail.read(1) != b"\n":  # a torn last line (crash mid-write): end it first
                        self._fh.write("\n")
        return self._fh

    def sync(self) -> None:
        """Flush the journal to disk (`fsync`): against power loss, not needed against a killed process."""
        with self._lock:
            if self._fh is not None:
                os.fsync(self._fh.fileno())

    def has_sent(self, message_ids: set[str]) -> set[str]:
        """Which of these ids the journal holds: the reconciliation question after a crash."""
        if not self.path.exists() or not message_ids:
            return set()
        found = set()
        with self.path.open(encoding="utf-8") as fh:
            for line in fh:
                try:
                    mid = json.loads(line)["message_id"]
                except (json.JSONDecodeError, KeyError):
                    continue  # a torn last line from a crash mid-write: that send never returned
                if mid in message_ids:
                    found.add(mid)
        return found

    def records(self) -> list[dict[str, object]]:
        """Every journal line that parses (a torn last line is skipped): what the sink "sent", for tests and demos."""
        if not self.path.exists():
            return []
        out = []
        with self.path.open(encoding="utf-8") as fh:
            for line in fh:
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return out


def _line(message: OutgoingMessage) -> str:
    """The message's journal line: addresses masked, subject and SMS text as they would go."""
    record = {
        "message_id": message.message_id,
        "channel": message.channel,
        "to": mask_email(message.to) if message.channel == "email" else mask_phone(message.to),
        "subject": subject_line(message.subject) if message.subject is not None else None,
        "text": sms_body(message.text) if message.channel == "sms" else message.text,
        "campaign_id": header_value(message.campaign_id, CUSTOM_ARG_MAX_CHARS),
    }
    return json.dumps(record) + "\n"
