"""Getting the outbox's messages out: claiming, sending, settling uncertain sends, recording provider events."""
