"""Issue #24 in a real headless Chromium: log in, log out, and the session cookie copied before the logout is refused
when replayed (in a fresh browser and by a script), because the session lived on the server and logout ended it."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from support.browser import browser_missing, chromium, log_in, screenshot_dir
from support.console import console_running

from support.stack import remove_test_objects, settings_for
from pipeline import make_es_client, run_setup

pytestmark = [pytest.mark.elasticsearch, pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def console(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    reason = browser_missing()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("console-sessions")
    settings = settings_for(stack_env, tmp)
    run_setup(settings)
    es = make_es_client(settings)
    es.index(index=settings.index("videos"), id="youtube:one", refresh=True, document={
        "video_uid": "youtube:one", "platform": "youtube", "title": "Senator's speech", "status": "scored",
        "fused": {"score": 0.71, "verdict": "likely_manipulated"}})
    try:
        with console_running(settings, tmp / "console.log") as base:
            yield {"settings": settings, "base": base, "shots": screenshot_dir(tmp_path_factory, "sessions")}
    finally:
        es.close()
        remove_test_objects(settings)


def test_logout_ends_the_session_and_the_copied_cookie_is_refused(console: dict[str, Any]) -> None:
    from playwright.sync_api import expect

    base, shots = console["base"], console["shots"]
    with chromium() as browser:
        page = log_in(browser, base, "root")
        # a locator wait: a string predicate (wait_for_function) is evaluated with eval, which the page's CSP refuses
        expect(page.locator("[data-counter=videos]")).not_to_have_text("…")
        page.screenshot(path=str(shots / "1_logged_in.png"), full_page=True)
        assert page.locator("header .who").inner_text() == "root (admin)"
        cookie = next(c for c in page.context.cookies() if c["name"] == "vigil_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
        assert page.evaluate("document.cookie").find("vigil_session") == -1  # scripts cannot read it
        assert page.request.get(f"{base}/api/admin/users").status == 200

        page.click("button:has-text('Log out')")
        page.wait_for_url(f"{base}/login")
        page.screenshot(path=str(shots / "2_logged_out.png"), full_page=True)
        assert not [c for c in page.context.cookies() if c["name"] == "vigil_session"]
        page.goto(f"{base}/admin")
        assert "/login" in page.url  # this browser is logged out

        # the cookie copied before the logout, replayed in a fresh browser: sent to the login form
        replay = browser.new_context(viewport={"width": 1280, "height": 900})
        replay.add_cookies([{"name": "vigil_session", "value": cookie["value"], "url": base}])
        other = replay.new_page()
        other.goto(f"{base}/admin")
        assert "/login" in other.url and other.locator("input[name=password]").count() == 1
        other.screenshot(path=str(shots / "3_replayed_cookie.png"), full_page=True)
        assert other.request.get(f"{base}/api/admin/users").status == 401
        assert other.request.get(f"{base}/api/queue").status == 401
    # and by a script, with nothing but the cookie
    answer = requests.get(f"{base}/api/admin/users", cookies={"vigil_session": cookie["value"]}, timeout=10)
    assert answer.status_code == 401 and "users" not in answer.text
