"""The report's uplift section, laid out: the Qini chart's geometry and its three tables, numbers formatted.

Element ids (a contract with the tests, as in `reports.html`): section ``uplift``; ``uplift-qini`` (the
coefficient and its interval) or ``uplift-note`` (why there is none); ``<svg class="chart" id="chart-qini">``
with ``<polyline class="curve" data-series="model">`` and ``data-series="random"``; tables
``table-uplift-deciles``, ``table-uplift-policies`` and ``table-uplift-runs``; where the run predicted
spend, ``uplift-spend-qini`` and the table ``table-uplift-revenue`` (its CSV: ``uplift_policy_revenue.csv``).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from winback.reports.charts import Plot, _nice_max
from winback.reports.formatting import fmt_int, fmt_pct, fmt_pp, fmt_range, is_missing
from winback.reports.table_views import Cell, Header, TableView, _raw
from winback.reports.uplift_evaluation import UpliftEvaluation


def _signed_pp(x: Any) -> str:
    return f"{x * 100:+.1f}"


def qini_chart(curve: pd.DataFrame) -> dict[str, Any]:
    """Incremental returns against the share of the run's customers targeted: the model's ranking and random."""
    plot = Plot(width=640, height=320, left=64, right=110, top=24, bottom=48)
    values = pd.concat([curve["qini"], curve["random"]])
    low = float(values.min()) if len(values) else 0.0
    if len(values) and low > -0.03 * float(values.max()):
        low = 0.0  # a dip of a few customers below zero is drawn a few pixels under the axis, not given a tick
    top, step = _nice_max(float(values.max()) - min(low, 0.0) if len(values) else 0.0)
    bottom = -step * math.ceil(-low / step - 1e-9) if low < 0 else 0.0  # whole steps below zero, if any
    top = bottom + step * math.ceil((float(values.max()) - bottom) / step - 1e-9) if len(values) else top
    top = max(top, bottom + step)
    span_x, span_y = plot.x1 - plot.x0, plot.y0 - plot.y1

    def y(v: float) -> float:
        return round(plot.y0 - span_y * (v - bottom) / (top - bottom), 2)

    def points(series: pd.Series) -> str:
        xs = plot.x0 + span_x * curve["share"].to_numpy(dtype=float)
        return " ".join(f"{a:.2f},{y(float(b)):.2f}" for a, b in zip(xs, series.to_numpy(dtype=float), strict=True))

    ticks = []
    for i in range(round((top - bottom) / step) + 1):
        value = bottom + i * step
        ticks.append({"y": y(value), "label": f"{value:,.0f}" if step >= 1 else f"{value:,.2f}"})
    end = curve.iloc[-1] if len(curve) else None
    return {
        "plot": plot,
        "model": points(curve["qini"]) if len(curve) else "",
        "random": points(curve["random"]) if len(curve) else "",
        "zero_y": y(0.0),
        "yticks": ticks,
        "xticks": [{"x": round(plot.x0 + span_x * s, 2), "label": fmt_pct(s)} for s in (0, 0.25, 0.5, 0.75, 1.0)],
        "end_y": y(float(end["random"])) if end is not None else plot.y0,
    }


def _deciles(frame: pd.DataFrame, conf: str) -> TableView:
    headers = [Header("Decile (1 = highest\npredicted uplift)"), Header("Treated", "num"), Header("Held out", "num"),
               Header("Predicted\nuplift", "num"), Header(f"Observed uplift\n({conf} CI)", "num")]  # fmt: skip
    rows = [
        [
            Cell(str(int(r["decile"])), "decile", css="group"),
            Cell(fmt_int(r["n_treated"]), "n_treated", _raw(r["n_treated"]), css="num"),
            Cell(fmt_int(r["n_control"]), "n_control", _raw(r["n_control"]), css="num"),
            Cell(fmt_pp(r["predicted_uplift"]), "predicted_uplift", _raw(r["predicted_uplift"]), css="num"),
            Cell(fmt_pp(r["observed_uplift"]), "observed_uplift", _raw(r["observed_uplift"]),
                 sub=fmt_range(r["observed_uplift_low"], r["observed_uplift_high"], _signed_pp), css="num"),
        ]
        for r in frame.to_dict("records")
    ]  # fmt: skip
    return TableView("table-uplift-deciles", "Observed uplift by predicted-uplift decile", headers, rows)


def _policies(frame: pd.DataFrame, conf: str, revenue: bool = False) -> TableView:
    what = "revenue" if revenue else "returns"
    headers = [Header("Contacting"), Header("Policy"), Header("Customers\ncontacted", "num"),
               Header(f"Incremental {what} per\n1,000 contacted ({conf} CI)", "num")]  # fmt: skip
    shown = "{:+,.0f}" if revenue else "{:+.1f}"
    rows = [
        [
            Cell(f"top {fmt_pct(r['share'])}", "share", _raw(r["share"]), css="group"),
            Cell(str(r["policy"]), "policy", css="group"),
            Cell(fmt_int(r["n_targeted"]), "n_targeted", _raw(r["n_targeted"]), css="num"),
            Cell("—" if is_missing(r["per_1000"]) else shown.format(r["per_1000"]), "per_1000", _raw(r["per_1000"]),
                 sub=fmt_range(r["per_1000_low"], r["per_1000_high"], shown.format), css="num"),
        ]
        for r in frame.to_dict("records")
    ]  # fmt: skip
    if revenue:
        caption = ("Policy revenue at the same budget: by the model's expected value (return and spend uplift), "
                   "by the per-offer-kind (constant) lift, at random")  # fmt: skip
        return TableView("table-uplift-revenue", caption, headers, rows)
    caption = "Targeting at the same budget: by the uplift model, by the per-offer-kind (constant) lift, at random"
    return TableView("table-uplift-policies", caption, headers, rows)


def _runs(frame: pd.DataFrame, conf: str) -> TableView:
    headers = [Header("Run"), Header("As of"), Header("Treated", "num"), Header("Held out", "num"),
               Header(f"Qini coefficient\n({conf} CI)", "num")]  # fmt: skip
    rows = [
        [
            Cell(str(r["run_id"]), "run_id", css="group"),
            Cell(str(r["as_of"]), "as_of"),
            Cell(fmt_int(r["n_treated"]), "n_treated", _raw(r["n_treated"]), css="num"),
            Cell(fmt_int(r["n_holdout"]), "n_holdout", _raw(r["n_holdout"]), css="num"),
            Cell(f"{r['qini']:.4f}", "qini", _raw(r["qini"]),
                 sub=fmt_range(r["qini_low"], r["qini_high"], lambda v: f"{v:.4f}"), css="num"),
        ]
        for r in frame.to_dict("records")
    ]  # fmt: skip
    caption = "The latest closed runs decided with the uplift model (up to 12), each on its own holdout"
    return TableView("table-uplift-runs", caption, headers, rows)


def uplift_view(evaluation: UpliftEvaluation, conf: str) -> dict[str, Any]:
    """What the template's uplift section shows."""
    scored = evaluation.note is None
    return {
        "note": evaluation.note,
        "qini": f"{evaluation.qini:.4f}" if scored else None,
        "qini_value": evaluation.qini,
        "qini_ci": fmt_range(evaluation.qini_low, evaluation.qini_high, lambda v: f"{v:.4f}"),
        "n_treated": fmt_int(evaluation.n_treated),
        "n_holdout": fmt_int(evaluation.n_holdout),
        "above_random": scored and evaluation.qini_low > 0,
        "chart": qini_chart(evaluation.curve) if scored else None,
        "deciles": _deciles(evaluation.deciles, conf) if scored else None,
        "policies": _policies(evaluation.policies, conf) if scored else None,
        "runs": _runs(evaluation.runs, conf) if len(evaluation.runs) else None,
        "spend_qini": None if not scored or is_missing(evaluation.spend_qini) else f"{evaluation.spend_qini:,.2f}",
        "spend_qini_value": evaluation.spend_qini,
        "spend_qini_ci": fmt_range(evaluation.spend_qini_low, evaluation.spend_qini_high, lambda v: f"{v:,.2f}"),
        "revenue": _policies(evaluation.revenue_policies, conf, True) if len(evaluation.revenue_policies) else None,
    }


def uplift_tables(evaluation: UpliftEvaluation) -> dict[str, pd.DataFrame]:
    """The section's tables for the report's CSV/JSON twins (only those with rows)."""
    tables = {"uplift_qini_curve": evaluation.curve, "uplift_deciles": evaluation.deciles,
              "uplift_policies": evaluation.policies, "uplift_runs": evaluation.runs,
              "uplift_policy_revenue": evaluation.revenue_policies}  # fmt: skip
    return {name: frame for name, frame in tables.items() if len(frame)}
