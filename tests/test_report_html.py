"""Tests for reports.html: the self-contained HTML report and its CSV/JSON bundle.

The HTML is parsed with the stdlib html.parser into a small element tree; expected texts follow the
documented formats (rates "15.2%", lifts "+4.1 pp", relative lift / ROI "+27.0%", money "€1,234.50")
applied by hand to hand-written frames.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import date, datetime
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from winback.reports.html import ReportData, render_html_report, write_report_bundle
from winback.reports.retention import retention_curve
from winback.reports.stats import LIFT_COLUMNS, lift_table

EVIL = "<script>alert('x')</script> & co"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node] = field(default_factory=list)
    text_parts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join("".join(self._texts()).split())

    def _texts(self) -> list[str]:
        out = list(self.text_parts)
        for c in self.children:
            out += c._texts()
        return out

    def iter(self):
        yield self
        for c in self.children:
            yield from c.iter()

    def find_all(self, tag: str | None = None, **attrs: str) -> list[Node]:
        return [
            n
            for n in self.iter()
            if (tag is None or n.tag == tag) and all(n.attrs.get(k) == v for k, v in attrs.items())
        ]

    def has_class(self, name: str) -> bool:
        return name in self.attrs.get("class", "").split()


class TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]
        self.start_tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.start_tags.append(tag)
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return
        raise AssertionError(f"unmatched </{tag}>")

    def handle_data(self, data: str) -> None:
        self.stack[-1].text_parts.append(data)


def parse(html_text: str) -> TreeBuilder:
    builder = TreeBuilder()
    builder.feed(html_text)
    builder.close()
    assert len(builder.stack) == 1, f"unclosed elements: {[n.tag for n in builder.stack[1:]]}"
    return builder


def by_id(root: Node, element_id: str) -> Node:
    found = root.find_all(id=element_id)
    assert len(found) == 1, f"expected one #{element_id}, found {len(found)}"
    return found[0]


# --------------------------------------------------------------------------------------------------
# Fixtures: hand-written frames with round numbers


def lift_row(**values: object) -> dict[str, object]:
    base: dict[str, object] = {
        "n_treated": 4000,
        "n_holdout": 1000,
        "rate_treated": 0.2,
        "rate_holdout": 0.15,
        "abs_lift": 0.05,
        "abs_lift_low": 0.024,
        "abs_lift_high": 0.076,
        "rel_lift": 1 / 3,
        "rel_lift_low": 0.15,
        "rel_lift_high": 0.55,
        "incr_revenue_per_customer": 2.5,
        "incr_revenue_per_customer_low": 0.75,
        "incr_revenue_per_customer_high": 4.25,
        "incremental_revenue": 10_000.0,
        "incremental_margin": 4_000.0,
        "offer_cost": 1_500.0,
        "message_cost": 100.0,
        "roi": 1.5,
        "roi_basis": "margin",
        "mde": 0.035,
        "underpowered": True,
        "warning": ("Underpowered: the minimum detectable lift at 80% power is 3.5 pp, above the 2.0 pp that matters."),
    }
    base.update(values)
    return base


def overall_frame(**values: object) -> pd.DataFrame:
    return pd.DataFrame([lift_row(**values)], columns=LIFT_COLUMNS)


def breakdown(column: str, groups: dict[str, dict[str, object]]) -> pd.DataFrame:
    rows = [{column: g, **lift_row(**v)} for g, v in groups.items()]
    return pd.DataFrame(rows, columns=[column, *LIFT_COLUMNS])


def make_report(**overrides: object) -> ReportData:
    retention = retention_curve(
        pd.DataFrame(
            {
                "arm": ["treatment"] * 5 + ["holdout"] * 4,
                "days_to_return": [1.0, 4.0, 9.0, np.nan, np.nan, 6.0, np.nan, np.nan, np.nan],
            }
        ),
        max_days=30,
    )
    fields: dict[str, object] = {
        "title": "Spring win-back",
        "campaign_id": "cmp-2024-03",
        "generated_at": datetime(2024, 4, 30, 9, 15),
        "overall": overall_frame(),
        "breakdowns": {
            "segment": breakdown(
                "segment",
                {
                    "lapsed_90": {"abs_lift": 0.0412, "rate_treated": 0.1912, "n_treated": 1234},
                    EVIL: {"abs_lift": -0.0073, "warning": None, "underpowered": False, "roi": float("nan")},
                },
            ),
            "channel": breakdown("channel", {"email": {}, "sms": {"incr_revenue_per_customer": -1.25}}),
            "offer_kind": breakdown("offer_kind", {"percent_discount": {}, "store_credit": {}}),
            "failure_category": breakdown("failure_category", {"late_delivery": {}}),
        },
        "retention": retention,
        "root_causes": pd.DataFrame(
            {
                "failure_category": ["late_delivery", "damaged_item"],
                "volume": [1200, 310],
                "recovery_rate": [0.425, 0.3],
                "repeat_failure_rate": [0.051, 0.1],
                "offer_cost": [12_345.5, 800.0],
                "resolved_share": [0.913, 0.5],
            }
        ),
        "notes": ["true simulated effect: +0.05"],
        "period_start": date(2024, 3, 1),
        "period_end": date(2024, 3, 31),
    }
    fields.update(overrides)
    return ReportData(**fields)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def rendered() -> tuple[str, TreeBuilder]:
    text = render_html_report(make_report())
    return text, parse(text)


# --------------------------------------------------------------------------------------------------
# Structure


TABLE_IDS = [
    "table-lift-overall",
    "table-lift-segment",
    "table-lift-channel",
    "table-lift-offer-kind",
    "table-lift-failure-category",
    "table-root-causes",
]


def test_every_chart_and_table_is_present(rendered: tuple[str, TreeBuilder]) -> None:
    _, doc = rendered
    root = doc.root
    for chart_id in ("chart-return-rate", "chart-retention"):
        svg = by_id(root, chart_id)
        assert svg.tag == "svg" and svg.has_class("chart")
    for table_id in TABLE_IDS:
        assert by_id(root, table_id).tag == "table"
    for section in ("headline", "charts", "breakdowns", "root-causes", "notes", "methods"):
        assert by_id(root, section).tag == "section", section
    for section in ("charts", "breakdowns", "root-causes", "notes", "methods"):
        assert len(by_id(root, section).find_all("h2")) == 1, f"#{section} has no heading"

    bars = [n for n in by_id(root, "chart-return-rate").iter() if n.tag == "rect" and n.has_class("bar")]
    assert sorted(b.attrs["data-arm"] for b in bars) == ["holdout", "treatment"]
    heights = {b.attrs["data-arm"]: float(b.attrs["height"]) for b in bars}
    assert heights["treatment"] / heights["holdout"] == pytest.approx(0.2 / 0.15, rel=1e-3)
    errors = [n for n in by_id(root, "chart-return-rate").iter() if n.has_class("error-bar")]
    assert sorted(e.attrs["data-arm"] for e in errors) == ["holdout", "treatment"]
    for e in errors:  # the error bar brackets the bar's rate
        rate = 0.2 if e.attrs["data-arm"] == "treatment" else 0.15
        assert float(e.attrs["data-low"]) < rate < float(e.attrs["data-high"])

    curves = [n for n in by_id(root, "chart-retention").iter() if n.tag == "polyline"]
    assert sorted(c.attrs["data-arm"] for c in curves) == ["holdout", "treatment"]
    for c in curves:
        assert c.has_class("curve")
        assert len(c.attrs["points"].split()) == 31  # days 0..30


def test_tables_have_one_row_per_group(rendered: tuple[str, TreeBuilder]) -> None:
    _, doc = rendered
    expected_rows = {
        "table-lift-overall": 1,
        "table-lift-segment": 2,
        "table-lift-channel": 2,
        "table-lift-offer-kind": 2,
        "table-lift-failure-category": 1,
        "table-root-causes": 2,
    }
    for table_id, n in expected_rows.items():
        body = by_id(doc.root, table_id).find_all("tbody")[0]
        assert len(body.find_all("tr")) == n, table_id


# --------------------------------------------------------------------------------------------------
# Numbers


def test_headline_numbers_match_the_overall_frame(rendered: tuple[str, TreeBuilder]) -> None:
    _, doc = rendered
    text = {
        i: by_id(doc.root, i).text
        for i in (
            "headline-campaign",
            "headline-period",
            "headline-customers",
            "headline-rate-treated",
            "headline-rate-holdout",
            "headline-abs-lift",
            "headline-abs-lift-ci",
            "headline-rel-lift",
            "headline-incremental-revenue",
            "headline-cost",
            "headline-roi",
            "headline-warning",
        )
    }
    assert text["headline-campaign"] == "cmp-2024-03"
    assert text["headline-period"] == "2024-03-01 to 2024-03-31"
    assert text["headline-customers"] == "5,000"
    assert text["headline-rate-treated"] == "20.0%"
    assert text["headline-rate-holdout"] == "15.0%"
    assert text["headline-abs-lift"] == "+5.0 pp"
    assert text["headline-abs-lift-ci"] == "+2.4 pp to +7.6 pp"
    assert text["headline-rel-lift"] == "+33.3%"
    assert text["headline-incremental-revenue"] == "€10,000.00"
    assert text["headline-cost"] == "€1,600.00"  # offers 1,500 + messages 100
    assert text["headline-roi"] == "+150.0%"
    assert "minimum detectable lift" in text["headline-warning"]


def test_no_warning_when_adequately_powered() -> None:
    report = make_report(overall=overall_frame(warning=None, underpowered=False))
    doc = parse(render_html_report(report))
    assert doc.root.find_all(id="headline-warning") == []


def test_no_window_banner_without_window_or_once_it_closed() -> None:
    for report in (make_report(), make_report(window_days=30, observed_days=30)):
        doc = parse(render_html_report(report))
        assert doc.root.find_all(id="headline-window") == []
        assert [n for n in by_id(doc.root, "chart-retention").iter() if n.has_class("unobserved")] == []


def test_open_window_is_announced_first_and_the_curve_stops_where_data_stop() -> None:
    """6.9 of 30 days tracked: a banner at the top of the headline, curves to day 7 on a 30-day axis."""
    week = retention_curve(
        pd.DataFrame({"arm": ["treatment", "treatment", "holdout"], "days_to_return": [1.0, 6.5, np.nan]}),
        max_days=7,
    )
    doc = parse(render_html_report(make_report(retention=week, window_days=30, observed_days=6.9)))
    banner = by_id(doc.root, "headline-window")
    assert banner.text.startswith("Window open: 6.9 of 30 days observed.")
    assert by_id(doc.root, "headline").children[0] is banner  # before any number
    chart = by_id(doc.root, "chart-retention")
    for curve in [n for n in chart.iter() if n.tag == "polyline"]:
        assert len(curve.attrs["points"].split()) == 8  # days 0..7, nothing drawn past the last tracking
    (shade,) = [n for n in chart.iter() if n.has_class("unobserved")]
    ticks = {t.text: float(t.attrs["x"]) for t in chart.find_all("text") if t.has_class("tick") and t.text.isdigit()}
    assert max(map(int, ticks)) == 30  # the axis still spans the window
    tracked = ticks["0"] + (ticks["30"] - ticks["0"]) * 6.9 / 30
    assert float(shade.attrs["x"]) == pytest.approx(tracked, abs=0.01)
    assert float(shade.attrs["x"]) + float(shade.attrs["width"]) == pytest.approx(ticks["30"], abs=0.01)
    assert "window their returns were tracked over" in by_id(doc.root, "methods").text


def _cells(table: Node, col: str) -> list[Node]:
    return [td for td in table.find_all("td") if td.attrs.get("data-col") == col]


def _lines(cell: Node) -> list[str]:
    """A cell's value line and, when present, its small second line (interval, arm size or flag)."""
    return [span.text for span in cell.find_all("span")]


