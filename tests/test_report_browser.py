"""Browser test: the retention report renders in headless Chromium with its charts and tables visible.

The bundle is written from simulated per-customer data (seeded numpy → ``lift_table`` /
``retention_curve``), opened from disk in Debian's ``chromium`` in a 1366×900 window (a 1366 px wide
viewport) and checked through the Chrome DevTools Protocol (CDP) over a websocket: real layout boxes of
the charts, bars, error bars, curves and tables, the headline numbers, self-containment (no scripts, no
network resources) and no horizontal page scroll. Chromium runs once per module (fixture ``rendered``);
the full-page screenshot ``report.png`` and the measured ``layout.json`` are kept in pytest's
``report-browser*`` temporary folder (pytest keeps the last few runs), and the charts' pixels are
checked for the arm colours.

Chromium missing: skipped with the reason, except under ``CI`` where it fails (.ci/run installs it).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import struct
import subprocess
import time
import zlib
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from websockets.sync.client import ClientConnection, connect

from winback.reports.html import ReportData, write_report_bundle
from winback.reports.retention import retention_curve
from winback.reports.stats import lift_table

WIDTH, HEIGHT = 1366, 900
TEST_BUDGET_S = 22.0  # our own deadline for launch + CDP; the 30 s pytest-timeout is the backstop
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    f"--window-size={WIDTH},{HEIGHT}",
    "--remote-debugging-port=0",
]
SEGMENTS = {"lapsed_90": 0.14, "lapsed_180": 0.08, "aggrieved_late_delivery": 0.18, "one_time_buyer": 0.05}
CHANNELS = ["email", "sms"]
TREATMENT_RGB, HOLDOUT_RGB = (0x1D, 0x4E, 0xD8), (0x8A, 0x94, 0xA6)  # --treatment / --holdout in the CSS

pytestmark = pytest.mark.timeout(30)  # per test; the first one also pays for the browser run (about 4 s)


# --------------------------------------------------------------------------------------------------
# Report data


def simulated_customers(n: int = 6_000, seed: int = 20240501) -> pd.DataFrame:
    """One row per considered customer; the offer adds about 5 pp to every segment's return rate."""
    rng = np.random.default_rng(seed)
    arm = np.where(rng.random(n) < 0.8, "treatment", "holdout")
    treated = arm == "treatment"
    segment = rng.choice(list(SEGMENTS), n, p=[0.35, 0.3, 0.15, 0.2])
    channel = rng.choice(CHANNELS, n, p=[0.7, 0.3])
    rate = np.vectorize(SEGMENTS.get)(segment) + np.where(treated, 0.05, 0.0)
    returned = rng.random(n) < rate
    revenue = np.where(returned, rng.gamma(2.0, 32.0, n), 0.0).round(2)
    days = 30.0 * np.where(treated, rng.beta(1.0, 3.0, n), rng.beta(1.0, 2.0, n))  # treated come back sooner
    return pd.DataFrame(
        {
            "arm": arm,
            "returned": returned,
            "revenue": revenue,
            "margin": (revenue * 0.38).round(2),
            "offer_cost": np.where(treated & returned, (revenue * 0.1).round(2), 0.0),
            "message_cost": np.where(treated, np.where(channel == "sms", 0.045, 0.002), 0.0),
            "segment": segment,
            "channel": channel,
            "days_to_return": np.where(returned, days, np.nan),
        }
    )


def make_report(customers: pd.DataFrame) -> ReportData:
    return ReportData(
        title="Spring win-back",
        campaign_id="cmp-2024-03",
        generated_at=datetime(2024, 4, 30, 9, 15),
        overall=lift_table(customers, None),
        breakdowns={
            "segment": lift_table(customers, ["segment"]),
            "channel": lift_table(customers, ["channel"]),
        },
        retention=retention_curve(customers, max_days=30),
        root_causes=pd.DataFrame(
            {
                "failure_category": ["late_delivery", "damaged_item", "wrong_item"],
                "volume": [1_200, 310, 95],
                "recovery_rate": [0.425, 0.3, 0.51],
                "repeat_failure_rate": [0.051, 0.1, 0.02],
                "compensation_cost": [12_345.5, 800.0, 1_020.0],
            }
        ),
        notes=["Simulated campaign: the offer adds 5 pp to every segment's return rate."],
        period_start=date(2024, 3, 1),
        period_end=date(2024, 3, 31),
    )


