"""The report tests' browser: one headless Chromium per test module that asks for it."""

import shutil

import pytest

from tests.report.browser import Browser, install_or_skip


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    exe = install_or_skip()
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