LIFT_COLS = [
    "rate_treated",
    "rate_holdout",
    "abs_lift",
    "rel_lift",
    "incr_revenue_per_customer",
    "incremental_revenue",
    "cost",
    "roi",
    "mde",
]


def test_breakdown_cells_match_frames(rendered: tuple[str, TreeBuilder]) -> None:
    _, doc = rendered
    seg = by_id(doc.root, "table-lift-segment")
    lift_cells = _cells(seg, "abs_lift")
    # Estimate on the first line, its interval (unit as on the line above) on the second.
    assert [_lines(c) for c in lift_cells] == [["+4.1 pp", "+2.4 to +7.6"], ["-0.7 pp", "+2.4 to +7.6"]]
    assert [float(c.attrs["data-value"]) for c in lift_cells] == [0.0412, -0.0073]
    assert _lines(_cells(seg, "rel_lift")[0]) == ["+33.3%", "+15.0 to +55.0"]
    # Each arm's return rate over its size.
    assert _lines(_cells(seg, "rate_treated")[0]) == ["19.1%", "of 1,234"]
    assert _lines(_cells(seg, "rate_holdout")[0]) == ["15.0%", "of 1,000"]
    assert float(_cells(seg, "rate_treated")[0].attrs["data-value"]) == 0.1912
    # Offer and message cost are shown summed: 1,500 + 100.
    assert [_lines(c) for c in _cells(seg, "cost")] == [["€1,600.00"], ["€1,600.00"]]
    assert [float(c.attrs["data-value"]) for c in _cells(seg, "cost")] == [1600.0, 1600.0]
    assert _lines(_cells(seg, "incremental_revenue")[0]) == ["€10,000.00"]
    assert _cells(seg, "roi")[0].text == "+150.0%"
    assert _cells(seg, "roi")[1].text == "—"  # NaN ROI (no costs) shows a dash, not "nan"
    assert "nan" not in seg.text.lower().split()
    channel = by_id(doc.root, "table-lift-channel")
    per_customer = _cells(channel, "incr_revenue_per_customer")
    assert [c.find_all("span")[0].text for c in per_customer] == ["€2.50", "-€1.25"]
    assert per_customer[0].find_all("span")[1].text == "€0.75 to €4.25"

    # Every shown number's data-value is the frame's value, column by column and row by row.
    for table_id, frame in [
        ("table-lift-overall", make_report().overall),
        *((f"table-lift-{name.replace('_', '-')}", f) for name, f in make_report().breakdowns.items()),
    ]:
        table = by_id(doc.root, table_id)
        expected = frame.assign(cost=frame["offer_cost"] + frame["message_cost"])
        for col in LIFT_COLS:
            shown = [float(c.attrs["data-value"]) if "data-value" in c.attrs else math.nan for c in _cells(table, col)]
            assert shown == pytest.approx(expected[col].astype(float).tolist(), nan_ok=True), (table_id, col)

    roots = by_id(doc.root, "table-root-causes")
    assert [c.text for c in _cells(roots, "failure_category")] == ["late_delivery", "damaged_item"]
    assert [c.text for c in _cells(roots, "volume")] == ["1,200", "310"]
    assert [c.text for c in _cells(roots, "recovery_rate")] == ["42.5%", "30.0%"]
    assert [c.text for c in _cells(roots, "repeat_failure_rate")] == ["5.1%", "10.0%"]
    # further columns are formatted by their name: *_cost as money, *_share / *_rate as percentages
    assert [c.text for c in _cells(roots, "offer_cost")] == ["€12,345.50", "€800.00"]
    assert [c.text for c in _cells(roots, "resolved_share")] == ["91.3%", "50.0%"]
    assert [th.text for th in roots.find_all("th")][-2:] == ["Offer cost", "Resolved share"]


