"""One block of customers: every table's rows for `BLOCK` customers, drawn from one RNG stream."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from winback.app.demo_data.clock import Clock, to_us
from winback.app.demo_data.contacts import customer_rows
from winback.app.demo_data.latent import draw_latent
from winback.app.demo_data.orders import Failures, candidate_events, draw_failures, failure_rows, survivors
from winback.app.demo_data.parameters import ORDER_SHAPE
from winback.app.demo_data.text import id_strings


@dataclass
class Block:
    """Raw columns per table (numpy arrays, or lists of str/None); timestamps are int64 µs with NULL_TS."""

    tables: dict[str, dict[str, Any]]
    counts: dict[str, int] = field(default_factory=dict)


def generate_block(
    seed: int, block_no: int, first_number: int, n: int, clock: Clock, next_ids: dict[str, int]
) -> Block:
    """All rows for customers first_number .. first_number+n-1, from one RNG stream.

    `next_ids` carries the running order and failure numbers across blocks (updated in place).
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, block_no]))
    numbers = np.arange(first_number, first_number + n, dtype=np.int64)
    ids = id_strings("C", numbers, 7)
    lat = draw_latent(rng, n, clock)
    ev = candidate_events(rng, lat.zone, lat.first, lat.rate, clock)
    fail = draw_failures(rng, ev, clock)
    happens, alive = survivors(rng, ev, lat.dropout, fail)
    fail = Failures(*(getattr(fail, f)[happens[fail.event]] for f in Failures.__dataclass_fields__))

    kept = np.flatnonzero(happens)
    owner = ev.owner[kept]
    order_numbers = np.full(len(ev.t), -1, dtype=np.int64)
    order_numbers[kept] = next_ids["order"] + np.arange(len(kept))
    value = rng.gamma(ORDER_SHAPE, 1.0, len(kept)) * lat.spend[owner] / ORDER_SHAPE
    orders = {
        "order_id": id_strings("O", order_numbers[kept], 9),
        "customer_id": [ids[i] for i in owner.tolist()],
        "ordered_at": to_us(clock, ev.t[kept]),
        "amount": np.maximum(np.round(value, 2), 1.0),
        "coupon_code": [None] * len(kept),
    }
    failures = failure_rows(fail, ev.owner, order_numbers, ids, next_ids["failure"], clock)
    customers, consents, counts = customer_rows(rng, lat, numbers, ids, seed, clock)
    truth = {"customer_id": ids, "daily_rate": lat.rate, "alive_at_as_of": alive,
             "spend_scale": np.round(lat.spend, 4)}  # fmt: skip
    next_ids["order"] += len(kept)
    next_ids["failure"] += len(fail.event)
    counts |= {
        "customers": n,
        "orders": len(kept),
        "service_failures": len(fail.event),
        "consents": 2 * n,
        "alive_at_as_of": int(alive.sum()),
        "one_time_buyers": int((np.bincount(owner, minlength=n) == 1).sum()),
        "customers_with_failure": len(np.unique(ev.owner[fail.event])),
    }
    tables = {"customers": customers, "orders": orders, "service_failures": failures, "consents": consents,
              "demo_truth": truth}  # fmt: skip
    return Block(tables, counts)
