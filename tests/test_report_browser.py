"""Browser test: the retention report renders in headless Chromium with its charts and tables visible.

The bundle is written from simulated per-customer data (seeded numpy → ``lift_table`` /
``retention_curve``), opened from disk in Debian's ``chromium`` at a 1366×900 laptop window, and
checked through the Chrome DevTools Protocol (CDP) over a websocket: real layout boxes of the charts,
bars, error bars, curves and tables, the headline numbers, self-containment (no scripts, no network
resources) and no horizontal page scroll. A full-page screenshot is kept as ``report.png`` in the
test's ``tmp_path`` (pytest keeps the last few) and its pixels are checked for the arm colours.

Chromium missing: skipped with the reason, except under ``CI`` where it fails (.ci/run installs it).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import struct
import subprocess
import time
import zlib
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from websockets.sync.client import ClientConnection, connect

from reports.html import ReportData, write_report_bundle
from reports.retention import retention_curve
from reports.stats import lift_table

WIDTH, HEIGHT = 1366, 900
TEST_BUDGET_S = 25.0  # our own deadline; pytest-timeout below is the backstop
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
    days = np.where(treated, rng.exponential(7.0, n), rng.exponential(11.0, n))
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
            "days_to_return": np.where(returned, np.minimum(days, 30.0), np.nan),
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
    """Terminate chromium, then kill what is left of its process group (renderers, zygote, crashpad)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: the group id is chromium's pid
    except (ProcessLookupError, PermissionError):
        pass


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
      tickFontPx: tick ? tick.getBoundingClientRect().height : 0,
      bars: [...svg.querySelectorAll('rect.bar')].map((r) => ({arm: r.dataset.arm, box: box(r), shown: shown(r),
                                                             fill: getComputedStyle(r).fill})),
      errorBars: [...svg.querySelectorAll('g.error-bar')].map((g) => ({arm: g.dataset.arm, box: box(g),
                                                                       shown: shown(g)})),
      curves: [...svg.querySelectorAll('polyline.curve')].map((c) => ({arm: c.dataset.arm, box: box(c),
                                                                       shown: shown(c), points: c.points.numberOfItems,
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
      hiddenCells: cells.filter((c) => !shown(c)).length,
      wrapScroll: wrap.scrollWidth, wrapClient: wrap.clientWidth,
    };
  }
  const sections = {};
  for (const id of ['headline', 'charts', 'breakdowns', 'root-causes', 'methods']) {
    const el = document.getElementById(id);
    sections[id] = el ? {box: box(el), shown: shown(el)} : null;
  }
  const text = (id) => { const el = document.getElementById(id); return el ? el.textContent.trim() : null; };
  const headline = {};
  for (const id of ['headline-abs-lift', 'headline-abs-lift-ci', 'headline-rate-treated', 'headline-rate-holdout',
                    'headline-customers', 'headline-rel-lift', 'headline-roi']) headline[id] = text(id);
  const remote = [];
  for (const el of document.querySelectorAll('*')) {
    for (const a of el.attributes) {
      if (!a.name.startsWith('xmlns') && /(https?:)?\/\/|url\(/i.test(a.value)) remote.push(`${el.tagName} ${a.name}`);
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
# The test


@pytest.mark.timeout(30)
def test_report_renders_in_chromium(tmp_path: Path) -> None:
    start = time.monotonic()
    deadline = start + TEST_BUDGET_S
    binary = chromium_binary()

    customers = simulated_customers()
    report = make_report(customers)
    bundle = tmp_path / "bundle"
    write_report_bundle(report, bundle)
    url = (bundle / "report.html").resolve().as_uri()
    overall = report.overall.iloc[0]

    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    log = tmp_path / "chromium.log"
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
            # The window chromium opened is the one sized by --window-size; drive that page.
            page_id = None
            while page_id is None:
                pages = [t for t in cdp.call("Target.getTargets")["targetInfos"] if t["type"] == "page"]
                page_id = pages[0]["targetId"] if pages else None
                if page_id is None:
                    assert time.monotonic() < deadline, "chromium opened no page"
                    time.sleep(0.05)
            session = cdp.call("Target.attachToTarget", targetId=page_id, flatten=True)["sessionId"]
            cdp.call("Page.enable", session)
            nav = cdp.call("Page.navigate", session, url=url)
            assert "errorText" not in nav, f"navigation to {url} failed: {nav}"
            cdp.wait_event("Page.loadEventFired", session)
            cdp.evaluate(session, "document.fonts.ready.then(() => document.fonts.status)", await_promise=True)
            layout = json.loads(cdp.evaluate(session, LAYOUT_JS))
            check_layout(layout, url, report, customers)

            metrics = cdp.call("Page.getLayoutMetrics", session)["cssContentSize"]
            full = cdp.call(
                "Page.captureScreenshot",
                session,
                format="png",
                captureBeyondViewport=True,
                clip={"x": 0, "y": 0, "width": metrics["width"], "height": metrics["height"], "scale": 1},
            )["data"]
            charts = layout["sections"]["charts"]["box"]
            thumb = cdp.call(
                "Page.captureScreenshot",
                session,
                format="png",
                clip={
                    "x": charts["left"],
                    "y": charts["top"],
                    "width": charts["width"],
                    "height": charts["height"],
                    "scale": 0.5,
                },
            )["data"]
    finally:
        stop_chromium(proc)

    png = base64.b64decode(full)
    shot = tmp_path / "report.png"
    shot.write_bytes(png)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(png) > 60_000, f"screenshot is only {len(png)} bytes: a blank page?"
    shot_w, shot_h = struct.unpack(">II", png[16:24])
    assert shot_w == WIDTH and shot_h >= layout["page"]["scrollHeight"] - 1, (shot_w, shot_h)

    # The charts' pixels: both arm colours are really painted, on a varied (not blank) image.
    w, h, pixels = png_pixels(base64.b64decode(thumb))
    assert w * h == len(pixels) and w >= 300, (w, h)
    blue = sum(near(p, TREATMENT_RGB) for p in pixels)
    grey = sum(near(p, HOLDOUT_RGB) for p in pixels)
    assert blue > 500 and grey > 500, f"arm colours barely painted: treatment {blue} px, holdout {grey} px"
    assert len(set(pixels)) > 50, "chart area is nearly uniform"

    elapsed = time.monotonic() - start
    assert elapsed < TEST_BUDGET_S, f"browser test took {elapsed:.1f}s"


def check_layout(layout: dict[str, Any], url: str, report: ReportData, customers: pd.DataFrame) -> None:
    assert layout["href"] == url and layout["readyState"] == "complete", (layout["href"], layout["readyState"])
    view = layout["viewport"]
    assert view["width"] == WIDTH, f"viewport is {view}, expected {WIDTH} px wide (--window-size)"

    # Self-contained: nothing to run, nothing fetched, no remote reference anywhere.
    assert layout["scripts"] == 0
    assert layout["embeds"] == 0
    assert layout["resources"] == [], f"the page loaded resources: {layout['resources']}"
    assert layout["remote"] == [] and layout["cssRemote"] == [], (layout["remote"], layout["cssRemote"])

    # No page-level horizontal scrollbar on a 1366 px laptop screen.
    page = layout["page"]
    assert page["scrollWidth"] <= WIDTH and page["scrollWidth"] <= page["clientWidth"], page

    for section_id, section in layout["sections"].items():
        assert section is not None, f"section #{section_id} missing"
        assert section["shown"], f"section #{section_id} not visible"
        assert section["box"]["left"] >= 0 and section["box"]["right"] <= page["clientWidth"], (section_id, section)
    assert layout["sections"]["headline"]["box"]["top"] < view["height"], "headline below the fold"

    # Headline numbers, formatted as documented in reports/html.py.
    row = overall = report.overall.iloc[0]
    headline = layout["headline"]
    assert headline["headline-abs-lift"] == f"{overall['abs_lift'] * 100:+.1f} pp"
    assert headline["headline-abs-lift-ci"] == (
        f"{row['abs_lift_low'] * 100:+.1f} pp to {row['abs_lift_high'] * 100:+.1f} pp"
    )
    assert headline["headline-rate-treated"] == f"{row['rate_treated'] * 100:.1f}%"
    assert headline["headline-rate-holdout"] == f"{row['rate_holdout'] * 100:.1f}%"
    assert headline["headline-customers"] == f"{len(customers):,}"

    charts = layout["charts"]
    assert set(charts) == {"chart-return-rate", "chart-retention"}, set(charts)
    for chart_id, chart in charts.items():
        b = chart["box"]
        assert chart["shown"] and b["width"] > 0 and b["height"] > 0, (chart_id, b)
        assert b["left"] >= 0 and b["right"] <= page["clientWidth"] and b["width"] <= WIDTH, (chart_id, b)
        assert chart["tickFontPx"] >= 10, f"{chart_id}: axis labels render {chart['tickFontPx']:.1f} px tall"
        assert chart["clippedText"] == [], f"{chart_id}: labels cut off at the chart edge: {chart['clippedText']}"

    rate_chart = charts["chart-return-rate"]
    assert sorted(bar["arm"] for bar in rate_chart["bars"]) == ["holdout", "treatment"]
    bars = {bar["arm"]: bar for bar in rate_chart["bars"]}
    for arm, bar in bars.items():
        assert bar["shown"] and bar["box"]["height"] > 0 and bar["box"]["width"] > 0, (arm, bar)
        assert bar["fill"] not in ("none", "rgb(0, 0, 0)"), f"{arm} bar has no arm colour: {bar['fill']}"
        inside = rate_chart["box"]
        assert inside["left"] <= bar["box"]["left"] and bar["box"]["right"] <= inside["right"], (arm, bar)
    # Rendered bar heights keep the ratio of the rates.
    ratio = bars["treatment"]["box"]["height"] / bars["holdout"]["box"]["height"]
    assert ratio == pytest.approx(row["rate_treated"] / row["rate_holdout"], rel=0.03)
    assert sorted(e["arm"] for e in rate_chart["errorBars"]) == ["holdout", "treatment"]
    for err in rate_chart["errorBars"]:
        bar_top, eb = bars[err["arm"]]["box"]["top"], err["box"]
        assert err["shown"] and eb["top"] < bar_top < eb["bottom"], f"{err['arm']} error bar misses the bar top"

    curves = charts["chart-retention"]["curves"]
    assert sorted(c["arm"] for c in curves) == ["holdout", "treatment"]
    for curve in curves:
        assert curve["shown"] and curve["points"] == 31, curve  # days 0..30
        assert curve["box"]["width"] > 100 and curve["box"]["height"] > 10, curve
        assert curve["stroke"] not in ("none", ""), curve

    expected_rows = {
        "table-lift-overall": 1,
        "table-lift-segment": customers["segment"].nunique(),
        "table-lift-channel": customers["channel"].nunique(),
        "table-root-causes": len(report.root_causes) if report.root_causes is not None else 0,
    }
    tables = layout["tables"]
    assert set(tables) == set(expected_rows), set(tables)
    for table_id, n_rows in expected_rows.items():
        table = tables[table_id]
        assert table["shown"] and table["box"]["width"] > 0 and table["box"]["height"] > 0, (table_id, table)
        assert table["rows"] == n_rows, f"{table_id}: {table['rows']} rows, expected {n_rows}"
        assert set(table["rowLengths"]) == {table["headers"]}, (table_id, table)
        assert table["hiddenCells"] == 0, f"{table_id}: {table['hiddenCells']} invisible cells"
