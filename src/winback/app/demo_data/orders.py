"""Orders and service failures: every order a customer would place, the failures on them, who leaves.

BG/NBD's story, with failures added: repeat orders arrive at the customer's own rate in seasonal time; after
each the customer may drop out for good, and a failure on an order adds its own chance of leaving.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from winback.app.demo_data.clock import NULL_TS, Clock, to_us
from winback.app.demo_data.parameters import (
    BILLING,
    CATEGORIES,
    CATEGORY_SHARE,
    CHURN_BOOST,
    DAMAGED,
    FAILURE_BASE,
    NEVER_RESOLVED,
    OUTAGE,
    RESOLVE_MEDIAN_DAYS,
    RESOLVED_CHURN_FACTOR,
    RUDE,
    SEVERITY_SHARE,
    WRONG,
    ZONES,
)
from winback.app.demo_data.text import id_strings


@dataclass(frozen=True)
class Events:
    """Every candidate order of a block, customer-major and time-ordered within each customer."""

    owner: np.ndarray  # customer index within the block
    pos: np.ndarray  # 0 = first order at sign-up
    t: np.ndarray  # days since history start
    starts: np.ndarray  # index of each customer's first event


def candidate_events(
    rng: np.random.Generator, zone: np.ndarray, first: np.ndarray, lam: np.ndarray, clock: Clock
) -> Events:
    """The first order plus every repeat order the customer would place if they never dropped out."""
    n = len(zone)
    op_first = np.empty(n)
    op_end = np.empty(n)
    for z in range(len(ZONES)):
        m = zone == z
        op_first[m] = np.interp(first[m], clock.grid, clock.warp[z])
        op_end[m] = clock.warp[z][-1]
    span = np.maximum(op_end - op_first, 0.0)
    repeats = rng.poisson(lam * span)
    owner_r = np.repeat(np.arange(n), repeats)
    keys = 2.0 * owner_r + rng.random(len(owner_r))  # gap of 2 keeps customers apart after rounding
    keys.sort()
    op = op_first[owner_r] + (keys - 2.0 * owner_r) * span[owner_r]
    t_r = np.empty(len(op))
    for z in range(len(ZONES)):
        m = zone[owner_r] == z
        t_r[m] = np.interp(op[m], clock.warp[z], clock.grid)
    counts = repeats + 1
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    owner = np.repeat(np.arange(n), counts)
    pos = np.arange(len(owner)) - starts[owner]
    t = np.empty(len(owner))
    t[starts] = first
    t[pos > 0] = np.maximum(t_r, first[owner_r] + 1e-6)
    return Events(owner, pos, t, starts)


@dataclass(frozen=True)
class Failures:
    """One candidate failure per failed event (indices into the block's events)."""

    event: np.ndarray
    category: np.ndarray
    severity: np.ndarray  # 1..5
    occurred: np.ndarray  # days
    resolved: np.ndarray  # days, NaN = not resolved by as_of
    late_days: np.ndarray  # for late_delivery descriptions
    variant: np.ndarray  # which description template


def draw_failures(rng: np.random.Generator, ev: Events, clock: Clock) -> Failures:
    """Service failures on candidate orders, more likely on recent orders; only those before as_of."""
    rel = ev.t / clock.horizon
    failed = np.flatnonzero(rng.random(len(ev.t)) < FAILURE_BASE * (0.5 + 1.5 * rel**2))
    k = len(failed)
    cat = rng.choice(len(CATEGORIES), size=k, p=CATEGORY_SHARE)
    cum = SEVERITY_SHARE.cumsum(axis=1)[cat]
    sev = 1 + (rng.random(k)[:, None] > cum).sum(axis=1).clip(max=4)
    late_low = np.array([1, 2, 4, 7, 12])[sev - 1]
    late_high = np.array([2, 4, 7, 12, 21])[sev - 1]
    late = rng.integers(late_low, late_high + 1)
    offsets = np.select(
        [cat == 0, cat <= 2, cat == 3, cat == 4],
        [rng.integers(2, 6, k) + late, rng.uniform(2, 6, k), rng.uniform(0.1, 3, k), rng.uniform(1, 10, k)],
        rng.uniform(0.01, 0.5, k),
    ) + rng.uniform(0, 0.5, k)
    occurred = ev.t[failed] + offsets
    delay = RESOLVE_MEDIAN_DAYS[cat] * (0.7 + 0.15 * sev) * rng.lognormal(0.0, 0.9, k)
    resolved = occurred + delay
    open_ = (rng.random(k) < NEVER_RESOLVED[cat]) | (resolved > clock.horizon)
    resolved[open_] = np.nan
    variant = rng.integers(0, 4, k)
    keep = occurred < clock.horizon
    return Failures(failed[keep], cat[keep], sev[keep], occurred[keep], resolved[keep], late[keep], variant[keep])


def survivors(
    rng: np.random.Generator, ev: Events, dropout: np.ndarray, fail: Failures
) -> tuple[np.ndarray, np.ndarray]:
    """Which candidate orders happen, and who is still alive at as_of.

    After every repeat order the customer leaves with probability p; a failure on an order adds its own
    chance of leaving after that order. Everything after the leaving order never happens.
    """
    q = np.where(ev.pos > 0, dropout[ev.owner], 0.0)
    boost = CHURN_BOOST[fail.severity - 1] * np.where(np.isnan(fail.resolved), 1.0, RESOLVED_CHURN_FACTOR)
    q[fail.event] = 1.0 - (1.0 - q[fail.event]) * (1.0 - boost)
    leaves = rng.random(len(q)) < q
    never = np.iinfo(np.int64).max
    first_leave = np.minimum.reduceat(np.where(leaves, ev.pos, never), ev.starts)
    return ev.pos <= first_leave[ev.owner], first_leave == never


def _descriptions(fail: Failures, order_ids: Sequence[str]) -> list[str]:
    """Short human descriptions, the way an agent would log them."""
    out = []
    for cat, variant, late, oid in zip(
        fail.category.tolist(), fail.variant.tolist(), fail.late_days.tolist(), order_ids, strict=True
    ):
        if cat == 0:
            out.append(f"Parcel arrived {late} day{'s' if late != 1 else ''} late")
        elif cat == 1:
            out.append(DAMAGED[variant])
        elif cat == 2:
            out.append(WRONG[variant])
        elif cat == 3:
            out.append(BILLING[variant].format(oid))
        elif cat == 4:
            out.append(RUDE[variant % len(RUDE)])
        else:
            out.append(OUTAGE[variant % len(OUTAGE)])
    return out


def failure_rows(
    fail: Failures, owner: np.ndarray, order_numbers: np.ndarray, ids: list[str], first: int, clock: Clock
) -> dict[str, Any]:
    """The service_failures table of a block; `owner` and `order_numbers` are indexed by event."""
    order_ids = id_strings("O", order_numbers[fail.event], 9)
    unresolved = np.isnan(fail.resolved)
    return {
        "failure_id": id_strings("F", first + np.arange(len(fail.event)), 8),
        "customer_id": [ids[i] for i in owner[fail.event].tolist()],
        "order_id": order_ids,
        "category": [CATEGORIES[c] for c in fail.category.tolist()],
        "severity": fail.severity,
        "occurred_at": to_us(clock, fail.occurred),
        "resolved_at": np.where(unresolved, NULL_TS, to_us(clock, np.nan_to_num(fail.resolved))),
        "description": _descriptions(fail, order_ids),
    }
