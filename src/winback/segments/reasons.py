"""The words of a decision: why a customer is excluded, skipped, held out or contacted, with its figures.

Text is built for a million customers at once, column-wise (`segments.text`): each case's phrase only for
the rows it applies to, and each row's text by one `%` template rather than a chain of concatenations.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from winback.config import CampaignConfig
from winback.segments.text import formatted, str_each, strings
from winback.segments.uplift.decision_model import LIFT_SOURCE, MODEL_SOURCE

KIND_WORDS = {
    "percent_discount": "{v:g}% off",
    "store_credit": "{s}{v:.2f} store credit",
    "free_shipping": "free shipping",
    "refund_share": "{v:g}% refund",
    "free_service": "a free service",
    "none": "the message alone (no offer)",
}

Build = Callable[[np.ndarray], np.ndarray | str]


def exclusions(frame: pd.DataFrame, config: CampaignConfig) -> np.ndarray:
    """The first reason each customer must not be contacted, or None."""
    cooldown = config.contact.cooldown_days
    cap = config.contact.max_messages_per_30_days
    days_since_contact = frame["days_since_contact"].to_numpy(dtype=float)
    messages_30d = frame["messages_30d"].to_numpy()
    held_until = frame["held_out_until"] if "held_out_until" in frame else pd.Series(pd.NaT, index=frame.index)
    held_by = frame["held_out_by"] if "held_out_by" in frame else pd.Series(None, index=frame.index, dtype=object)
    cases: list[tuple[np.ndarray, Build]] = [
        (frame["do_not_contact"].to_numpy(dtype=bool), lambda m: "excluded: do-not-contact flag"),
        (frame["fraud_flag"].to_numpy(dtype=bool), lambda m: "excluded: fraud/chargeback flag"),
        (
            frame["channel"].isna().to_numpy(),
            lambda m: "excluded: " + strings(frame["channel_reason"][m], missing="no channel"),
        ),
        (
            held_until.notna().to_numpy(),
            lambda m: (
                "excluded: in the holdout of "
                + strings(held_by[m], missing="an earlier run")
                + " until "
                + strings(pd.to_datetime(held_until[m], utc=True).dt.strftime("%Y-%m-%d"), missing="?")
            ),
        ),
        (days_since_contact < 0, lambda m: "excluded: a message to them is already scheduled"),
        (
            days_since_contact < cooldown,
            lambda m: (
                "excluded: contacted "
                + str_each(np.floor(days_since_contact[m]).astype(int))
                + f" days ago (cooldown {cooldown} days)"
            ),
        ),
        (
            messages_30d >= cap,
            lambda m: "excluded: frequency cap (" + str_each(messages_30d[m].astype(int)) + f" of {cap} in 30 days)",
        ),
        (
            frame["returned_since_failure"].to_numpy(dtype=bool),
            lambda m: "excluded: already returned (ordered after the failure)",
        ),
    ]
    return _first_match(len(frame), cases)


CHUNK = 65_536  # rows whose text is built at once


def _first_match(size: int, cases: list[tuple[np.ndarray, Build]], default: Build | None = None) -> np.ndarray:
    """Like np.select for text, but each case's text is built only for the rows it applies to (else None)."""
    out = np.full(size, None, dtype=object)
    free = np.ones(size, dtype=bool)
    for mask, build in cases:
        hit = free & mask
        _fill(out, hit, build)
        free &= ~hit
    if default is not None:
        _fill(out, free, default)
    return out


def _fill(out: np.ndarray, rows: np.ndarray, build: Build) -> None:
    """``out[rows] = build(rows)``, built CHUNK rows at a time.

    What a text is made of (its figures as Python floats, its words) then exists for one chunk only: built
    for 320,000 contacts at once, it was ~100 MiB on top of the reasons, at the decide stage's peak.
    """
    for start in range(0, len(out), CHUNK):
        part = np.zeros(len(out), dtype=bool)
        part[start : start + CHUNK] = rows[start : start + CHUNK]
        if part.any():
            out[part] = build(part)


