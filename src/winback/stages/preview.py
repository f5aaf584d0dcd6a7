"""A dry run's summary, added up part by part: what a run would decide and spend, stored nowhere.

One process adds its whole run as one part; a partitioned run adds each partition's decisions as they are
made, so no frame of every decision is ever held.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

SAMPLE_REASONS = 5


@dataclass
class PreviewTally:
    """Counts by action, segment and channel, offers and their cost, and the first contacted customers' reasons."""

    decisions: Counter[str] = field(default_factory=Counter)
    by_segment_and_action: Counter[tuple[str, ...]] = field(default_factory=Counter)
    contacts_by_segment_and_channel: Counter[tuple[str, ...]] = field(default_factory=Counter)
    offers: Counter[str] = field(default_factory=Counter)
    offer_cost: float = 0.0
    sample_reasons: list[str] = field(default_factory=list)

    def add(self, decisions: pd.DataFrame) -> None:
        """Count one part's decisions in."""
        self.decisions.update(_counted(decisions, ["action"]))
        self.by_segment_and_action.update(_counted(decisions, ["segment", "action"]))
        contacted = decisions.loc[decisions["action"] == "contact"]
        self.contacts_by_segment_and_channel.update(_counted(contacted, ["segment", "channel"]))
        offers = contacted.loc[contacted["offer_kind"] != "none"]
        self.offers.update(_counted(offers, ["offer_kind"]))
        self.offer_cost += float(offers["offer_cost"].sum())
        room = SAMPLE_REASONS - len(self.sample_reasons)
        self.sample_reasons.extend(contacted["reason"].head(max(room, 0)).tolist())

    def summary(self) -> dict[str, Any]:
        """The tally as the dry run reports it."""
        return {
            "decisions": {k[0]: n for k, n in self.decisions.items()},
            "by_segment_and_action": _joined(self.by_segment_and_action),
            "contacts_by_segment_and_channel": _joined(self.contacts_by_segment_and_channel),
            "offers": {k[0]: n for k, n in self.offers.items()},
            "offer_cost": round(self.offer_cost, 2),
            "sample_reasons": list(self.sample_reasons),
        }


def _counted(frame: pd.DataFrame, columns: list[str]) -> Counter[tuple[str, ...]]:
    sizes = frame.groupby(columns).size()
    return Counter({tuple(map(str, k if isinstance(k, tuple) else (k,))): int(n) for k, n in sizes.items()})


def _joined(counts: Counter[tuple[str, ...]]) -> dict[str, int]:
    return {"/".join(key): counts[key] for key in sorted(counts)}
