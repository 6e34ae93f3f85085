"""The UI's server and Debian's Chromium for browser tests.

`UiServer` runs the real `palmnet ui` command (a subprocess, port 0) and reads the
URL with the token from its first line. `browser()` drives /usr/bin/chromium
headless through /usr/bin/chromedriver with Selenium: no browser or driver is
downloaded (Selenium Manager is never asked, the driver's path is given).
"""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
URL = re.compile(r"^http://(\[[0-9a-f:]+\]|[0-9.]+):(\d+)/\?token=(\S+)$")


def browser_missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return f"{path} is not installed (apt install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    return None


class UiServer:
    """`palmnet ui --port 0 [args]` in the background; `url` holds the token URL."""

    def __init__(self, *args: str, deadline: float = 30) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "palmnet", "ui", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], deadline)
        if not ready:
            self.stop()
            raise AssertionError(f"palmnet ui printed no URL in {deadline} s")
        self.first_line = self.proc.stdout.readline().strip()
        match = URL.match(self.first_line)
        if match is None:
            err = self.stop()
            raise AssertionError(f"first line is not the URL: {self.first_line!r}\n{err}")
        self.host, self.port, self.token = match.group(1), int(match.group(2)), match.group(3)
        self.url = self.first_line
        self.base = f"http://{self.host}:{self.port}"

    def stop(self) -> str:
        """Stop the server (SIGTERM); what it wrote on stderr."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        assert self.proc.stderr is not None
        return self.proc.stderr.read()


@contextmanager
def browser(downloads: Path) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",  # as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={downloads / 'chromium-profile'}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(downloads / "chromium-profile", ignore_errors=True)


def wait_for(what: str, check, deadline: float = 30, every: float = 0.1):  # type: ignore[no-untyped-def]
    """Poll `check()` until it returns something true; fail naming `what`."""
    end = time.monotonic() + deadline
    last = None
    while time.monotonic() < end:
        try:
            last = check()
        except Exception as exc:  # an element not there yet
            last = exc
        else:
            if last:
                return last
        time.sleep(every)
    raise AssertionError(f"{what} did not happen in {deadline} s (last: {last!r})")
