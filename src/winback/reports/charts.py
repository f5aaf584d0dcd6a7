"""SVG chart geometry: the return-rate bars with their intervals and the retention curves (the template draws them)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from winback.reports.formatting import fmt_days, fmt_pct, fmt_range
from winback.reports.stats import wilson_interval

ARM_LABELS: dict[str, str] = {"treatment": "Treated", "holdout": "Holdout"}


def _nice_max(value: float) -> tuple[float, float]:
    """An axis maximum ≥ value on a 1/2/2.5/5 × 10^k grid and its tick step (about 4-5 ticks)."""
    if not math.isfinite(value) or value <= 0:
        return 1.0, 0.25
    raw_step = value / 4.0
    power = 10 ** math.floor(math.log10(raw_step))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw_step)
    return step * math.ceil(value / step - 1e-9), step


@dataclass(frozen=True)
class Plot:
    """A chart's size and margins (SVG units), and the plotting area they leave."""

    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int

    @property
    def x0(self) -> float:
        """Left edge of the plotting area."""
        return self.left

    @property
    def x1(self) -> float:
        """Right edge of the plotting area."""
        return self.width - self.right

    @property
    def y0(self) -> float:
        """Bottom of the plotting area (SVG's y grows downward)."""
        return self.height - self.bottom

    @property
    def y1(self) -> float:
        """Top of the plotting area."""
        return self.top


def _y_ticks(plot: Plot, ymax: float, step: float) -> list[dict[str, Any]]:
    n = round(ymax / step)
    return [
        {"y": round(plot.y0 - (plot.y0 - plot.y1) * (i * step) / ymax, 2), "label": fmt_pct(i * step)}
        for i in range(n + 1)
    ]


def return_rate_chart(overall: dict[str, Any], confidence: float) -> dict[str, Any]:
    """The return-rate bar chart: each arm's rate with its Wilson interval, on a rounded axis."""
    plot = Plot(width=420, height=320, left=56, right=16, top=24, bottom=48)
    arms = []
    for arm, suffix in (("treatment", "treated"), ("holdout", "holdout")):
        rate, n = float(overall[f"rate_{suffix}"]), int(overall[f"n_{suffix}"])
        # Wilson interval of the arm's own rate; rate * n recovers the count of returners.
        low, high = wilson_interval(rate * n, n, confidence=confidence) if n else (np.nan, np.nan)
        arms.append(
            {
                "arm": arm,
                "label": ARM_LABELS[arm],
                "rate": rate,
                "n": n,
                "low": float(low),
                "high": float(high),
            }
        )
    candidates = [v for a in arms for v in (a["rate"], a["high"]) if math.isfinite(v)]
    top_value = max([*candidates, 0.0])
    ymax, step = _nice_max(top_value)
    span = plot.y0 - plot.y1
    slot = (plot.x1 - plot.x0) / len(arms)
    bar_w = slot * 0.5

    def y(v: float) -> float:
        return round(plot.y0 - span * v / ymax, 2)

    bars = []
    for i, a in enumerate(arms):
        cx = plot.x0 + slot * (i + 0.5)
        rate = a["rate"] if math.isfinite(a["rate"]) else 0.0
        has_ci = math.isfinite(a["low"]) and math.isfinite(a["high"])
        bars.append(
            {
                **a,
                "x": round(cx - bar_w / 2, 2),
                "cx": round(cx, 2),
                "width": round(bar_w, 2),
                "y": y(rate),
                "height": round(plot.y0 - y(rate), 2),
                "has_ci": has_ci,
                "y_low": y(a["low"]) if has_ci else 0,
                "y_high": y(a["high"]) if has_ci else 0,
                "cap": round(bar_w / 4, 2),
                "rate_text": fmt_pct(a["rate"]),
                "ci_text": fmt_range(a["low"], a["high"], fmt_pct),
            }
        )
    return {"plot": plot, "bars": bars, "yticks": _y_ticks(plot, ymax, step)}


def retention_chart(
    retention: pd.DataFrame, window_days: int | None = None, observed_days: float | None = None
) -> dict[str, Any]:
    """Curves up to the last tracking, on an axis spanning the whole window when it is longer.

    While the window is open the days not yet observed are shaded, so the curves visibly stop for lack
    of data rather than running flat to the end as if nobody came back after the last tracking.
    """
    missing = [c for c in ("arm", "day", "share") if c not in retention.columns]
    if missing:
        raise ValueError(f"retention: missing column(s) {', '.join(map(repr, missing))}")
    plot = Plot(width=640, height=320, left=56, right=110, top=24, bottom=48)
    max_day = max(float(retention["day"].max()) if len(retention) else 0.0, float(window_days or 0), 1.0)
    ymax, step = _nice_max(float(retention["share"].max()) if len(retention) else 0.0)
    span_x, span_y = plot.x1 - plot.x0, plot.y0 - plot.y1
    curves = []
    for arm in ("treatment", "holdout"):
        part = retention[retention["arm"] == arm].sort_values("day")
        if part.empty:
            continue
        xs = plot.x0 + span_x * part["day"].to_numpy(dtype=float) / max_day
        ys = plot.y0 - span_y * part["share"].to_numpy(dtype=float) / ymax
        points = " ".join(f"{x:.2f},{y:.2f}" for x, y in zip(xs, ys, strict=True))
        last = part.iloc[-1]
        curves.append(
            {
                "arm": arm,
                "label": ARM_LABELS[arm],
                "points": points,
                "end_x": round(float(xs[-1]) + 6, 2),
                "end_y": round(float(ys[-1]) + 4, 2),
                "end_text": f"{ARM_LABELS[arm]} {fmt_pct(last['share'])}",
                "last_day": int(last["day"]),
            }
        )
    x_step = next(s for s in (1, 2, 5, 7, 10, 14, 15, 30, 60, 90, 180, 365, 10**9) if max_day / s <= 8)
    xticks = [
        {"x": round(plot.x0 + span_x * d / max_day, 2), "label": str(d)} for d in range(0, int(max_day) + 1, x_step)
    ]
    unobserved = None
    if window_days is not None and observed_days is not None and observed_days < window_days:
        x = round(plot.x0 + span_x * max(observed_days, 0.0) / max_day, 2)
        unobserved = {"x": x, "width": round(plot.x1 - x, 2), "from_day": fmt_days(observed_days)}
    return {
        "plot": plot,
        "curves": curves,
        "yticks": _y_ticks(plot, ymax, step),
        "xticks": xticks,
        "unobserved": unobserved,
    }
