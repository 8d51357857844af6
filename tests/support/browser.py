"""Helpers for the console's browser tests: Debian's chromium driven by Playwright (no browser download), a
screenshot folder, a logged-in page."""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from .console import PASSWORDS

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def browser_missing() -> str | None:
    """Why no browser test can run here, or None."""
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed (worker env: pip install -e '.[browser-test]')"
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} missing (apt-get install chromium)"
    return None


def screenshot_dir(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """``$VIGIL_SCREENSHOT_DIR/<name>``, else a tmp dir (printed)."""
    base = os.environ.get("VIGIL_SCREENSHOT_DIR")
    directory = Path(base) / name if base else tmp_path_factory.mktemp(f"screenshots-{name}")
    directory.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots in {directory}")
    return directory


def launch(pw: Any) -> Any:
    return pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Debian chromium for the block (the module fixtures ``browser`` of the browser tests)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = launch(pw)
        try:
            yield instance
        finally:
            instance.close()


def log_in(browser: Any, base: str, name: str, **context: Any) -> Any:
    """A new browser context logged in as ``name`` through the login form; returns its page (on the queue)."""
    page = browser.new_context(viewport={"width": 1280, "height": 900}, **context).new_page()
    page.goto(f"{base}/")
    assert "/login" in page.url  # not logged in: sent to the login form
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORDS[name])
    page.click("button:has-text('Log in')")
    page.wait_for_url(f"{base}/")
    return page