def test_underpowered_rows_are_flagged_and_the_warning_shown_once(rendered: tuple[str, TreeBuilder]) -> None:
    _, doc = rendered
    seg = by_id(doc.root, "table-lift-segment")
    # Row 0 carries the fixture's warning, row 1 (EVIL) none: only row 0 is flagged under its MDE.
    mde = _cells(seg, "mde")
    assert [_lines(c) for c in mde] == [["3.5 pp", "⚠ underpowered"], ["3.5 pp"]]
    assert [c.has_class("warn") for c in mde] == [True, False]
    # The reason is stated once, above the table, without the per-row MDE; the body has only flags.
    (note,) = [n for n in seg.find_all("span") if n.has_class("table-note")]
    assert note.text == (
        "⚠ Underpowered in 1 of 2 groups (flagged in the MDE column): the minimum detectable lift at "
        "80% power (MDE) is above the 2.0 pp that matters."
    )
    body = seg.find_all("tbody")[0].text
    assert "minimum detectable" not in body and body.count("underpowered") == 1
    assert all("title" not in n.attrs for n in seg.iter())  # nothing hidden in tooltips
    # The overall table's warning is the headline banner; its row is only flagged.
    overall = by_id(doc.root, "table-lift-overall")
    assert overall.find_all("caption")[0].text == "Overall lift"
    assert _lines(_cells(overall, "mde")[0]) == ["3.5 pp", "⚠ underpowered"]
    # Every lift row has one cell per header.
    for table_id in TABLE_IDS:
        table = by_id(doc.root, table_id)
        n_headers = len(table.find_all("th"))
        assert {len(tr.find_all("td")) for tr in table.find_all("tbody")[0].find_all("tr")} == {n_headers}


