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
      tickFontPx: tick ? parseFloat(getComputedStyle(tick).fontSize) * b.width / vb.width : 0,
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
      cutOff: [...t.querySelectorAll('thead th')].filter((th) => th.getBoundingClientRect().right >
                                                              wrap.getBoundingClientRect().right + 1)
        .map((th) => th.textContent.trim()),
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


