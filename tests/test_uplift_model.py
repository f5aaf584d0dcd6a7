"""The uplift model on a simulated randomized campaign whose true effects are known.

The world (segments/uplift/simulate.py) mixes persuadables, sure things, lost causes and sleeping dogs with
probabilities that depend on the features. The model is fitted on one sample and judged on a fresh one, as
the next campaign's holdout would judge it: against random targeting (the spread of the Qini coefficient of
random scores on the same sample) and against targeting by the truth.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from winback.errors import ConfigError, DataError
from winback.segments.uplift import fit_uplift, policy_value, qini_coefficient
from winback.segments.uplift.experiment import MIN_ARM_ROWS, check_experiment
from winback.segments.uplift.features import MAX_LEVELS, FeatureEncoder
from winback.segments.uplift.learners import Candidate, Linear, Trees
from winback.segments.uplift.selection import choose
from winback.segments.uplift.simulate import KINDS, simulate_experiment
from winback.segments.uplift.store import load_model, save_model

TRUTH = ["kind", "true_uplift", "spend"]


@pytest.fixture(scope="module")
def fitted() -> tuple:
    train = simulate_experiment(20_000, seed=11, treated_share=0.7)
    model, report = fit_uplift(train.drop(columns=TRUTH), "treatment", "returned", exclude=("customer_id",))
    return model, report


@pytest.fixture(scope="module")
def fresh() -> pd.DataFrame:
    return simulate_experiment(20_000, seed=111, treated_share=0.5)


def _random_spread(sample: pd.DataFrame, outcome: str) -> float:
    rng = np.random.default_rng(0)
    return float(np.std([qini_coefficient(rng.random(len(sample)), sample["treatment"], sample[outcome])
                         for _ in range(20)]))  # fmt: skip


def test_the_world_has_all_four_kinds_and_a_small_average_effect() -> None:
    world = simulate_experiment(20_000, seed=1)
    assert set(world["kind"]) == set(KINDS)
    assert world["true_uplift"].min() < -0.05 < 0.1 < world["true_uplift"].max()  # sleeping dogs and persuadables
    by_kind = world.groupby(["kind", "treatment"])["returned"].mean().unstack()
    assert (by_kind[1] - by_kind[0])["sleeping_dog"] < 0 < (by_kind[1] - by_kind[0])["persuadable"]


def test_the_chosen_model_ranks_fresh_customers_far_better_than_random(fitted: tuple, fresh: pd.DataFrame) -> None:
    model, report = fitted
    score = model.predict(fresh)
    qini = qini_coefficient(score, fresh["treatment"], fresh["returned"])
    oracle = qini_coefficient(fresh["true_uplift"], fresh["treatment"], fresh["returned"])
    assert qini > 5 * _random_spread(fresh, "returned")
    assert qini > 0.5 * oracle
    assert np.corrcoef(score, fresh["true_uplift"])[0, 1] > 0.6
    # the report's own held-out check agrees: its interval excludes random targeting
    assert report.n_validation == 5_000 and report.validation_qini_low > 0
    assert report.cv["chosen"].sum() == 1 and report.chosen in set(report.cv["name"])


def test_targeting_by_predicted_uplift_beats_random_targeting_at_the_same_budget(
    fitted: tuple, fresh: pd.DataFrame
) -> None:
    model, report = fitted
    score = model.predict(fresh)
    targeted = policy_value(score, fresh["treatment"], fresh["returned"], share=0.3)
    random = policy_value(None, fresh["treatment"], fresh["returned"], share=0.3)
    assert targeted["low"] > random["high"]
    # and the fitted model would not contact those it predicts to be pushed away: they are mostly sleeping dogs
    pushed = fresh.loc[score < -0.03, "kind"]
    assert len(pushed) > 100 and (pushed == "sleeping_dog").mean() > 0.5
    uplift_rows = report.targeting[report.targeting["policy"] == "uplift"]
    random_rows = report.targeting[report.targeting["policy"] == "random"]
    assert (uplift_rows["per_1000"].to_numpy() > random_rows["per_1000"].to_numpy()).all()


def test_a_spend_outcome_is_modelled_too(fresh: pd.DataFrame) -> None:
    train = simulate_experiment(20_000, seed=12, treated_share=0.7)
    model, report = fit_uplift(train.drop(columns=["kind", "true_uplift", "returned"]), "treatment", "spend",
                               exclude=("customer_id",))  # fmt: skip
    assert report.outcome_kind == "numeric" and not model.binary
    qini = qini_coefficient(model.predict(fresh), fresh["treatment"], fresh["spend"])
    assert qini > 5 * _random_spread(fresh, "spend")


def test_the_simplest_candidate_within_one_standard_error_is_chosen() -> None:
    cv = pd.DataFrame({
        "candidate": [0, 0, 0, 1, 1, 1, 2, 2, 2],
        "name": ["simple"] * 3 + ["middle"] * 3 + ["best"] * 3,
        "fold": [0, 1, 2] * 3,
        "qini": [0.001, 0.002, 0.003, 0.009, 0.010, 0.011, 0.009, 0.011, 0.013],
    })  # fmt: skip
    chosen, summary = choose(cv)
    assert chosen == 1  # best: mean 0.011, se 0.002/√3 = 0.00115; middle (0.010) is within reach, simple is not
    assert summary.loc[summary["chosen"], "name"].tolist() == ["middle"]
    cv.loc[cv["candidate"] == 1, "qini"] = [0.004, 0.005, 0.006]
    assert choose(cv)[0] == 2


def test_scoring_keeps_order_and_count_and_copes_with_missing_and_unseen_values(fitted: tuple) -> None:
    model, _ = fitted
    customers = simulate_experiment(300, seed=4).drop(columns=["treatment", "returned", *TRUTH])
    customers.loc[0:9, "country"] = "XX"  # never seen in training
    customers.loc[10:19, ["monetary", "recency_days", "channel"]] = np.nan
    customers.loc[20, "customer_id"] = customers.loc[21, "customer_id"]  # a duplicate id is scored twice
    scores = model.score(customers.iloc[::-1], "customer_id")
    assert scores["customer_id"].tolist() == customers["customer_id"].iloc[::-1].tolist()
    assert np.isfinite(scores["uplift"]).all()
    assert scores["uplift"].tolist() == pytest.approx(model.predict(customers)[::-1].tolist())


def test_validation_by_group_holds_out_whole_runs() -> None:
    train = simulate_experiment(6_000, seed=13).drop(columns=TRUTH)
    train["run"] = np.arange(len(train)) % 8
    _, report = fit_uplift(train, "treatment", "returned", exclude=("customer_id",), groups="run",
                           validation_share=0.25, candidates=(Candidate("t", Linear(1e-2)),))  # fmt: skip
    assert report.n_validation == 2 * len(train) // 8  # two of the eight runs, whole
    with pytest.raises(DataError, match="at least 2 groups"):
        fit_uplift(train.assign(run=1), "treatment", "returned", exclude=("customer_id",), groups="run")


def test_a_saved_model_scores_the_same_after_loading(fitted: tuple, tmp_path: Path) -> None:
    model, report = fitted
    manifest = save_model(model, report, tmp_path / "m", source="test")
    loaded, read = load_model(tmp_path / "m")
    customers = simulate_experiment(500, seed=5)
    assert loaded.predict(customers).tolist() == model.predict(customers).tolist()
    assert read == manifest and read["learner"]["name"] == report.chosen
    kinds = {f["name"]: f["kind"] for f in read["features"]}
    assert kinds["country"] == kinds["channel"] == "categorical" and kinds["recency_days"] == "numeric"
    assert read["cv_qini"] == pytest.approx(report.cv_qini)
    (tmp_path / "m" / "model.joblib").write_bytes(b"not a pickle")
    with pytest.raises(ConfigError, match="cannot be loaded"):
        load_model(tmp_path / "m")


def test_the_encoder_keeps_frequent_levels_and_names_a_bad_number() -> None:
    # 50 large levels (60 rows each), 20 that would fit but are beyond the 50 largest (30), 20 too rare (5)
    cities = [f"big{i}" for i in range(MAX_LEVELS) for _ in range(60)]
    cities += [f"mid{i}" for i in range(20) for _ in range(30)] + [f"rare{i}" for i in range(20) for _ in range(5)]
    frame = pd.DataFrame({"city": cities, "x": np.arange(len(cities), dtype=float)})
    encoder = FeatureEncoder.fit(frame, ["city", "x"])
    assert encoder.numeric == ("x",) and encoder.categorical == ("city",)
    assert set(encoder.levels["city"]) == {f"big{i}" for i in range(MAX_LEVELS)}
    codes = encoder.tree_matrix(pd.DataFrame({"city": ["big3", "mid1", None], "x": [1.0, 2.0, 3.0]}))[:, 1]
    assert codes[0] == encoder.levels["city"].index("big3") and codes[1] == MAX_LEVELS and np.isnan(codes[2])
    onehot = encoder.linear_matrix(pd.DataFrame({"city": ["mid1", None], "x": [1.0, np.nan]}))[:, 1:]
    assert onehot[0].sum() == onehot[0, MAX_LEVELS] == 1.0 and onehot[1].sum() == 0.0
    with pytest.raises(DataError, match=r"row 2: feature 'x' is 'lots', not a number"):
        encoder.check(pd.DataFrame({"city": ["a", "b"], "x": ["1.5", "lots"]}))
    with pytest.raises(DataError, match=r"missing feature column\(s\) the model needs: 'city'"):
        encoder.check(pd.DataFrame({"x": [1.0]}))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.assign(treatment=f["treatment"].replace(1, 2)), "treatment column 'treatment' is '2', not 0 or 1"),
        (lambda f: f.assign(returned=f["returned"].astype(object).where(f.index != 3, "yes")), "row 4: outcome column"),
        (lambda f: f[(f["treatment"] == 1) | (f.index < 60)], f"needs at least {MIN_ARM_ROWS} per arm"),
    ],
)
def test_an_experiment_that_cannot_be_believed_is_refused(change, message: str) -> None:  # type: ignore[no-untyped-def]
    frame = simulate_experiment(400, seed=6)
    check_experiment(frame, "treatment", "returned")  # as simulated, it is fine
    check_experiment(frame.assign(treatment=frame["treatment"] == 1), "treatment", "returned")  # booleans too
    with pytest.raises(DataError, match=message):
        check_experiment(change(frame), "treatment", "returned")


def test_trees_and_linear_learners_all_fit_on_tiny_arms() -> None:
    """An arm where nobody returned still gives a model (a constant), not a scikit-learn error."""
    frame = simulate_experiment(400, seed=7).drop(columns=TRUTH)
    frame.loc[frame["treatment"] == 0, "returned"] = 0
    for candidate in (Candidate("t", Trees()), Candidate("x", Trees()), Candidate("dr", Linear(1e-2))):
        model, _ = fit_uplift(frame, "treatment", "returned", exclude=("customer_id",), candidates=(candidate,))
        assert np.isfinite(model.predict(frame)).all()


def test_without_held_out_rows_the_model_still_saves(tmp_path: Path) -> None:
    frame = simulate_experiment(1_000, seed=8).drop(columns=TRUTH)
    frame.loc[:20, "monetary"] = np.inf  # an infinity is a missing value, not a crash
    model, report = fit_uplift(frame, "treatment", "returned", exclude=("customer_id",), validation_share=0.0,
                               candidates=(Candidate("t", Linear(1e-2)),))  # fmt: skip
    assert report.n_validation == 0 and np.isnan(report.validation_qini)
    manifest = save_model(model, report, tmp_path / "m")
    assert manifest["validation_qini"] is None and manifest["report"]["validation_deciles"] == []
    assert np.isfinite(model.predict(frame)).all()


def test_a_control_arm_with_a_single_returner_still_splits() -> None:
    """Arm × outcome cells too small for the folds fall back to stratifying by arm alone."""
    frame = simulate_experiment(2_000, seed=9).drop(columns=TRUTH)
    control = frame.index[frame["treatment"] == 0]
    frame.loc[control, "returned"] = 0
    frame.loc[control[0], "returned"] = 1
    _, report = fit_uplift(frame, "treatment", "returned", exclude=("customer_id",),
                           candidates=(Candidate("t", Linear(1e-2)),))  # fmt: skip
    assert report.n_validation == 500


def test_trees_fit_when_a_column_has_no_value_in_one_arm() -> None:
    """A feature present only among treated customers (an offer's amount, say) leaves the control arm's trees a
    column of nothing but missing values: histogram gradient boosting used to fail on it."""
    rng = np.random.default_rng(3)
    n = 4000
    t = rng.random(n) < 0.5
    x = np.column_stack([rng.normal(size=n), np.where(t, rng.normal(size=n), np.nan)])
    y = (rng.random(n) < 0.2 + 0.1 * t).astype(float)
    learner = Candidate("t", Trees()).build(True, np.zeros(2, dtype=bool))
    learner.fit(x, t, y, np.full(n, 0.5))
    assert np.isfinite(learner.predict(x)).all()