def test_power_note_states_each_reason_once() -> None:
    """Warnings from lift_table itself: numbers differ per row, the note lists each reason once."""
    rng = np.random.default_rng(7)
    sizes = {"tiny": (20, 12), "small": (300, 80), "smaller": (200, 60), "no_holdout": (50, 0)}
    parts = []
    for group, (n_treated, n_holdout) in sizes.items():
        n = n_treated + n_holdout
        returned = rng.random(n) < 0.2
        parts.append(
            pd.DataFrame(
                {
                    "arm": ["treatment"] * n_treated + ["holdout"] * n_holdout,
                    "group": group,
                    "returned": returned,
                    "revenue": np.where(returned, 40.0, 0.0),
                    "offer_cost": 0.0,
                    "message_cost": 0.01,
                }
            )
        )
    frame = lift_table(pd.concat(parts, ignore_index=True), ["group"])
    assert frame["warning"].notna().all() and frame["warning"].nunique() == 4  # per-row numbers differ
    doc = parse(render_html_report(make_report(breakdowns={"group": frame})))
    table = by_id(doc.root, "table-lift-group")
    (note,) = [n for n in table.find_all("span") if n.has_class("table-note")]
    assert note.text == (
        "⚠ Underpowered in 4 of 4 groups (flagged in the MDE column): "
        "no holdout customers, so no comparison is possible; "
        "the minimum detectable lift at 80% power (MDE) is above the 2.0 pp that matters; "
        "fewer than 30 customers in an arm."
    )
    flags = [_lines(c)[-1] for c in _cells(table, "mde")]
    assert flags == ["⚠ underpowered"] * 4
    assert list(frame["group"]) == ["no_holdout", "small", "smaller", "tiny"]  # lift_table sorts groups
    assert _lines(_cells(table, "abs_lift")[0]) == ["—", "—"]  # the empty arm: no estimate, no interval


