"""The report's per-figure "download SVG/PNG" buttons: present under every figure and, in headless
Chromium, producing a static SVG (with the figure's axis titles) or PNG without errors or network."""

from __future__ import annotations

import base64
import json
import re
import time
import urllib.parse

from landscape.report import write_html
from tests.report.browser import external_urls, page_errors
from tests.report.pages import write_slice_2d


def test_every_figure_has_download_buttons(tmp_path):
    write_slice_2d(tmp_path / "s.h5")
    page = write_html([str(tmp_path / "s.h5")], tmp_path / "r.html").read_text(encoding="utf-8")
    n_fig = page.count('class="landscape-figure"')
    buttons = re.findall(r'<button type="button" class="dl" data-target="(fig-\d+)" data-format="(svg|png)"', page)
    assert n_fig >= 3 and len(buttons) == 2 * n_fig
    assert {t for t, _ in buttons} == {f"fig-{i}" for i in range(1, n_fig + 1)}


def _eval(b, sid, expr, *, promise=False):
    res = b.send("Runtime.evaluate", {"expression": expr, "returnByValue": True, "awaitPromise": promise},
                 session=sid, timeout=120)
    return res.get("result", {}).get("value")


def test_download_buttons_make_static_files_in_the_browser(browser, tmp_path):
    write_slice_2d(tmp_path / "s.h5")
    page = write_html([str(tmp_path / "s.h5")], tmp_path / "r.html")
    b = browser
    target = b.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    sid = b.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for method in ("Runtime.enable", "Log.enable", "Page.enable", "Network.enable"):
        b.send(method, session=sid)
    b.send("Page.setDownloadBehavior", {"behavior": "deny"}, session=sid)  # nothing lands on disk
    start = len(b.events)
    b.send("Page.navigate", {"url": page.resolve().as_uri()}, session=sid)
    try:
        end = time.monotonic() + 90
        while time.monotonic() < end and not _eval(b, sid, "document.body && document.body.hasAttribute('data-rendered')"):
            time.sleep(0.2)
        contour = _eval(b, sid, "Array.from(document.querySelectorAll('figcaption')).findIndex("
                                "c => c.textContent.startsWith('contours')) + 1")
        assert contour > 0
        url = _eval(b, sid, f"window.landscapeImage(document.getElementById('fig-{contour}'), 'svg')", promise=True)
        assert url.startswith("data:image/svg+xml")
        svg = urllib.parse.unquote(url.split(",", 1)[1])
        assert svg.lstrip().startswith("<svg") and "x (direction 0)" in svg and "train loss" in svg
        png = _eval(b, sid, f"window.landscapeImage(document.getElementById('fig-{contour}'), 'png')", promise=True)
        assert base64.b64decode(png.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
        _eval(b, sid, "document.querySelectorAll('button.dl').forEach(x => x.click()); true")
        end = time.monotonic() + 90
        states = []
        while time.monotonic() < end:
            states = json.loads(_eval(b, sid, "JSON.stringify(Array.from(document.querySelectorAll('button.dl'))"
                                              ".map(x => x.getAttribute('data-state')))"))
            if all(s in ("done", "failed") for s in states):
                break
            time.sleep(0.2)
        assert states and all(s == "done" for s in states), states
        time.sleep(0.3)
    finally:
        b.send("Target.closeTarget", {"targetId": target})
    events = [e for e in b.events[start:] if e.get("sessionId") == sid]
    assert page_errors(events) == []
    requests = [e["params"]["request"]["url"] for e in events if e.get("method") == "Network.requestWillBeSent"]
    assert external_urls(requests) == []
