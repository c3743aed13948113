"""A headless Chromium for the monitor's page tests and screenshots: the system's browser, driven by playwright.

Nothing here downloads a browser: the browser is Debian's ``chromium`` (``apt-get install chromium``; ``.ci/run``
installs it when missing), found on PATH or with ``$CHROMIUM``, and playwright (PyPI, the ``test`` extra) starts it
by path (``executable_path``). playwright is imported only when a browser is launched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from typing import Any

#: Executables tried in this order when $CHROMIUM is not set.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


#: Options of the headless browser: no sandbox (tests run as root), no GPU, and one renderer process without
#: extensions, so the page tests add a few hundred MB, not a gigabyte, to a parallel `make test`.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--renderer-process-limit=1",
    "--disable-extensions",
    "--disable-component-extensions-with-background-pages",
    "--disable-background-networking",
)


class BrowserUnavailable(Exception):
    """No system Chromium, or playwright is not installed; the message says how to get them."""


def chromium_path() -> str:
    """Find the system's Chromium.

    :return: str = the executable's path
    :raises BrowserUnavailable: when none is found
    """
    configured = os.environ.get("CHROMIUM")
    if configured:
        if shutil.which(configured) is None:
            raise BrowserUnavailable(f"$CHROMIUM is {configured!r}, which is not an executable")
        return str(shutil.which(configured))
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise BrowserUnavailable("no Chromium found: install it with `apt-get install -y chromium` (or set $CHROMIUM)")


@contextlib.contextmanager
def headless_chromium() -> Iterator[Any]:
    """Start the system's Chromium headless under playwright, and stop it at the end of the block.

    :return: Iterator[playwright Browser] = the browser
    :raises BrowserUnavailable: when Chromium or playwright is missing
    """
    path = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as err:
        raise BrowserUnavailable("playwright is not installed: pip install -e '.[test]'") from err
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, headless=True, args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            browser.close()
