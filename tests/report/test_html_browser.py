"""End-to-end: the report opens in headless Chromium offline, with no console errors, not blank.

Uses Debian's ``chromium`` package. The set-up installs it (``apt-get install -y chromium``) where
it can (root with apt-get); otherwise the tests are skipped with the reason. One browser (tests/report/browser.py) is
started for the module and driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``,
no port, no extra Python package), which reports console errors, uncaught exceptions, error log
entries and every network request; the screenshot comes from the same page. A deliberately broken
page (an exception, a console error, an external image, a blank body) shows that every check can
fail.
"""

from __future__ import annotations

import numpy as np

from landscape.report import write_html
from tests.report.browser import external_urls
from tests.report.pages import figures_of, parse_page, write_inputs


def test_report_renders_offline_without_errors_and_is_not_blank(browser, tmp_path):
    paths = write_inputs(tmp_path)
    page = write_html([str(p) for p in paths.values()], tmp_path / "report.html", title="browser test")
    n_fig = len(figures_of(parse_page(page.read_text(encoding="utf-8"))))
    seen = browser.open(page.resolve().as_uri(), ready="document.body && document.body.hasAttribute('data-rendered')")
    assert seen["ready"], f"the page never finished drawing; errors: {seen['errors']}"
    assert seen["errors"] == []
    assert external_urls(seen["requests"]) == []  # nothing fetched from outside
    st = seen["stats"]
    assert st["rendered"] == str(n_fig) and st["failed"] == "0", st
    assert st["plots"] == n_fig  # plotly took over every figure div
    assert st["canvases"] >= 2 and st["svgs"] >= n_fig  # WebGL surfaces and SVG plots exist
    px = seen["pixels"]
    assert px.shape == (2200, 1280)
    assert px.std() > 20, f"screenshot looks blank (pixel std {px.std():.1f})"
    assert (np.abs(px - np.median(px)) > 30).mean() > 0.03  # enough drawn, not one colour
    panel = px[300:900, 80:560]  # the first 3-D surface (below the header, contents and notes)
    assert panel.std() > 15, f"the 3-D surface area looks empty (std {panel.std():.1f})"


def test_checks_catch_a_broken_page(browser, tmp_path):
    broken = tmp_path / "broken.html"
    broken.write_text("<!DOCTYPE html><html><head><title>x</title></head><body>"
                      "<script>console.error('boom'); undefinedFunction();</script>"
                      "<img src='http://example.invalid/x.png' width='1' height='1'></body></html>")
    seen = browser.open(broken.resolve().as_uri(), ready="document.readyState === 'complete'",
                        width=400, height=300)
    errs = " | ".join(seen["errors"])
    assert "console.error: boom" in errs and "undefinedFunction" in errs, errs
    assert external_urls(seen["requests"]) == ["http://example.invalid/x.png"]
    assert seen["stats"]["rendered"] is None
    assert seen["pixels"].std() < 1.0  # a blank page is recognised as blank
