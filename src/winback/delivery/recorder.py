"""One writer per claim: each row's start committed just before its call, each answer committed as it comes.

The sending threads never write to the state database themselves. They hand the recorder two kinds of
work, in their own order: "I am about to call the provider for this row" (`start`: the thread waits for the
commit, then calls) and "this is its answer" (`record`: the thread goes on). The recorder's thread takes
everything waiting in arrival order and commits it as one transaction (group commit), so a thread's answer
is committed no later than its next start. At any moment, therefore, each sending thread has at most one
row started and unanswered: a crash leaves `unknown` at most the calls in flight, and every other row of the
claim is either recorded or was never started (and goes back to the queue on reconcile).

One transaction for all that is waiting, rather than one per row and thread: SQLite serialises writers
anyway, and on PostgreSQL a commit waits for its WAL flush, which a group shares.
"""

from __future__ import annotations

import datetime as dt
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine

from winback.channels.outcomes import SendOutcome
from winback.delivery.limits import RetryPolicy
from winback.delivery.prepare import Prepared, outcome_change
from winback.warehouse import outbox
from winback.warehouse.timeutil import utcnow

MAX_GROUP = 256  # pieces of work in one transaction at most
LINGER_SECONDS = 0.0005  # after the first piece of work: the threads woken by the last commit hand theirs in


@dataclass
class _Work:
    item: Prepared
    outcome: SendOutcome | None = None  # None: a start
    text: str | None = None  # a start's text to record for a provider lookup
    done: Future[bool] | None = field(default=None, repr=False)


class ClaimRecorder:
    """Commits a claim's starts and outcomes from its own thread; see the module docstring.

    `clock` is the sender's time now (simulated in the demo and tests): outcomes' times and retries count
    from it. The start stamp is the wall clock, as `claimed_at`: it dates a real provider call.
    """

    def __init__(self, engine: Engine, token: str, retry: RetryPolicy, clock: Callable[[], dt.datetime]) -> None:
        self._engine, self._token, self._retry, self._clock = engine, token, retry, clock
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self.kinds: Counter[str] = Counter()  # what the committed outcomes came to (sent, retry, failed, ...)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="winback-record", daemon=True)
        self._thread.start()

    def start(self, item: Prepared, text: str | None = None) -> bool:
        """Commit that `item`'s call starts now; True when this sender still holds the row (call it now).

        Raises what the commit raised: the row must then not be sent.
        """
        done: Future[bool] = Future()
        self._queue.put(_Work(item, text=text, done=done))
        return done.result()

    def record(self, item: Prepared, outcome: SendOutcome) -> None:
        """Hand over `item`'s answer; committed with the next group, at the latest with this thread's next start."""
        self._queue.put(_Work(item, outcome=outcome))

    def close(self) -> None:
        """Wait until everything handed over is committed; raise the error that stopped the writer, if any."""
        self._queue.put(None)
        self._thread.join()
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        conn: Connection | None = None
        try:
            conn = self._engine.connect()  # one connection for the claim: no checkout (and ping) per group
        except BaseException as exc:
            self.error = exc
        try:
            closing = False
            while not closing:
                group: list[_Work] = []
                work = self._queue.get()
                time.sleep(LINGER_SECONDS)  # the other threads' work, about to come, joins this group
                while work is not None:
                    group.append(work)
                    if len(group) >= MAX_GROUP:
                        break
                    try:
                        work = self._queue.get_nowait()
                    except queue.Empty:
                        break
                closing = work is None
                if group:
                    self._commit(conn, group)
        finally:
            if conn is not None:
                conn.close()

    def _commit(self, conn: Connection | None, group: list[_Work]) -> None:
        starts = [w for w in group if w.outcome is None]
        if self.error is not None or conn is None:  # an earlier group failed: nothing more is written or started
            for w in starts:
                w.done.set_exception(self.error or RuntimeError("no connection"))  # type: ignore[union-attr]
            return
        try:
            with conn.begin():
                answered = self._clock()
                changes = [outcome_change(conn, w.item, w.outcome, self._retry, answered) for w in group if w.outcome]
                outbox.apply_changes(conn, changes)
                texts = {w.item.row["id"]: w.text for w in starts}
                held = outbox.start(conn, self._token, utcnow(), texts)
        except BaseException as exc:  # the rows stay `sending`: started ones `unknown`, the rest queued again
            self.error = exc
            for w in starts:
                w.done.set_exception(exc)  # type: ignore[union-attr]
            return
        self.kinds.update(change["_kind"] for change in changes)
        for w in starts:
            w.done.set_result(w.item.row["id"] in held)  # type: ignore[union-attr]
