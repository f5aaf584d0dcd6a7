"""The lift each option of a decision is expected to have: the priced offer, and the message alone.

expected gain = lift × customer value × h + spend uplift × margin − expected offer cost − contact cost,
for each option. The lift is the uplift model's prediction for this customer where the model decides for that
offer kind (`segments.uplift.decision_model`: enough closed-window evidence, validated), else the
per-offer-kind lift (the config's prior, updated by past runs in `segments.learning`). Which one was used is
kept per row, so the reason can say so.

Where the model decides and its incremental-spend model is validated too, the spend the message adds inside
the attribution window is counted in money (× margin), and the customer value, a margin CLV over the whole
horizon, only for the rest of it: h = 1 − attribution days / horizon days, so the window's spend is not
counted twice. Elsewhere the spend uplift is 0 and h = 1: the formula is today's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from winback.segments.uplift.decision_model import DecisionUplift

PLAIN = "none"


@dataclass(frozen=True)
class OptionLifts:
    """Per row: each option's lift, whether the model gave it, and the model's prediction (NaN: no model)."""

    offer: pd.Series
    plain: pd.Series
    offer_by_model: np.ndarray
    plain_by_model: np.ndarray
    offer_predicted: np.ndarray
    plain_predicted: np.ndarray
    offer_spend: np.ndarray  # the predicted spend uplift in the window (NaN: no spend model)
    plain_spend: np.ndarray

    def chosen(self, plain: pd.Series | np.ndarray) -> tuple[pd.Series, np.ndarray, np.ndarray, np.ndarray]:
        """For the option each row ended with (``plain`` True: the message alone): lift, by model, prediction, spend."""
        mask = np.asarray(plain, dtype=bool)
        lift = pd.Series(np.where(mask, self.plain, self.offer), index=self.offer.index)
        return (
            lift,
            np.where(mask, self.plain_by_model, self.offer_by_model),
            np.where(mask, self.plain_predicted, self.offer_predicted),
            np.where(mask, self.plain_spend, self.offer_spend),
        )

    def values(self, customer_value: pd.Series, margin: float, remaining: float) -> tuple[pd.Series, pd.Series]:
        """Each option's expected incremental value in money, before its costs: (offer, message alone).

        ``remaining`` is h, the share of the CLV horizon after the attribution window (see the module).
        """
        return (
            self._value(self.offer, self.offer_by_model, self.offer_spend, customer_value, margin, remaining),
            self._value(self.plain, self.plain_by_model, self.plain_spend, customer_value, margin, remaining),
        )

    @staticmethod
    def _value(
        lift: pd.Series, by_model: np.ndarray, spend: np.ndarray, value: pd.Series, margin: float, remaining: float
    ) -> pd.Series:
        spent = by_model & np.isfinite(spend)
        return lift * value * np.where(spent, remaining, 1.0) + np.where(spent, np.nan_to_num(spend) * margin, 0.0)


def option_lifts(
    frame: pd.DataFrame, prior: dict[str, float], uplift: DecisionUplift | None, scored: np.ndarray | None = None
) -> OptionLifts:
    """Each row's lift for its priced offer and for the message alone.

    Parameters
    ----------
    frame
        Priced candidates (`offers.policy.price_offers`) with the features the model reads.
    prior
        The per-offer-kind lift (offer kind → absolute lift in return probability).
    uplift
        The run's model, or None to decide on the per-offer-kind lift alone.
    scored
        Rows the model predicts for (default all): the excluded need no prediction.
    """
    n = len(frame)
    offer = frame["offer_kind"].map(prior).fillna(0.0).astype(float)
    plain = pd.Series(float(prior.get(PLAIN, 0.0)), index=frame.index)
    offer_predicted, plain_predicted = np.full(n, np.nan), np.full(n, np.nan)
    offer_spend, plain_spend = np.full(n, np.nan), np.full(n, np.nan)
    no = np.zeros(n, dtype=bool)
    if uplift is None or uplift.model is None:
        return OptionLifts(offer, plain, no, no.copy(), offer_predicted, plain_predicted, offer_spend, plain_spend)
    rows = np.ones(n, dtype=bool) if scored is None else np.asarray(scored, dtype=bool)
    if rows.any():
        priced = frame.loc[rows]
        alone = priced.assign(offer_kind=PLAIN, offer_value=0.0, offer_amount=0.0, offer_cost=0.0)
        offer_predicted[rows], offer_spend[rows] = uplift.predict_both(priced)
        plain_predicted[rows], plain_spend[rows] = uplift.predict_both(alone)
    offer_by_model = rows & frame["offer_kind"].isin(uplift.trusted).to_numpy()
    plain_by_model = rows & (PLAIN in uplift.trusted)
    offer = offer.where(~offer_by_model, offer_predicted)
    plain = plain.where(~plain_by_model, plain_predicted)
    return OptionLifts(offer, plain, offer_by_model, plain_by_model, offer_predicted, plain_predicted,
                       offer_spend, plain_spend)  # fmt: skip