def test_currency_code_is_used() -> None:
    doc = parse(render_html_report(make_report(currency="USD")))
    assert by_id(doc.root, "headline-incremental-revenue").text == "$10,000.00"


def test_report_from_lift_table_output_renders_its_numbers() -> None:
    rng = np.random.default_rng(1)
    n = 3_000
    arm = np.where(rng.random(n) < 0.7, "treatment", "holdout")
    returned = rng.random(n) < np.where(arm == "treatment", 0.2, 0.15)
    frame = pd.DataFrame(
        {
            "arm": arm,
            "channel": rng.choice(["email", "sms"], n),
            "returned": returned,
            "revenue": np.where(returned, 40.0, 0.0),
            "offer_cost": np.where((arm == "treatment") & returned, 4.0, 0.0),
            "message_cost": np.where(arm == "treatment", 0.05, 0.0),
            "days_to_return": np.where(returned, rng.uniform(0, 30, n), np.nan),
        }
    )
    overall = lift_table(frame, None)
    report = make_report(
        overall=overall,
        breakdowns={"channel": lift_table(frame, ["channel"])},
        retention=retention_curve(frame),
        root_causes=None,
    )
    doc = parse(render_html_report(report))
    row = overall.iloc[0]
    assert by_id(doc.root, "headline-abs-lift").text == f"{row['abs_lift'] * 100:+.1f} pp"
    assert by_id(doc.root, "headline-rate-treated").text == f"{row['rate_treated'] * 100:.1f}%"
    assert by_id(doc.root, "headline-customers").text == f"{n:,}"
    assert doc.root.find_all(id="table-root-causes") == []
    channel = by_id(doc.root, "table-lift-channel")
    shown = [float(c.attrs["data-value"]) for c in _cells(channel, "abs_lift")]
    assert shown == pytest.approx(report.breakdowns["channel"]["abs_lift"].tolist())


