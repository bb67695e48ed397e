"""End-to-end: the report opens in headless Chromium offline, with no console errors, not blank.

Uses Debian's ``chromium`` package. The set-up installs it (``apt-get install -y chromium``) where
it can (root with apt-get); otherwise the tests are skipped with the reason. One browser is
started for the module and driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``,
no port, no extra Python package), which reports console errors, uncaught exceptions, error log
entries and every network request; the screenshot comes from the same page. A deliberately broken
page (an exception, a console error, an external image, a blank body) shows that every check can
fail.
"""

from __future__ import annotations

import base64
import io
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import pytest

from landscape.report import write_html
from tests.report.test_html import figures_of, parse_page, write_inputs

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--hide-scrollbars", "--mute-audio",
         # 3-D surfaces need WebGL: software rendering, opted into explicitly for these local pages
         "--enable-unsafe-swiftshader", "--use-angle=swiftshader"]
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _find() -> Optional[str]:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def _install_or_skip() -> str:
    exe = _find()
    if exe:
        return exe
    if not shutil.which("apt-get") or not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("headless Chromium not found and cannot be installed here (needs root and apt-get); "
                    "install Debian's 'chromium' package to run this test")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "install", "-y", "chromium"], ["apt-get", "update"],
                ["apt-get", "install", "-y", "chromium"]):
        try:
            subprocess.run(cmd, capture_output=True, timeout=240, check=False, env=env)
        except (OSError, subprocess.TimeoutExpired):
            break
        exe = _find()
        if exe:
            return exe
    pytest.skip("headless Chromium not found and 'apt-get install -y chromium' did not provide it")


class Browser:
    """Headless Chromium driven over the DevTools protocol on fds 3/4 (NUL-separated JSON)."""

    def __init__(self, exe: str, profile: Path) -> None:
        to_browser_r, self._w = os.pipe()
        self._r, from_browser_w = os.pipe()
        # bash puts our pipe ends on fds 3 and 4, where --remote-debugging-pipe expects them
        # (dash cannot: it only redirects fds 0-9)
        script = f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w} {to_browser_r}<&- {from_browser_w}>&-'
        self.proc = subprocess.Popen(
            [shutil.which("bash") or "bash", "-c", script, exe, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe",
             "about:blank"], pass_fds=(to_browser_r, from_browser_w),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buf, self._id = b"", 0
        self.events: List[Dict[str, Any]] = []

    def send(self, method: str, params: Optional[dict] = None, *, session: Optional[str] = None,
             timeout: float = 60.0) -> Dict[str, Any]:
        self._id += 1
        msg: Dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        end = time.monotonic() + timeout
        while True:
            reply = self._recv(end - time.monotonic())
            if reply is None:
                raise TimeoutError(f"no DevTools reply to {method} within {timeout:.0f} s")
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def _recv(self, timeout: float) -> Optional[Dict[str, Any]]:
        while b"\0" not in self._buf:
            if timeout <= 0 or not select.select([self._r], [], [], timeout)[0]:
                return None
            chunk = os.read(self._r, 1 << 20)
            if not chunk:
                return None
            self._buf += chunk
        line, self._buf = self._buf.split(b"\0", 1)
        return json.loads(line)

    def open(self, url: str, *, ready: str, width: int = 1280, height: int = 2200,
             timeout: float = 60.0) -> Dict[str, Any]:
        """Load ``url``, wait until the JS expression ``ready`` is truthy; return what was observed."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        sid = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for method in ("Runtime.enable", "Log.enable", "Page.enable", "Network.enable"):
            self.send(method, session=sid)
        self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height,
                                                         "deviceScaleFactor": 1, "mobile": False}, session=sid)
        start = len(self.events)
        self.send("Page.navigate", {"url": url}, session=sid)
        end, ok = time.monotonic() + timeout, False
        while time.monotonic() < end:
            val = self.send("Runtime.evaluate", {"expression": f"Boolean({ready})", "returnByValue": True},
                            session=sid)
            if val.get("result", {}).get("value"):
                ok = True
                break
            time.sleep(0.1)
        time.sleep(0.3)  # let late console messages arrive
        stats = self.send("Runtime.evaluate", {"returnByValue": True, "expression": (
            "JSON.stringify({rendered: document.body && document.body.getAttribute('data-rendered'),"
            " failed: document.body && document.body.getAttribute('data-failed'),"
            " plots: document.querySelectorAll('.js-plotly-plot').length,"
            " canvases: document.querySelectorAll('canvas').length,"
            " svgs: document.querySelectorAll('svg.main-svg').length})")}, session=sid)
        shot = self.send("Page.captureScreenshot", {"format": "png"}, session=sid)
        self.send("Target.closeTarget", {"targetId": target})
        events = [e for e in self.events[start:] if e.get("sessionId") == sid]
        return {"ready": ok, "stats": json.loads(stats["result"]["value"]), "errors": _errors(events),
                "requests": [e["params"]["request"]["url"] for e in events
                             if e.get("method") == "Network.requestWillBeSent"],
                "pixels": _gray(base64.b64decode(shot["data"]))}

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except (TimeoutError, RuntimeError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._w)
        os.close(self._r)


def _errors(events: List[Dict[str, Any]]) -> List[str]:
    out = []
    for e in events:
        m, p = e.get("method"), e.get("params", {})
        if m == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            out.append(f"{d.get('text')}: {d.get('exception', {}).get('description', '')[:200]}")
        elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append("console.error: " + " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"]))
        elif m == "Log.entryAdded" and p["entry"]["level"] == "error":
            out.append(f"log ({p['entry']['source']}): {p['entry']['text'][:200]}")
    return out


def _gray(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float64)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    exe = _install_or_skip()
    if not shutil.which("bash"):
        pytest.skip("bash is needed to hand the DevTools pipe to Chromium")
    b = Browser(exe, tmp_path_factory.mktemp("chromium-profile"))
    try:
        b.send("Browser.getVersion", timeout=60)
    except (TimeoutError, RuntimeError) as exc:
        b.close()
        pytest.fail(f"{exe} did not start with --remote-debugging-pipe: {exc}")
    yield b
    b.close()


def _external(urls: List[str]) -> List[str]:
    return [u for u in urls if not u.startswith(("file:", "data:", "blob:", "about:"))]


def test_report_renders_offline_without_errors_and_is_not_blank(browser, tmp_path):
    paths = write_inputs(tmp_path)
    page = write_html([str(p) for p in paths.values()], tmp_path / "report.html", title="browser test")
    n_fig = len(figures_of(parse_page(page.read_text(encoding="utf-8"))))
    seen = browser.open(page.resolve().as_uri(), ready="document.body && document.body.hasAttribute('data-rendered')")
    assert seen["ready"], f"the page never finished drawing; errors: {seen['errors']}"
    assert seen["errors"] == []
    assert _external(seen["requests"]) == []  # nothing fetched from outside
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
    assert _external(seen["requests"]) == ["http://example.invalid/x.png"]
    assert seen["stats"]["rendered"] is None
    assert seen["pixels"].std() < 1.0  # a blank page is recognised as blank
