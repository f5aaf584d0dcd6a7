"""The sink's batch write: one write per claim, the same journal as one send per message, crash answers kept."""

from __future__ import annotations

from pathlib import Path

from winback.channels.outcomes import OutgoingMessage, Sent
from winback.channels.sink import SinkChannel


def _messages() -> list[OutgoingMessage]:
    return [
        OutgoingMessage("m1", "email", "ann.smith@example.com", "Hello Ann\n", subject="Hi\r\nBcc: x", campaign_id="c"),
        OutgoingMessage("m2", "sms", "+447700900123", "Hi Bo " * 80, campaign_id="c"),
        OutgoingMessage("m3", "email", "cy@example.com", "Caf\u00e9 \u674e", subject=None, campaign_id="c"),
    ]


def test_send_many_writes_what_one_send_each_writes(tmp_path: Path) -> None:
    one, many = SinkChannel(tmp_path / "one.jsonl"), SinkChannel(tmp_path / "many.jsonl")
    singles = [one.send(message) for message in _messages()]
    batch = many.send_many(_messages())
    assert batch == singles == [Sent("sink", f"sink-m{i}") for i in (1, 2, 3)]
    assert (tmp_path / "many.jsonl").read_text() == (tmp_path / "one.jsonl").read_text()
    assert many.has_sent({"m1", "m3", "m9"}) == {"m1", "m3"}
    assert "ann.smith" not in (tmp_path / "many.jsonl").read_text()  # addresses masked as by `send`
    assert many.send_many([]) == []


def test_a_torn_batch_keeps_its_whole_lines_and_drops_the_torn_one(tmp_path: Path) -> None:
    """A kill during the batch's write: the whole lines are sent, the torn one is not, and the next write
    starts on a line of its own."""
    journal = tmp_path / "sink.jsonl"
    SinkChannel(journal).send_many(_messages())
    text = journal.read_text()
    journal.write_text(text[: text.index('{"message_id": "m3"') + 30])  # m3's line cut short
    sink = SinkChannel(journal)
    assert sink.has_sent({"m1", "m2", "m3"}) == {"m1", "m2"}
    sink.send_many(_messages()[2:])
    assert sink.has_sent({"m3"}) == {"m3"}
    assert [r["message_id"] for r in sink.records()] == ["m1", "m2", "m3"]


def test_a_sink_whose_send_is_overridden_is_called_for_each_message(tmp_path: Path) -> None:
    class Counting(SinkChannel):
        def __init__(self, path: Path) -> None:
            super().__init__(path)
            self.calls: list[str] = []

        def send(self, message: OutgoingMessage) -> Sent:  # type: ignore[override]
            self.calls.append(message.message_id)
            return super().send(message)  # type: ignore[return-value]

    sink = Counting(tmp_path / "sink.jsonl")
    sink.send_many(_messages())
    assert sink.calls == ["m1", "m2", "m3"]
    assert len(sink.records()) == 3
