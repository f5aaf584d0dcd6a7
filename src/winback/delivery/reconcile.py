"""After a crash: settle the rows a gone sender left in `sending`, then what provider answers can settle.

A stranded row is settled by its own channel:
- a channel that can say whether a message left (the local sink's journal): `sent` or back to `queued`,
  exactly once;
- any other: a row whose call never started (no `started_at`: the sender was killed before reaching it)
  goes back to `queued`, no attempt counted, since nothing left; a row whose call had started may or may
  not have reached the provider, and becomes `unknown`: never resent automatically, since a second apology
  is worse than a late one. At most the calls in flight (`SendLimits.concurrency`) can be in that state.
Then provider events that arrived meanwhile settle rows they name, and `delivery.settle` looks up or lists
the `unknown` ones. Every move is written to the outbox history.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping

from sqlalchemy import Engine

from winback.delivery.events import reconcile_unknown_from_events
from winback.delivery.settle import UnknownPolicy, settle_unknown
from winback.warehouse import outbox, outbox_unknown
from winback.warehouse.timeutil import utcnow

CRASHED_MID_CALL = "crashed between the provider call's start and its answer"
NEVER_STARTED = "claimed by a sender that stopped before calling the provider: never left"


def reconcile(
    engine: Engine,
    journals: Mapping[str, object] | object | None = None,
    run_id: int | None = None,
    *,
    now: dt.datetime | None = None,
    policy: UnknownPolicy,
) -> dict[str, int]:
    """Settle rows a crashed sender left in `sending` (a live sender's claim is left alone), then unknown ones.

    `journals` is the channel map a sender uses ({"email": ..., "sms": ...}), or one channel for every
    channel, or None: journals answer for their rows, lookups (`find_sent`) settle unknown rows. `now` is
    the wall clock (default: now); `policy` the edge's waits (`UnknownPolicy.from_settings`). Returns counts
    by what happened: `sent`, `queued` and `unknown` for stranded rows, `sent_by_event`, and
    `delivery.settle`'s counts; only those above zero.
    """
    at = now or utcnow()
    with engine.begin() as conn:
        stale = outbox.stale_sending(conn, run_id)
        rows = outbox.load(conn, stale)

    def journal_for(channel: str) -> object | None:
        source = journals.get(channel) if isinstance(journals, Mapping) else journals
        return source if hasattr(source, "has_sent") else None

    counts: Counter[str] = Counter()
    with engine.begin() as conn:
        for channel in sorted({r["channel"] for r in rows}):
            ids = {r["id"] for r in rows if r["channel"] == channel}
            journal = journal_for(channel)
            if journal is not None:
                left = journal.has_sent(ids)  # type: ignore[attr-defined]
                for mid in sorted(ids):
                    status = "sent" if mid in left else "queued"
                    outbox.mark(conn, mid, status, provider="sink" if mid in left else None)
                    counts[status] += 1
                outbox_unknown.add_history(
                    conn, sorted(left), at, ("sending", "sent"), "reconcile", "in the sink's journal"
                )
                outbox_unknown.add_history(
                    conn,
                    sorted(ids - left),
                    at,
                    ("sending", "queued"),
                    "reconcile",
                    "not in the sink's journal: never left",
                )
                continue
            requeued = outbox_unknown.requeue_unstarted(conn, sorted(ids), at, NEVER_STARTED)
            counts["queued"] += len(requeued)
            counts["unknown"] += len(
                outbox_unknown.mark_unknown(conn, sorted(ids - set(requeued)), at, CRASHED_MID_CALL)
            )
        # provider events that arrived while a row was still `sending` settle it now
        counts["sent_by_event"] = reconcile_unknown_from_events(conn, utcnow())
    counts.update(settle_unknown(engine, journals, run_id, now=at, policy=policy))
    return {k: v for k, v in counts.items() if v}
