"""Qini curve and coefficient, uplift by decile, policy value: hand-derived cases and simulations with known truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from winback.reports.stats import mean_difference, newcombe_interval
from winback.reports.uplift_metrics import (
    DECILE_COLUMNS,
    QINI_COLUMNS,
    policy_value,
    qini_coefficient,
    qini_curve,
    qini_interval,
    uplift_by_decile,
)
from winback.segments.uplift.simulate import simulate_experiment


@pytest.fixture(scope="module")
def world() -> pd.DataFrame:
    return simulate_experiment(40_000, seed=21, treated_share=0.6)


def test_qini_curve_by_hand() -> None:
    # ranked: (t=1, y=1), (t=0, y=0), (t=1, y=0), (t=0, y=1)
    # Q(k) = Y_t(k) - Y_c(k) N_t(k)/N_c(k): k=1: 1 - 0 = 1; k=2: 1 - 0·1/1 = 1; k=3: 1 - 0·2/1 = 1; k=4: 1 - 1·2/2 = 0
    curve = qini_curve(np.array([4.0, 3, 2, 1]), np.array([1, 0, 1, 0]), np.array([1.0, 0, 0, 1]))
    assert list(curve.columns) == QINI_COLUMNS
    assert curve["qini"].tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]
    assert curve["n_treated"].tolist() == [0, 1, 1, 2, 2]
    assert curve["random"].tolist() == [0.0] * 5  # no effect overall: the diagonal is flat
    # per treated customer (2): gaps 0, .5, .5, .5, 0 at shares 0, .25, .5, .75, 1; trapezoids: .0625+.125+.125+.0625
    assert qini_coefficient(np.array([4.0, 3, 2, 1]), np.array([1, 0, 1, 0]), np.array([1.0, 0, 0, 1])) == 0.375


def test_tied_scores_are_random_targeting_and_keep_together() -> None:
    t = np.array([1, 0, 1, 0, 1, 0])
    y = np.array([1.0, 0, 1, 1, 0, 0])
    assert qini_coefficient(np.zeros(6), t, y) == 0.0
    curve = qini_curve(np.array([2.0, 2, 1, 1, 1, 0]), t, y)
    assert curve["n"].tolist() == [0, 2, 5, 6]  # one point per run of equal scores


def test_targeting_by_the_truth_beats_random_and_its_reverse_loses(world: pd.DataFrame) -> None:
    t, y, truth = world["treatment"], world["returned"], world["true_uplift"].to_numpy()
    rng = np.random.default_rng(3)
    null = [qini_coefficient(rng.random(len(world)), t, y) for _ in range(20)]
    oracle = qini_coefficient(truth, t, y)
    assert oracle > 5 * np.std(null) + abs(np.mean(null))
    assert qini_coefficient(-truth, t, y) < -5 * np.std(null)
    low, high = qini_interval(truth, t, y, replicates=100)
    assert low < oracle < high and low > 0


def test_the_coefficient_does_not_depend_on_the_holdout_share() -> None:
    """The same people, the same effects: a 20 % and a 50 % holdout give the same coefficient (within noise)."""
    shares = [simulate_experiment(60_000, seed=5, treated_share=s) for s in (0.8, 0.5)]
    values = [qini_coefficient(w["true_uplift"], w["treatment"], w["returned"]) for w in shares]
    assert values[0] == pytest.approx(values[1], rel=0.25)


def test_deciles_fall_with_the_truth_and_their_intervals_cover_it(world: pd.DataFrame) -> None:
    truth = world["true_uplift"].to_numpy()
    table = uplift_by_decile(truth, world["treatment"], world["returned"], confidence=0.999)
    assert list(table.columns) == DECILE_COLUMNS and table["decile"].tolist() == list(range(1, 11))
    assert (table["n_treated"] + table["n_control"]).sum() == len(world)
    assert table["observed_uplift"].iloc[0] > table["observed_uplift"].iloc[-1] + 0.1
    covered = (table["observed_uplift_low"] <= table["predicted_uplift"]) & (
        table["predicted_uplift"] <= table["observed_uplift_high"]
    )
    assert covered.all()
    # the first decile's interval is Newcombe's on its own arms
    first = np.argsort(-truth, kind="stable")[: len(world) // 10]
    arm = world["treatment"].to_numpy()[first] == 1
    ret = world["returned"].to_numpy()[first]
    low, high = newcombe_interval(ret[arm].sum(), arm.sum(), ret[~arm].sum(), (~arm).sum(), confidence=0.999)
    assert table.loc[0, ["observed_uplift_low", "observed_uplift_high"]].tolist() == pytest.approx([low, high])


def test_numeric_outcome_deciles_use_welch(world: pd.DataFrame) -> None:
    truth = world["true_uplift"].to_numpy()
    table = uplift_by_decile(truth, world["treatment"], world["spend"], bins=4)
    last = np.argsort(-truth, kind="stable")[3 * len(world) // 4 :]
    arm = world["treatment"].to_numpy()[last] == 1
    spend = world["spend"].to_numpy()[last]
    expected = mean_difference(spend[arm], spend[~arm])
    row = table.iloc[-1]
    assert row["observed_uplift"] == pytest.approx(expected.diff)
    assert [row["observed_uplift_low"], row["observed_uplift_high"]] == pytest.approx([expected.low, expected.high])


def test_policy_value_at_a_budget(world: pd.DataFrame) -> None:
    t, y, truth = world["treatment"], world["returned"], world["true_uplift"].to_numpy()
    everyone = policy_value(None, t, y, share=1.0)
    observed = y[t == 1].mean() - y[t == 0].mean()
    assert everyone["uplift"] == pytest.approx(observed) and everyone["n_targeted"] == len(world)
    assert policy_value(truth, t, y, share=1.0)["uplift"] == pytest.approx(observed)
    best, random = policy_value(truth, t, y, share=0.3), policy_value(None, t, y, share=0.3)
    assert best["n_targeted"] == random["n_targeted"] == round(0.3 * len(world))
    assert best["low"] > random["high"]
    assert best["incremental"] == pytest.approx(best["uplift"] * best["n_targeted"])
    with pytest.raises(ValueError, match="share"):
        policy_value(truth, t, y, share=0.0)


def test_bad_arrays_are_refused() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        qini_coefficient(np.zeros(3), np.zeros(2), np.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        qini_coefficient(np.array([np.nan, 1.0]), np.array([1, 0]), np.array([1.0, 0.0]))
