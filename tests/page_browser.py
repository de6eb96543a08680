"""Headless Chromium (Debian's `chromium` and `chromium-driver`) driven by selenium, for the
station page's tests and its screenshot. Nothing is downloaded: the driver is named explicitly."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
DRIVER = os.environ.get("CHROMEDRIVER", shutil.which("chromedriver") or "/usr/bin/chromedriver")
SIZE = (1024, 768)  # the line PCs' panel


def available() -> bool:
    return Path(CHROMIUM).exists() and Path(DRIVER).exists()


def browser(size: tuple[int, int] = SIZE):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-default-apps",
                "--disable-sync", "--disable-domain-reliability", "--no-pings", "--lang=en-US", "--force-device-scale-factor=1",
                # Nothing but loopback: no name resolves, and anything else would go to a proxy that is not there.
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1", "--proxy-server=127.0.0.1:9",
                f"--window-size={size[0]},{size[1]}"):
        opts.add_argument(arg)
    d = webdriver.Chrome(service=Service(DRIVER), options=opts)
    # --window-size sets the outer window; make the page itself SIZE, as on the panel.
    inner = d.execute_script("return [window.innerWidth, window.innerHeight]")
    d.set_window_size(2 * size[0] - inner[0], 2 * size[1] - inner[1])
    return d


async def wait(driver, condition, timeout: float = 10.0, what: str = ""):
    """WebDriverWait in a thread, so that the event loop (simulators on ptys) keeps running."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return await asyncio.to_thread(WebDriverWait(driver, timeout, poll_frequency=0.02).until, condition)
    except TimeoutException:
        raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}") from None
