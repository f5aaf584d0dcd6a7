"""The campaign report as ONE self-contained HTML file, plus CSV/JSON twins of every table.

The HTML is mailed around and opened from disk, often offline, so it references nothing outside
itself: CSS is inline, charts are inline SVG (geometry in `reports.charts`; no JS, no web fonts, no
images). Numbers are formatted in Python (`reports.formatting`, tables as `reports.table_views`) and the
Jinja2 template only lays them out, with autoescaping on (group names come from customer data) and
StrictUndefined (a typo in the template fails loudly).

Stable element ids for browser tests:

* sections: ``headline``, ``charts``, ``breakdowns``, ``root-causes`` (only with root causes),
  ``notes`` (only with notes), ``methods``
* headline values: ``headline-campaign``, ``headline-period``, ``headline-customers``,
  ``headline-rate-treated``, ``headline-rate-holdout``, ``headline-abs-lift``,
  ``headline-abs-lift-ci``, ``headline-rel-lift``, ``headline-incremental-revenue``,
  ``headline-cost``, ``headline-roi``, ``headline-warning`` (only when underpowered),
  ``headline-window`` (only while the attribution window is still open: :func:`window_status`)
* charts: ``<svg class="chart" id="chart-return-rate">`` with ``<rect class="bar" data-arm=...>``
  and ``<g class="error-bar" data-arm=...>``; ``<svg class="chart" id="chart-retention">`` with
  ``<polyline class="curve" data-arm=...>`` and, while the window is open, ``<rect class="unobserved">``
  over the days not observed yet (the x axis spans the whole window, the curves stop where data stop)
* tables: ``table-lift-overall``, ``table-lift-<name>`` per breakdown (name lower-cased, runs of
  other characters turned into '-': ``offer_kind`` → ``table-lift-offer-kind``), ``table-root-causes``;
  every ``<td>`` carries ``data-col`` (the frame column) and, for numbers, ``data-value`` (raw value).
  Lift tables fold columns to fit a 1366 px screen (the CSV/JSON twins keep every column): a cell's
  ``<span class="v">`` shows the value of its ``data-col`` and an optional ``<span class="sub">`` a
  second line: ``rate_treated`` / ``rate_holdout`` the arm size ("of 1,234"), ``abs_lift`` /
  ``rel_lift`` / ``incr_revenue_per_customer`` the interval ("+2.0 to +6.2", money with symbols), and
  ``mde`` "⚠ underpowered" when the row has a warning (that ``<td>`` also gets class ``warn``).
  ``cost`` is offer_cost + message_cost. Breakdown tables state the warnings' reasons once, in a
  ``<span class="table-note">`` in the caption; the overall table leaves that to ``headline-warning``.
  Root-cause columns beyond :data:`~reports.table_views.ROOT_CAUSE_COLUMNS` are formatted by their name:
  ``*_cost`` as money, ``*_rate`` / ``*_share`` as percentages, anything else as text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from winback.reports.charts import retention_chart, return_rate_chart
from winback.reports.formatting import fmt_days, fmt_int, fmt_pct, fmt_pp, fmt_range, is_missing, money_formatter, slug
from winback.reports.table_views import delivery_view, lift_table_view, root_cause_view
from winback.reports.uplift_evaluation import UpliftEvaluation
from winback.reports.uplift_views import uplift_tables, uplift_view
from winback.reports.variant_comparison import VariantComparison
from winback.reports.variant_views import variants_view
from winback.warehouse.returns import window_closed

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"


@dataclass
class ReportData:
    """Everything the report shows; the frames come from :mod:`reports.stats` / :mod:`reports.retention`.

    ``overall`` is a one-row :func:`~reports.stats.lift_table` frame (``by=None``); ``breakdowns``
    maps a name ('segment', 'channel', 'offer_kind', 'failure_category', ...) to a ``lift_table``
    frame grouped by that dimension; ``retention`` is :func:`~reports.retention.retention_curve`
    output; ``root_causes`` has :data:`~reports.table_views.ROOT_CAUSE_COLUMNS` (further columns are formatted
    by name).
    ``confidence`` must match the level the frames were computed with; it labels the intervals and
    sets the error bars of the return-rate chart.

    ``window_days`` is the attribution window the returns were tracked over and ``observed_days`` how
    much of it (in days, fractional) had passed when they were last tracked; while ``observed_days <
    window_days`` every number is partial (only the quick returners so far), and the report says so at
    the top. ``period_end`` is then the day of the last tracking, not the end of the window, and
    ``retention`` should run to ``ceil(observed_days)`` so that its last point holds every return counted.
    """

    title: str
    campaign_id: str
    generated_at: datetime
    overall: pd.DataFrame
    breakdowns: dict[str, pd.DataFrame]
    retention: pd.DataFrame
    root_causes: pd.DataFrame | None = None
    delivery: pd.DataFrame | None = None  # per channel: message outcomes and provider events (counts)
    notes: list[str] = field(default_factory=list)
    period_start: date | None = None
    period_end: date | None = None
    currency: str = "EUR"
    locale: str = "en_US"
    confidence: float = 0.95
    window_days: int | None = None
    observed_days: float | None = None
    uplift: UpliftEvaluation | None = None  # the uplift model checked on the run's holdout (reports.uplift_views)
    variants: VariantComparison | None = None  # message/offer variants compared (reports.variant_views)


def window_status(report: ReportData) -> str | None:
    """The "Window open: 7 of 30 days observed" banner, while the attribution window is still filling.

    A run reported a week into a 30-day window counts only the customers who came back that week: rates
    and revenue are lower than they will be and the lift can still move either way, which an analyst
    must see before any number.
    None once the window has been observed in full, or when the report does not say (hand-built data).
    """
    if report.window_days is None or report.observed_days is None:
        return None
    if window_closed(0.0, report.window_days, report.observed_days):  # observed_days counts from as_of
        return None
    return (
        f"Window open: {fmt_days(report.observed_days)} of {report.window_days} days observed. Return rates, "
        f"lift and revenue count only the returns so far and will change until day {report.window_days}."
    )


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _period_text(start: date | None, end: date | None) -> str:
    if start is None and end is None:
        return "not stated"
    return f"{start.isoformat() if start else '…'} to {end.isoformat() if end else '…'}"


def _overall_record(report: ReportData) -> dict[str, Any]:
    if len(report.overall) != 1:
        raise ValueError(f"overall must be a one-row lift_table frame, got {len(report.overall)} rows")
    return report.overall.iloc[0].to_dict()


def render_html_report(report: ReportData) -> str:
    """Render the report as one self-contained HTML document (inline CSS and SVG, no scripts)."""
    money = money_formatter(report.currency, report.locale)
    conf = f"{report.confidence * 100:g}%"
    overall = _overall_record(report)
    costs = float(overall["offer_cost"]) + float(overall["message_cost"])
    warning = None if is_missing(overall.get("warning")) else str(overall["warning"])

    headline = {
        "customers": fmt_int(overall["n_treated"] + overall["n_holdout"]),
        "n_treated": fmt_int(overall["n_treated"]),
        "n_holdout": fmt_int(overall["n_holdout"]),
        "rate_treated": fmt_pct(overall["rate_treated"]),
        "rate_holdout": fmt_pct(overall["rate_holdout"]),
        "abs_lift": fmt_pp(overall["abs_lift"]),
        "abs_lift_ci": fmt_range(overall["abs_lift_low"], overall["abs_lift_high"], fmt_pp),
        "rel_lift": fmt_pct(overall["rel_lift"], signed=True),
        "rel_lift_ci": fmt_range(overall["rel_lift_low"], overall["rel_lift_high"], lambda v: fmt_pct(v, signed=True)),
        "incremental_revenue": money(overall["incremental_revenue"]),
        "incremental_margin": money(overall.get("incremental_margin")),
        "roi_basis": str(overall.get("roi_basis", "margin")),
        "cost": money(costs),
        "offer_cost": money(overall["offer_cost"]),
        "message_cost": money(overall["message_cost"]),
        "roi": fmt_pct(overall["roi"], signed=True),
        "mde": fmt_pp(overall["mde"], signed=False),
        "warning": warning,
    }

    breakdowns = []
    seen: set[str] = set()
    for name, frame in report.breakdowns.items():
        table_id = f"table-lift-{slug(name, '-')}"
        if table_id in seen:
            raise ValueError(f"two breakdowns map to the same table id {table_id!r}")
        seen.add(table_id)
        label = f"Lift by {str(name).replace('_', ' ')}"
        breakdowns.append(lift_table_view(frame, table_id, label, money, conf))

    context = {
        "title": report.title,
        "campaign_id": report.campaign_id,
        "generated_at": report.generated_at.isoformat(sep=" ", timespec="minutes"),
        "period": _period_text(report.period_start, report.period_end),
        "window_open": window_status(report),
        "window_days": report.window_days,
        "conf": conf,
        "headline": headline,
        # The overall row's warning is the headline banner already; its row only gets the flag.
        "overall_table": lift_table_view(report.overall, "table-lift-overall", "Overall lift", money, conf, note=False),
        "rate_chart": return_rate_chart(overall, report.confidence),
        "retention_chart": retention_chart(report.retention, report.window_days, report.observed_days),
        "breakdowns": breakdowns,
        "root_causes": None if report.root_causes is None else root_cause_view(report.root_causes, money),
        "delivery": None if report.delivery is None else delivery_view(report.delivery),
        "notes": list(report.notes),
        "uplift": None if report.uplift is None else uplift_view(report.uplift, conf),
        "variants": None if report.variants is None else variants_view(report.variants, money, conf),
    }
    return _environment().get_template("report.html.j2").render(**context)


def _table_files(report: ReportData) -> dict[str, pd.DataFrame]:
    tables: dict[str, pd.DataFrame] = {"lift_overall": report.overall}
    for name, frame in report.breakdowns.items():
        stem = f"lift_{slug(name, '_')}"
        if stem in tables:
            raise ValueError(f"two breakdowns map to the same file name {stem!r}")
        tables[stem] = frame
    tables["retention"] = report.retention
    if report.root_causes is not None:
        tables["root_causes"] = report.root_causes
    if report.delivery is not None:
        tables["delivery"] = report.delivery
    if report.uplift is not None:
        tables.update(uplift_tables(report.uplift))
    if report.variants is not None:
        tables.update({"variants": report.variants.variants, "variant_pairs": report.variants.pairs})
    return tables


def write_report_bundle(report: ReportData, out_dir: Path) -> list[Path]:
    """Write ``report.html`` and a CSV and JSON twin of every table; returns the paths written.

    Files: ``lift_overall``, ``lift_<name>`` per breakdown (name lower-cased, other characters → '_'),
    ``retention`` and, when given, ``root_causes``, each as ``.csv`` and ``.json`` (a list of records,
    NaN as null). The HTML is rendered first so an invalid report leaves no partial bundle behind.
    """
    html_text = render_html_report(report)
    tables = _table_files(report)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    html_path = out_dir / "report.html"
    html_path.write_text(html_text, encoding="utf-8")
    written.append(html_path)
    for stem, frame in tables.items():
        csv_path = out_dir / f"{stem}.csv"
        frame.to_csv(csv_path, index=False)
        json_path = out_dir / f"{stem}.json"
        json_path.write_text(
            frame.to_json(orient="records", indent=2, date_format="iso", force_ascii=False) + "\n",
            encoding="utf-8",
        )
        written += [csv_path, json_path]
    return written
