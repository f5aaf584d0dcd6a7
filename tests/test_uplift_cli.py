"""`winback uplift fit|score` through the real console script: a round trip, and every bad input's one line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from winback.app.cli import main
from winback.segments.uplift.simulate import simulate_experiment
from winback.segments.uplift.store import load_model

TRUTH = ["kind", "true_uplift", "spend"]


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["winback", *args])
    with pytest.raises(SystemExit) as ended:
        main()
    return int(ended.value.code or 0), " ".join(capsys.readouterr().out.split())


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("uplift")
    world = simulate_experiment(3_000, seed=31)
    world["customer_id"] = "0" + world["customer_id"].str[1:]  # leading zeros must survive the round trip
    world.drop(columns=TRUTH).to_csv(folder / "experiment.csv", index=False)
    customers = simulate_experiment(700, seed=32).drop(columns=["treatment", "returned", *TRUTH])
    customers = customers.sample(frac=1.0, random_state=1)  # not in id order: the output must keep this order
    customers["customer_id"] = "0" + customers["customer_id"].str[1:]
    customers.loc[customers.index[:5], "country"] = "ZZ"
    customers.to_csv(folder / "customers.csv", index=False)
    return {"folder": folder, "experiment": folder / "experiment.csv", "customers": folder / "customers.csv"}


def fit_args(experiment: Path, out: Path, *extra: str) -> list[str]:
    return ["uplift", "fit", "--experiment", str(experiment), "--id", "customer_id", "--treatment", "treatment",
            "--outcome", "returned", "--out", str(out), *extra]  # fmt: skip


def test_fit_then_score_round_trip(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir = tmp_path / "model"
    code, out = run(monkeypatch, capsys, *fit_args(files["experiment"], model_dir))
    assert code == 0, out
    assert "learner:" in out and "held-out Qini" in out
    manifest = json.loads((model_dir / "manifest.json").read_text())
    names = {f["name"] for f in manifest["features"]}
    assert names == {"recency_days", "frequency", "monetary", "tenure_days", "severity", "channel", "country",
                     "past_contacts"}  # fmt: skip
    assert manifest["id"] == "customer_id" and manifest["learner"]["name"] and manifest["cv_qini"] is not None

    scores_path = tmp_path / "scores.csv"
    code, out = run(monkeypatch, capsys, "uplift", "score", "--model", str(model_dir), "--customers",
                    str(files["customers"]), "--id", "customer_id", "--out", str(scores_path))  # fmt: skip
    assert code == 0, out
    assert out == f"700 customers scored: {scores_path}"
    scores = pd.read_csv(scores_path, dtype={"customer_id": str})
    customers = pd.read_csv(files["customers"], dtype={"customer_id": str})
    assert list(scores.columns) == ["customer_id", "uplift"]
    assert scores["customer_id"].tolist() == customers["customer_id"].tolist()
    assert scores["customer_id"].str.startswith("0").all()
    model, _ = load_model(model_dir)
    assert scores["uplift"].to_numpy() == pytest.approx(model.predict(customers), abs=1e-6)


def test_named_features_only(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(monkeypatch, capsys, *fit_args(files["experiment"], tmp_path / "m", "--features",
                                                    "recency_days, country,severity"))  # fmt: skip
    assert code == 0, out
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert {f["name"] for f in manifest["features"]} == {"recency_days", "country", "severity"}
    # scoring needs only those columns
    lean = pd.read_csv(files["customers"], dtype={"customer_id": str})[["customer_id", "recency_days", "country",
                                                                         "severity"]]  # fmt: skip
    lean.to_csv(tmp_path / "lean.csv", index=False)
    code, out = run(monkeypatch, capsys, "uplift", "score", "--model", str(tmp_path / "m"), "--customers",
                    str(tmp_path / "lean.csv"), "--id", "customer_id", "--out", str(tmp_path / "s.csv"))  # fmt: skip
    assert code == 0, out


def _experiment_variant(files: dict[str, Path], tmp_path: Path, change) -> Path:  # type: ignore[no-untyped-def]
    frame = pd.read_csv(files["experiment"], dtype={"customer_id": str})
    path = tmp_path / "bad.csv"
    change(frame).to_csv(path, index=False)
    return path


def _set(column: str, row: int, value: object):  # type: ignore[no-untyped-def]
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value
        return frame

    return change


@pytest.mark.parametrize(
    ("change", "extra", "expected"),
    [
        (
            _set("treatment", 16, 2),
            (),
            "error: bad.csv row 17 (id '00000016'): treatment column 'treatment' is '2', not 0 or 1",
        ),
        (
            _set("treatment", 4, "yes"),
            (),
            "error: bad.csv row 5 (id '00000004'): treatment column 'treatment' is 'yes', not 0 or 1",
        ),
        (
            _set("treatment", 8, None),
            (),
            "error: bad.csv row 9 (id '00000008'): treatment column 'treatment' is missing, not 0 or 1",
        ),
        (
            lambda f: f[(f["treatment"] == 1) | (f.index < 80)],
            (),
            "error: {path}: only {n} control (0) rows in 'treatment': an uplift model needs at least 50 per arm",
        ),
        (
            _set("returned", 3, "abc"),
            (),
            "error: bad.csv row 4 (id '00000003'): outcome column 'returned' is 'abc', not a number",
        ),
        (lambda f: f.drop(columns=["treatment"]), (), "error: {path}: no column(s) 'treatment' (the columns are:"),
        (lambda f: f, ("--features", "recency_days,nope"), "error: {path}: no feature column(s) 'nope'"),
        (lambda f: f, ("--features", "recency_days,,country"), "error: --features 'recency_days,,country': an empty"),
        (lambda f: f, ("--features", "recency_days,returned"), "error: {path}: feature(s) 'returned' cannot also be"),
    ],
)
def test_a_bad_experiment_gets_one_line_and_exit_2(  # type: ignore[no-untyped-def]
    change, extra, expected: str, files, tmp_path: Path, monkeypatch, capsys
) -> None:
    path = _experiment_variant(files, tmp_path, change)
    frame = pd.read_csv(path)
    expected = expected.format(path=path, n=int((frame["treatment"] == 0).sum()) if "treatment" in frame else 0)
    code, out = run(monkeypatch, capsys, *fit_args(path, tmp_path / "model", *extra))
    assert code == 2
    assert out.startswith(expected), out
    assert "Traceback" not in out and not (tmp_path / "model").exists()


def test_missing_files_and_columns_at_fit(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(monkeypatch, capsys, *fit_args(tmp_path / "none.csv", tmp_path / "m"))
    assert (code, out) == (2, f"error: {tmp_path / 'none.csv'}: no such file")
    args = fit_args(files["experiment"], tmp_path / "m")
    args[args.index("--id") + 1] = "cid"
    code, out = run(monkeypatch, capsys, *args)
    assert code == 2 and out.startswith(f"error: {files['experiment']}: no column(s) 'cid'")


@pytest.fixture(scope="module")
def model_dir(files: dict[str, Path]) -> Path:
    from winback.segments.uplift.files import fit_experiment_file

    out = files["folder"] / "model"
    fit_experiment_file(files["experiment"], "customer_id", "treatment", "returned", None, out)
    return out


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda f: f.drop(columns=["country", "frequency"]),
            "error: {path}: missing feature column(s) the model needs: 'frequency', 'country'",
        ),
        (lambda f: f.drop(columns=["customer_id"]), "error: {path}: no column(s) 'customer_id'"),
        (
            _set("frequency", 9, "many"),
            "error: bad.csv row 10 (id '{id9}'): feature 'frequency' is 'many', not a number",
        ),
    ],
)
def test_a_bad_customer_file_gets_one_line_and_exit_2(  # type: ignore[no-untyped-def]
    change, expected: str, files, model_dir: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    customers = pd.read_csv(files["customers"], dtype={"customer_id": str})
    path = tmp_path / "bad.csv"
    change(customers.copy()).to_csv(path, index=False)
    out_file = tmp_path / "scores.csv"
    code, out = run(monkeypatch, capsys, "uplift", "score", "--model", str(model_dir), "--customers", str(path),
                    "--id", "customer_id", "--out", str(out_file))  # fmt: skip
    assert code == 2
    assert out.startswith(expected.format(path=path, id9=customers["customer_id"].iloc[9])), out
    assert not out_file.exists()


def test_scoring_without_a_model_is_refused(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(monkeypatch, capsys, "uplift", "score", "--model", str(tmp_path / "nothing"), "--customers",
                    str(files["customers"]), "--id", "customer_id", "--out", str(tmp_path / "s.csv"))  # fmt: skip
    assert code == 2 and out.startswith(f"error: no uplift model in {tmp_path / 'nothing'}")
