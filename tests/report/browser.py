"""Headless Chromium for the report tests, driven over the DevTools protocol on a pipe
(``--remote-debugging-pipe``: no port, no extra Python package). It reports console errors,
uncaught exceptions, error log entries and every network request; the screenshot comes from the
same page. Uses Debian's ``chromium`` package, installed where it can be (root with apt-get);
otherwise the tests that need it are skipped with the reason."""

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

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--hide-scrollbars", "--mute-audio",
         # 3-D surfaces need WebGL: software rendering, opted into explicitly for these local pages
         "--enable-unsafe-swiftshader", "--use-angle=swiftshader"]
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> Optional[str]:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def install_or_skip() -> str:
    exe = find_browser()
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
        exe = find_browser()
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
        return {"ready": ok, "stats": json.loads(stats["result"]["value"]), "errors": page_errors(events),
                "requests": [e["params"]["request"]["url"] for e in events
                             if e.get("method") == "Network.requestWillBeSent"],
                "pixels": gray(base64.b64decode(shot["data"]))}

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


def page_errors(events: List[Dict[str, Any]]) -> List[str]:
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


def gray(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float64)



def external_urls(urls: List[str]) -> List[str]:
    return [u for u in urls if not u.startswith(("file:", "data:", "blob:", "about:"))]
