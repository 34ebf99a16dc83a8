"""Debian's Chromium, headless, driven by Playwright from PyPI (no browser download: the system
binary is given as executable_path). Every page edgetl writes or serves is opened here."""
from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Without these, Chromium reaches for Google's services at start, which this closed network refuses.
QUIET_FLAGS = ["--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--no-first-run", "--disable-quic", "--disable-default-apps"]


@contextlib.contextmanager
def browser_page(width: int = 1100, height: int = 900, bypass_csp: bool = False) -> Iterator:
    """A fresh page in headless Chromium, and the list of every URL it requested. Playwright's
    ``evaluate`` and ``wait_for_function`` run script the page did not bring, which a page's
    Content-Security-Policy refuses: ``bypass_csp`` lets a test drive such a page that way (its
    locators and screenshots need no bypass)."""
    if not shutil.which(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (.ci/run installs it: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=QUIET_FLAGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height}, bypass_csp=bypass_csp)
            requested: list[str] = []
            page.on("request", lambda r: requested.append(r.url))
            yield page, requested
        finally:
            browser.close()


def not_blank(png: bytes) -> bool:
    """True when a screenshot shows something: many distinct grey levels, not one flat colour."""
    import cv2
    import numpy as np

    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    return img is not None and img.std() > 10 and len(np.unique(img)) > 20