def _why_segment(frame: pd.DataFrame, aggrieved: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """What put each customer in their segment (the failure for the aggrieved, the lapse for the others).

    Returned as the function giving it at some rows, so that it is written for one chunk of reasons at a
    time, never for every customer at once (~60 MiB at a million candidates).
    """
    severity = frame["severity"].fillna(0).astype(int).to_numpy()
    category = strings(frame["failure_category"])
    unresolved = np.where(frame["unresolved"].fillna(False).astype(bool).to_numpy(), " (unresolved)", "")
    lapsed_because = strings(frame.get("lapsed_because", pd.Series("", index=frame.index)))

    def at(rows: np.ndarray) -> np.ndarray:
        out = np.empty(int(rows.sum()), dtype=object)
        hit, other = rows & aggrieved, rows & ~aggrieved
        words = [c.replace("_", " ") for c in category[hit]]
        out[aggrieved[rows]] = formatted("severity-%s %s%s", severity[hit].tolist(), words, unresolved[hit].tolist())
        out[~aggrieved[rows]] = formatted("lapsed, %s", lapsed_because[other].tolist())
        return out

    return at


def _figures(
    frame: pd.DataFrame, cost: pd.Series, lift: pd.Series, by_model: np.ndarray, symbol: str
) -> tuple[str, Callable[[np.ndarray], list[list]]]:
    """The figures behind a decision: probability, value, gain against cost, lift and its source.

    Returned as a `%` template and the function giving its values at some rows, so that each reason is
    written in one piece: the figures are never a string of their own (a few hundred MB at 1M customers).
    """
    sign = symbol.replace("%", "%%")
    template = f"p_active %s, value {sign}%.2f; expected gain {sign}%.2f vs cost {sign}%.2f (lift %s pts, %s)"
    columns = (
        frame["p_active"].round(2).to_numpy(),
        frame["customer_value"].round(2).to_numpy(),
        frame["expected_gain"].to_numpy(),
        cost.to_numpy(),
        (lift * 100).round(1).to_numpy(),
        np.array([LIFT_SOURCE, MODEL_SOURCE], dtype=object)[by_model.astype(int)],  # two strings, shared
    )
    return template, lambda rows: [column[rows].tolist() for column in columns]


def _offer_words(frame: pd.DataFrame, rows: np.ndarray, symbol: str) -> list[list]:
    """'15% off', 'by', 'email' ... for the given rows, as the values of the template `OFFER`.

    Each distinct offer is put in words once: a run has a few dozen (kind, value) pairs.
    """
    kinds = frame["offer_kind"].to_numpy()[rows].tolist()
    values = frame["offer_value"].to_numpy()[rows].tolist()
    said: dict[tuple[str, float], str] = {}
    words = []
    for pair in zip(kinds, values, strict=True):
        text = said.get(pair)
        if text is None:
            text = said[pair] = KIND_WORDS[pair[0]].format(v=pair[1], s=symbol)
        words.append(text)
    return [words, strings(frame["channel"][rows], missing="-").tolist()]


OFFER = "%s by %s"  # '15% off by email', 'the message alone (no offer) by sms'


def reasons(
    frame: pd.DataFrame,
    cost: pd.Series,
    lift: pd.Series,
    by_model: np.ndarray,
    symbol: str,
    eligible: pd.Series,
    within: pd.Series,
    owed: pd.Series,
    unfunded: pd.Series,
    rank: pd.Series,
    ranked_of: int | None = None,
) -> np.ndarray:
    """Each decision's reason, in words and numbers.

    Each row's reason is built only from the parts its case needs: at 1M customers, building every
    variant for every row (or np.select's fixed-width strings) costs gigabytes.

    Parameters
    ----------
    frame
        The decided frame: exclusion, action, segment, the failure and lapse columns, p_active,
        customer_value, expected_gain, offer_kind, offer_value, channel.
    cost, lift, by_model
        Per row: the decided option's cost, its lift, and whether the uplift model gave that lift.
    symbol
        The currency's symbol.
    eligible, within, owed, unfunded, rank
        Per row: worth contacting, within the budget, owed the apology whatever the value, owed it without
        the compensation (over budget), and the rank by gain per cost among the eligible (NaN elsewhere).
    ranked_of
        How many the run ranked (default: those ranked here): a partition's reasons quote the whole run's.

    Returns
    -------
    numpy.ndarray
        One text per row (object dtype).
    """
    exclusion = frame["exclusion"].to_numpy()
    excluded = frame["exclusion"].notna().to_numpy()
    action = frame["action"].to_numpy()
    why = _why_segment(frame, (frame["segment"] == "aggrieved").to_numpy())
    numbers, figures = _figures(frame, cost, lift, by_model, symbol)
    harmful = ~eligible.to_numpy() & by_model & (lift.to_numpy() < 0)
    prefix = np.full(len(frame), "", dtype=object)
    prefix[owed.to_numpy()] = "apology owed (not for the value); "
    prefix[unfunded.to_numpy()] = "apology only: compensation over budget; "
    rank_text = rank.fillna(0).astype(int).to_numpy()
    total = int(rank.notna().sum()) if ranked_of is None else ranked_of

    def text(template: str, *parts: np.ndarray | Build, quoted: bool = False, offered: bool = False) -> Build:
        """Rows' reasons by one template: the given columns (or column builders), then the figures and the offer."""

        def build(m: np.ndarray) -> np.ndarray:
            values = [part(m).tolist() if callable(part) else part[m].tolist() for part in parts]
            values += figures(m) if quoted else []
            values += _offer_words(frame, m, symbol) if offered else []
            return formatted(template, *values)

        return build

    worth = f"%s; {numbers}"  # why they are in the segment; the figures
    return _first_match(
        len(frame),
        [
            (excluded, text("%s; %s", exclusion, why)),
            (
                harmful,
                text(f"skipped: a message is predicted to lower their chance of returning; {worth}", why, quoted=True),
            ),
            (~eligible.to_numpy(), text(f"skipped: not worth it; {worth}", why, quoted=True)),
            (
                ~within.to_numpy(),
                text(f"skipped: over budget (ranked %s of {total}); {worth}", rank_text, why, quoted=True),
            ),
            (
                action == "holdout",
                text(f"holdout (random control); {worth}; would get {OFFER}", why, quoted=True, offered=True),
            ),
        ],
        text(f"contact: %s{worth}; {OFFER}", prefix, why, quoted=True, offered=True),
    )