# --------------------------------------------------------------------------------------------------
# Chromium and the DevTools protocol


def chromium_binary() -> str:
    found = shutil.which("chromium") or ("/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None)
    if found is None:
        reason = "Chromium is not installed (apt-get install chromium); the report's browser test needs it"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: CI must run the browser test")
        pytest.skip(reason)
    return found


class DevTools:
    """Minimal CDP client on the browser websocket; page commands go through a flat session id."""

    def __init__(self, ws: ClientConnection, deadline: float) -> None:
        self.ws, self.deadline = ws, deadline
        self._last_id = 0
        self._events: list[dict[str, Any]] = []

    def _recv(self, what: str) -> dict[str, Any]:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"CDP: out of time waiting for {what}")
        try:
            return json.loads(self.ws.recv(timeout=min(left, 10.0)))
        except TimeoutError:
            raise TimeoutError(f"CDP: no answer for {what}") from None

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._last_id += 1
        msg: dict[str, Any] = {"id": self._last_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        while True:
            reply = self._recv(method)
            if reply.get("id") == self._last_id:
                if "error" in reply:
                    raise AssertionError(f"CDP {method} failed: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self._events.append(reply)

    def wait_event(self, method: str, session: str) -> dict[str, Any]:
        while True:
            for i, ev in enumerate(self._events):
                if ev["method"] == method and ev.get("sessionId") == session:
                    return self._events.pop(i)
            reply = self._recv(method)
            if "method" in reply:
                self._events.append(reply)

    def evaluate(self, session: str, expression: str, *, await_promise: bool = False) -> Any:
        result = self.call(
            "Runtime.evaluate",
            session,
            expression=expression,
            returnByValue=True,
            awaitPromise=await_promise,
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"page JavaScript failed: {result['exceptionDetails']}")
        return result["result"].get("value")


def wait_for_devtools_port(proc: subprocess.Popen[bytes], profile: Path, log: Path, deadline: float) -> str:
    """Chromium writes '<port>\\n<browser ws path>' to DevToolsActivePort once it listens."""
    marker = profile / "DevToolsActivePort"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"chromium exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            port, path = marker.read_text().split()[:2]
            return f"ws://127.0.0.1:{int(port)}{path}"
        except (FileNotFoundError, ValueError):
            time.sleep(0.05)
    raise TimeoutError(f"chromium did not open its DevTools port:\n{log.read_text(errors='replace')[-3000:]}")


def stop_chromium(proc: subprocess.Popen[bytes]) -> None:
    """Terminate chromium, then kill what is left of its process group (zygote, renderers, GPU/utility).

    The crashpad handler detaches into its own session and exits by itself once the browser is gone.
    """
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=3)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: the group id is chromium's pid


# --------------------------------------------------------------------------------------------------
# PNG (stdlib only: the screenshot's pixels are checked without an imaging library)


def png_pixels(data: bytes) -> tuple[int, int, list[tuple[int, int, int]]]:
    """Decode an 8-bit RGB/RGBA non-interlaced PNG (what Chromium writes) into (w, h, rgb pixels)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, bytearray(), b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, color_type, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and color_type in (2, 6) and interlace == 0, (depth, color_type, interlace)
    bpp = 3 if color_type == 2 else 4
    raw, stride = zlib.decompress(bytes(idat)), width * bpp
    prev, pixels = bytearray(stride), []
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev, strict=True))
        elif kind == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        pixels += [tuple(line[i : i + 3]) for i in range(0, stride, bpp)]
        prev = line
    return width, height, pixels  # type: ignore[return-value]


def near(rgb: tuple[int, int, int], target: tuple[int, int, int], tol: int = 6) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(rgb, target, strict=True))


# --------------------------------------------------------------------------------------------------
# What the page reports about itself (evaluated in the page; returns a JSON string)

LAYOUT_JS = r"""
(() => {
  const box = (el) => {
    const r = el.getBoundingClientRect();
    return {left: r.left, top: r.top + scrollY, right: r.right, bottom: r.bottom + scrollY,
            width: r.width, height: r.height};
  };
  const shown = (el) => {
    for (let e = el; e && e.nodeType === 1; e = e.parentElement) {
      const s = getComputedStyle(e);
      if (s.display === 'none' || s.visibility === 'hidden' || parseFloat(s.opacity) === 0) return false;
    }
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  };
  const charts = {};
  for (const svg of document.querySelectorAll('svg.chart')) {
    const b = box(svg), vb = svg.viewBox.baseVal;
    const clipped = [...svg.querySelectorAll('text')].filter((t) => {
      const r = t.getBoundingClientRect(), s = svg.getBoundingClientRect();
      return r.left < s.left - 1 || r.right > s.right + 1 || r.top < s.top - 1 || r.bottom > s.bottom + 1;
    }).map((t) => t.textContent.trim());
    const tick = svg.querySelector('text.tick');
    charts[svg.id] = {
      box: b, shown: shown(svg), scale: b.width / vb.width, clippedText: clipped,
      tickFontPx: tick ? parseFloat(getComputedStyle(tick).fontSize) * b.width / vb.width : 0,
      bars: [...svg.querySelectorAll('rect.bar')].map((r) => ({
        arm: r.dataset.arm, box: box(r), shown: shown(r), fill: getComputedStyle(r).fill})),
      errorBars: [...svg.querySelectorAll('g.error-bar')].map((g) => ({
        arm: g.dataset.arm, box: box(g), shown: shown(g)})),
      curves: [...svg.querySelectorAll('polyline.curve')].map((c) => ({
        arm: c.dataset.arm, box: box(c), shown: shown(c), points: c.points.numberOfItems,
        stroke: getComputedStyle(c).stroke})),
    };
  }
  const tables = {};
  for (const t of document.querySelectorAll('table')) {
    const wrap = t.parentElement, body = t.tBodies[0];
    const cells = body ? [...body.querySelectorAll('td')] : [];
    tables[t.id] = {
      box: box(t), shown: shown(t), rows: body ? body.rows.length : 0,
      headers: t.tHead ? t.tHead.rows[0].cells.length : 0,
      rowLengths: body ? [...body.rows].map((r) => r.cells.length) : [],
      rowHeights: body ? [...body.rows].map((r) => r.getBoundingClientRect().height) : [],
      lineHeight: body && body.rows.length ? parseFloat(getComputedStyle(body.rows[0].cells[0]).lineHeight) : 0,
      hiddenCells: cells.filter((c) => !shown(c)).length,
      wrapScroll: wrap.scrollWidth, wrapClient: wrap.clientWidth,
      cutOff: [...t.querySelectorAll('thead th')].filter((th) => th.getBoundingClientRect().right >
                                                              wrap.getBoundingClientRect().right + 1)
        .map((th) => th.textContent.trim()),
    };
  }
  const sections = {};
  for (const id of ['headline', 'charts', 'breakdowns', 'root-causes', 'notes', 'methods']) {
    const el = document.getElementById(id);
    sections[id] = el ? {box: box(el), shown: shown(el)} : null;
  }
  const text = (id) => { const el = document.getElementById(id); return el ? el.textContent.trim() : null; };
  const headline = {};
  for (const id of ['headline-abs-lift', 'headline-abs-lift-ci', 'headline-rate-treated',
                    'headline-rate-holdout', 'headline-customers', 'headline-rel-lift', 'headline-roi']) {
    headline[id] = text(id);
  }
  const remote = [];
  for (const el of document.querySelectorAll('*')) {
    for (const a of el.attributes) {
      const url = /(https?:)?\/\/|url\(/i.test(a.value);
      if (url && !a.name.startsWith('xmlns')) remote.push(`${el.tagName} ${a.name}`);
    }
  }
  const cssRemote = [...document.styleSheets].flatMap((s) => [...s.cssRules].map((r) => r.cssText))
    .filter((c) => /url\(|@import|https?:/i.test(c));
  const de = document.documentElement;
  return JSON.stringify({
    href: location.href, readyState: document.readyState,
    viewport: {width: innerWidth, height: innerHeight},
    page: {scrollWidth: de.scrollWidth, clientWidth: de.clientWidth, scrollHeight: de.scrollHeight,
           bodyScrollWidth: document.body.scrollWidth},
    scripts: document.querySelectorAll('script').length,
    embeds: document.querySelectorAll('link, img, iframe, object, embed, video, audio, source').length,
    resources: performance.getEntriesByType('resource').map((e) => e.name),
    remote, cssRemote, charts, tables, sections, headline,
  });
})()
"""


# --------------------------------------------------------------------------------------------------
# One Chromium run for the module; the tests below read what it measured.


@dataclass
class Rendered:
    report: ReportData
    customers: pd.DataFrame
    layout: dict[str, Any]
    screenshot: Path
    charts_png: bytes
    seconds: float


def drive_chromium(binary: str, url: str, workdir: Path, deadline: float) -> tuple[dict[str, Any], bytes, bytes]:
    """Open url at 1366 px; return the page's layout report, a full-page PNG and a PNG of the charts."""
    profile = workdir / "chromium-profile"
    profile.mkdir()
    log = workdir / "chromium.log"
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        ws_url = wait_for_devtools_port(proc, profile, log, deadline)
        with connect(ws_url, proxy=None, open_timeout=5, close_timeout=2, max_size=None) as ws:
            cdp = DevTools(ws, deadline)
            # The tab chromium opened is the window sized by --window-size: drive that one.
            while not (pages := [t for t in cdp.call("Target.getTargets")["targetInfos"] if t["type"] == "page"]):
                assert time.monotonic() < deadline, "chromium opened no page"
                time.sleep(0.05)
            session = cdp.call("Target.attachToTarget", targetId=pages[0]["targetId"], flatten=True)["sessionId"]
            cdp.call("Page.enable", session)
            nav = cdp.call("Page.navigate", session, url=url)
            assert "errorText" not in nav, f"navigation to {url} failed: {nav}"
            cdp.wait_event("Page.loadEventFired", session)
            cdp.evaluate(session, "document.fonts.ready.then(() => document.fonts.status)", await_promise=True)
            layout = json.loads(cdp.evaluate(session, LAYOUT_JS))

            size = cdp.call("Page.getLayoutMetrics", session)["cssContentSize"]
            full = cdp.call(
                "Page.captureScreenshot",
                session,
                format="png",
                captureBeyondViewport=True,
                clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
            )["data"]
            box = layout["sections"]["charts"]["box"] if layout["sections"].get("charts") else None
            assert box, "no #charts section to photograph"
            charts = cdp.call(
                "Page.captureScreenshot",
                session,
                format="png",
                clip={
                    "x": box["left"],
                    "y": box["top"],
                    "width": box["width"],
                    "height": box["height"],
                    "scale": 0.5,
                },
            )["data"]
    finally:
        stop_chromium(proc)
    return layout, base64.b64decode(full), base64.b64decode(charts)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    start = time.monotonic()
    binary = chromium_binary()
    workdir = tmp_path_factory.mktemp("report-browser")
    customers = simulated_customers()
    report = make_report(customers)
    write_report_bundle(report, workdir / "bundle")
    url = (workdir / "bundle" / "report.html").resolve().as_uri()
    layout, full, charts = drive_chromium(binary, url, workdir, start + TEST_BUDGET_S)
    screenshot = workdir / "report.png"
    screenshot.write_bytes(full)
    (workdir / "layout.json").write_text(json.dumps(layout, indent=1), encoding="utf-8")
    assert layout["href"] == url and layout["readyState"] == "complete", (
        layout["href"],
        layout["readyState"],
    )
    return Rendered(report, customers, layout, screenshot, charts, time.monotonic() - start)


def test_browser_run_is_quick(rendered: Rendered) -> None:
    assert rendered.seconds < TEST_BUDGET_S, f"writing and rendering the report took {rendered.seconds:.1f}s"


def test_report_is_self_contained(rendered: Rendered) -> None:
    layout = rendered.layout
    assert layout["scripts"] == 0, "the report must not contain <script>"
    assert layout["embeds"] == 0, "no <link>/<img>/<iframe>/... elements"
    assert layout["resources"] == [], f"the page fetched resources: {layout['resources']}"
    assert layout["remote"] == [], f"attributes referencing remote URLs: {layout['remote']}"
    assert layout["cssRemote"] == [], f"CSS rules referencing URLs: {layout['cssRemote']}"


def test_page_fits_a_laptop_screen(rendered: Rendered) -> None:
    view, page = rendered.layout["viewport"], rendered.layout["page"]
    assert view["width"] == WIDTH, f"viewport is {view}, expected {WIDTH} px wide (--window-size)"
    # No page-level horizontal scrollbar at 1366 px.
    assert page["scrollWidth"] <= WIDTH and page["scrollWidth"] <= page["clientWidth"], page
    for section_id, section in rendered.layout["sections"].items():
        assert section is not None, f"section #{section_id} is missing"
        box = section["box"]
        assert section["shown"] and box["width"] > 0 and box["height"] > 0, (section_id, section)
        assert box["left"] >= 0 and box["right"] <= page["clientWidth"], (section_id, box)
    assert rendered.layout["sections"]["headline"]["box"]["top"] < view["height"], "headline is below the fold"


def test_headline_numbers_match_the_overall_frame(rendered: Rendered) -> None:
    row, headline = rendered.report.overall.iloc[0], rendered.layout["headline"]
    # Formats as documented in reports/formatting.py: lifts "+4.1 pp", rates "15.2%", counts "1,234".
    assert headline["headline-abs-lift"] == f"{row['abs_lift'] * 100:+.1f} pp"
    assert headline["headline-abs-lift-ci"] == (
        f"{row['abs_lift_low'] * 100:+.1f} pp to {row['abs_lift_high'] * 100:+.1f} pp"
    )
    assert headline["headline-rate-treated"] == f"{row['rate_treated'] * 100:.1f}%"
    assert headline["headline-rate-holdout"] == f"{row['rate_holdout'] * 100:.1f}%"
    assert headline["headline-rel-lift"] == f"{row['rel_lift'] * 100:+.1f}%"
    assert headline["headline-customers"] == f"{len(rendered.customers):,}"


def test_charts_are_visible_and_readable(rendered: Rendered) -> None:
    charts, page = rendered.layout["charts"], rendered.layout["page"]
    assert set(charts) == {"chart-return-rate", "chart-retention"}, set(charts)
    for chart_id, chart in charts.items():
        box = chart["box"]
        assert chart["shown"] and box["width"] > 0 and box["height"] > 0, (chart_id, box)
        assert box["left"] >= 0 and box["right"] <= page["clientWidth"] and box["width"] <= WIDTH, (
            chart_id,
            box,
        )
        assert chart["tickFontPx"] >= 10, f"{chart_id}: axis labels render at {chart['tickFontPx']:.1f} px"
        assert chart["clippedText"] == [], f"{chart_id}: labels cut off at the chart edge: {chart['clippedText']}"


def test_return_rate_chart_draws_bars_and_error_bars(rendered: Rendered) -> None:
    chart, row = rendered.layout["charts"]["chart-return-rate"], rendered.report.overall.iloc[0]
    assert sorted(bar["arm"] for bar in chart["bars"]) == ["holdout", "treatment"]
    bars = {bar["arm"]: bar for bar in chart["bars"]}
    for arm, bar in bars.items():
        box = bar["box"]
        assert bar["shown"] and box["height"] > 0 and box["width"] > 0, (arm, bar)
        assert chart["box"]["left"] <= box["left"] and box["right"] <= chart["box"]["right"], (arm, box)
        assert chart["box"]["top"] <= box["top"] and box["bottom"] <= chart["box"]["bottom"], (arm, box)
    assert bars["treatment"]["fill"] == "rgb({}, {}, {})".format(*TREATMENT_RGB)
    assert bars["holdout"]["fill"] == "rgb({}, {}, {})".format(*HOLDOUT_RGB)
    # Rendered heights keep the ratio of the rates (the y axis starts at 0).
    ratio = bars["treatment"]["box"]["height"] / bars["holdout"]["box"]["height"]
    assert ratio == pytest.approx(row["rate_treated"] / row["rate_holdout"], rel=0.02)
    assert sorted(err["arm"] for err in chart["errorBars"]) == ["holdout", "treatment"]
    for err in chart["errorBars"]:
        top, box = bars[err["arm"]]["box"]["top"], err["box"]
        assert err["shown"] and box["top"] < top < box["bottom"], (
            f"{err['arm']} error bar does not straddle the bar top"
        )


def test_retention_chart_draws_both_curves(rendered: Rendered) -> None:
    chart = rendered.layout["charts"]["chart-retention"]
    assert sorted(c["arm"] for c in chart["curves"]) == ["holdout", "treatment"]
    for curve in chart["curves"]:
        assert curve["shown"] and curve["points"] == 31, curve  # days 0..30
        assert curve["box"]["width"] > 0.5 * chart["box"]["width"] and curve["box"]["height"] > 10, curve
        assert curve["stroke"] not in ("none", "", "rgba(0, 0, 0, 0)"), curve
    curves = {c["arm"]: c for c in chart["curves"]}
    # The treated arm returns more, so its curve climbs higher (smaller top in page coordinates).
    assert curves["treatment"]["box"]["top"] < curves["holdout"]["box"]["top"]


def expected_rows(rendered: Rendered) -> dict[str, int]:
    root_causes = rendered.report.root_causes
    return {
        "table-lift-overall": 1,
        "table-lift-segment": rendered.customers["segment"].nunique(),
        "table-lift-channel": rendered.customers["channel"].nunique(),
        "table-root-causes": 0 if root_causes is None else len(root_causes),
    }


def test_tables_show_every_row(rendered: Rendered) -> None:
    tables, expected = rendered.layout["tables"], expected_rows(rendered)
    assert set(tables) == set(expected), set(tables)
    for table_id, n_rows in expected.items():
        table = tables[table_id]
        assert table["shown"] and table["box"]["width"] > 0 and table["box"]["height"] > 0, (table_id, table)
        assert table["rows"] == n_rows, f"{table_id}: {table['rows']} rows shown, frame has {n_rows}"
        assert set(table["rowLengths"]) == {table["headers"]}, (
            table_id,
            table["rowLengths"],
            table["headers"],
        )
        assert table["hiddenCells"] == 0, f"{table_id}: {table['hiddenCells']} invisible cells"


def test_lift_tables_fit_without_horizontal_scrolling(rendered: Rendered) -> None:
    overflowing = {
        table_id: f"{t['wrapScroll']} px in {t['wrapClient']} px, cut off: {t['cutOff']}"
        for table_id, t in rendered.layout["tables"].items()
        if t["wrapScroll"] > t["wrapClient"]
    }
    assert overflowing == {}, f"tables need horizontal scrolling at {WIDTH} px: {overflowing}"
    # Rows stay compact: a value and one small line under it (interval, arm size or the ⚠ flag),
    # not a paragraph of warning text per row.
    for table_id, t in rendered.layout["tables"].items():
        assert t["lineHeight"] > 0, table_id
        tallest = max(t["rowHeights"])
        assert tallest < 2.6 * t["lineHeight"] + 12, f"{table_id}: rows up to {tallest:.0f} px tall"


def test_screenshot_is_a_real_render(rendered: Rendered) -> None:
    png = rendered.screenshot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    assert len(png) > 60_000, f"full-page screenshot is only {len(png)} bytes: a blank page?"
    width, height = struct.unpack(">II", png[16:24])
    page = rendered.layout["page"]
    assert width == page["clientWidth"] and height >= page["scrollHeight"] - 1, ((width, height), page)

    # The charts' pixels: both arm colours are really painted, on a varied (not uniform) image.
    w, h, pixels = png_pixels(rendered.charts_png)
    assert w * h == len(pixels) and w >= 300, (w, h)
    blue = sum(near(p, TREATMENT_RGB) for p in pixels)
    grey = sum(near(p, HOLDOUT_RGB) for p in pixels)
    assert blue > 500 and grey > 500, f"arm colours barely painted: treatment {blue} px, holdout {grey} px"
    assert len(set(pixels)) > 50, "the chart area is nearly uniform"
