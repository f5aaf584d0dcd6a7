"""Benchmark: rendering alone, per message, on the contexts a 1M campaign queued (templates, sandbox, babel).

    .venv/bin/python bench/render_rate.py [--messages 30000] [--database bench/.cache/state-duckdb-1000000.db]

Reads the first `--messages` outbox rows `bench/campaign.py` leaves behind, builds each one's template
variables as a sender does (`build_context`), then renders them all three times and keeps the quickest
pass: the part of a sender's cost per message that is Jinja's (`bench/send_rate.py` times the whole send).
The hash of every subject, text and HTML is printed, so two versions of the renderer can be shown to write
the same messages.
Last line: messages=… us_per_message=… output_sha256=…
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sqlite3
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from winback.messages.render import Brand, build_context, render

PASSES = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=30_000)
    parser.add_argument("--database", type=Path, default=Path("bench/.cache/state-duckdb-1000000.db"))
    args = parser.parse_args()
    if not args.database.exists():
        raise SystemExit(f"{args.database}: run bench/campaign.py first, it builds and fills this database")
    with sqlite3.connect(f"file:{args.database}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT template, channel, context FROM wb_outbox LIMIT ?", (args.messages,)).fetchall()
    if not rows:
        raise SystemExit(f"{args.database}: no outbox rows; run bench/campaign.py first")
    contexts = [(t, ch, build_context(json.loads(c), Brand(), "https://shop.example/u/token")) for t, ch, c in rows]
    best = float("inf")
    for _ in range(PASSES):
        start = time.perf_counter()
        out = [render(template, channel, context) for template, channel, context in contexts]
        best = min(best, time.perf_counter() - start)
    digest = hashlib.sha256(repr([(o.subject, o.text, o.html) for o in out]).encode()).hexdigest()[:16]
    print(f"messages={len(out)} us_per_message={best / len(out) * 1e6:.1f} output_sha256={digest}")


if __name__ == "__main__":
    main()