# --------------------------------------------------------------------------------------------------
# Self-containment and escaping


def test_no_external_resources_or_scripts(rendered: tuple[str, TreeBuilder]) -> None:
    text, doc = rendered
    lowered = text.lower()
    assert "http://" not in lowered and "https://" not in lowered
    assert "@import" not in lowered and "url(" not in lowered
    assert "script" not in doc.start_tags
    for node in doc.root.iter():
        assert node.tag not in {"link", "img", "iframe", "object", "embed"}
        assert "src" not in node.attrs and "href" not in node.attrs
    assert len(doc.root.find_all("style")) == 1


def test_group_names_are_escaped(rendered: tuple[str, TreeBuilder]) -> None:
    text, doc = rendered
    assert "<script>" not in text
    assert "&lt;script&gt;" in text
    groups = [td.text for td in _cells(by_id(doc.root, "table-lift-segment"), "segment")]
    assert groups == ["lapsed_90", " ".join(EVIL.split())]


def test_title_and_notes_are_escaped() -> None:
    report = make_report(title="Q2 <b>bold</b>", notes=["<img src=x onerror=alert(1)>"])
    doc = parse(render_html_report(report))
    assert "b" not in doc.start_tags and "img" not in doc.start_tags
    assert [li.text for li in by_id(doc.root, "notes").find_all("li")] == ["<img src=x onerror=alert(1)>"]


# --------------------------------------------------------------------------------------------------
# Input checks and bundle


def test_invalid_inputs_raise() -> None:
    two_rows = pd.concat([overall_frame(), overall_frame()], ignore_index=True)
    with pytest.raises(ValueError, match="one-row"):
        render_html_report(make_report(overall=two_rows))
    clash = {"offer kind": breakdown("k", {"a": {}}), "offer-kind": breakdown("k", {"a": {}})}
    with pytest.raises(ValueError, match="same"):
        render_html_report(make_report(breakdowns=clash))
    with pytest.raises(ValueError, match="recovery_rate"):
        render_html_report(make_report(root_causes=pd.DataFrame({"failure_category": ["x"], "volume": [1]})))


def test_write_report_bundle(tmp_path: Path) -> None:
    report = make_report()
    out = tmp_path / "bundle"
    written = write_report_bundle(report, out)
    stems = ["lift_overall", "lift_segment", "lift_channel", "lift_offer_kind", "lift_failure_category"]
    stems += ["retention", "root_causes"]
    expected = ["report.html"] + [f"{s}.{ext}" for s in stems for ext in ("csv", "json")]
    assert sorted(p.name for p in written) == sorted(expected)
    assert all(p.parent == out and p.is_file() for p in written)
    assert (out / "report.html").read_text(encoding="utf-8") == render_html_report(report)

    frames = {
        "lift_overall": report.overall,
        "lift_segment": report.breakdowns["segment"],
        "lift_offer_kind": report.breakdowns["offer_kind"],
        "retention": report.retention,
        "root_causes": report.root_causes,
    }
    for stem, frame in frames.items():
        assert frame is not None
        csv = pd.read_csv(out / f"{stem}.csv", keep_default_na=False, na_values=[""])
        assert list(csv.columns) == list(frame.columns)
        assert len(csv) == len(frame)
        records = json.loads((out / f"{stem}.json").read_text(encoding="utf-8"))
        assert len(records) == len(frame) and list(records[0]) == list(frame.columns)
    seg_records = json.loads((out / "lift_segment.json").read_text(encoding="utf-8"))
    assert seg_records[1]["segment"] == EVIL  # stored raw, not HTML-escaped
    assert seg_records[1]["roi"] is None  # NaN → null
    assert seg_records[0]["abs_lift"] == 0.0412
    csv_seg = pd.read_csv(out / "lift_segment.csv")
    assert csv_seg["abs_lift"].tolist() == [0.0412, -0.0073]
    assert math.isnan(csv_seg["roi"].iloc[1])


def test_bundle_without_root_causes(tmp_path: Path) -> None:
    written = write_report_bundle(make_report(root_causes=None, breakdowns={}), tmp_path)
    assert sorted(p.name for p in written) == sorted(
        ["report.html", "lift_overall.csv", "lift_overall.json", "retention.csv", "retention.json"]
    )
