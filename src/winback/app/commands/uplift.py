"""`winback uplift fit|score`: an uplift model from any randomized experiment file, and scores from it.

Heavy imports (scikit-learn) happen inside the commands, so `winback --help` stays quick. Bad input raises a
WinbackError (DataError/ConfigError), which the console script prints as one line with exit code 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

uplift_app = typer.Typer(
    help="Uplift models from randomized experiments: who responds to being contacted.", no_args_is_help=True
)


def _num(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


@uplift_app.command("fit")
def fit(
    experiment: Annotated[Path, typer.Option("--experiment", help="CSV: one row per customer of the experiment")],
    id_column: Annotated[str, typer.Option("--id", help="customer id column")],
    treatment: Annotated[str, typer.Option("--treatment", help="treatment column: 1 treated, 0 control")],
    outcome: Annotated[str, typer.Option("--outcome", help="outcome column: 0/1 (returned) or a number (spend)")],
    out: Annotated[Path, typer.Option("--out", help="model folder to write (model.joblib + manifest.json)")],
    features: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--features", help="comma-separated feature columns; default: every other column"),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="random seed of the splits")] = 0,
) -> None:
    """Fit an uplift model, chosen by cross-validated Qini and checked on held-out rows."""
    from winback.segments.uplift.files import fit_experiment_file, parse_features

    manifest = fit_experiment_file(experiment, id_column, treatment, outcome, parse_features(features), out, seed=seed)
    report = manifest["report"]
    typer.echo(f"learner: {manifest['learner']['name']}")
    typer.echo(
        f"cross-validated Qini {_num(report['cv_qini'])} (± {_num(report['cv_qini_se'])}) on "
        f"{report['n_selection']:,} training rows; held-out Qini {_num(report['validation_qini'])} "
        f"(95% CI {_num(report['validation_qini_low'])} to {_num(report['validation_qini_high'])}) on "
        f"{report['n_validation']:,} rows (0 = random targeting)"
    )
    typer.echo(f"model: {out} ({len(manifest['features'])} features)")


@uplift_app.command("score")
def score(
    model: Annotated[Path, typer.Option("--model", help="model folder written by `winback uplift fit`")],
    customers: Annotated[Path, typer.Option("--customers", help="CSV of customers with the model's features")],
    id_column: Annotated[str, typer.Option("--id", help="customer id column")],
    out: Annotated[Path, typer.Option("--out", help="CSV to write: the id and `uplift`, one row per input row")],
) -> None:
    """Predicted uplift (treated minus control outcome) for every customer, in the input's order."""
    from winback.segments.uplift.files import score_file

    rows = score_file(model, customers, id_column, out)
    typer.echo(f"{rows:,} customers scored: {out}")
