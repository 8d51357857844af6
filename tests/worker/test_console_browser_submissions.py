"""Issue #23 in a real headless Chromium against the real stack: an analyst submits a link from the local test
platform (tests/support/fakeplatform.py) and uploads a file in "Check a video"; both are in the queue at once, a real
`vigil worker` (the light suite of support.worker, two small real detectors) and a real `vigil sink` score them, the
open video page shows the verdict when it lands (it reloads by itself) and the submitter's webhook (a local receiver)
is told by the sink. The same link again leads to the same video; a file that is not media is refused with a clear
message and nothing is stored; an analyst has no way to edit watchlists (no link, 403 on the page and on a forged
form post). The console runs as deployed (the pipeline's login and its own; see support.console)."""
from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.browser import browser_missing, chromium, log_in, screenshot_dir
from support.console import ROOT, console_running, deployed
from webhook_support import Receiver
from support.worker import reap, spawn, stop, wait_for

from support.stack import remove_test_objects, settings_for
from pipeline import make_es_client, run_setup

from support.fakeplatform import FakePlatform, FakeVideo, MediaFactory  # noqa: E402

pytestmark = [pytest.mark.kafka, pytest.mark.elasticsearch, pytest.mark.browser, pytest.mark.slow]

SCORED_WITHIN_MS = 180_000


def _stored(settings: Any) -> list[Path]:
    root = Path(settings.media_store)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture(scope="module")
def running(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The local platform with one video, the console, a worker and a sink, all on settings of their own."""
    reason = browser_missing()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("console-submissions")
    media = MediaFactory(tmp / "platform")
    with FakePlatform() as platform, Receiver() as receiver:
        platform.add(FakeVideo("tip", "Governor concedes the recount in a leaked call",
                               "A clip sent to the tip line.", media=media.clip(2)))
        settings = settings_for(stack_env, tmp, allowed_private_networks=["127.0.0.0/8"],
                                ytdlp_extractors=["generic"], crawl_retry_wait_s=0.05, crawl_socket_timeout_s=5.0,
                                max_download_mb=5, max_duration_s=30, worker_batch_wait_s=0.3,
                                sink_flush_interval_s=0.3, worker_session_timeout_ms=6000, sink_session_timeout_ms=6000,
                                console_public_url="https://vigil.example.org")
        run_setup(settings)
        es = make_es_client(settings)  # the test's own reads (the stack's superuser)
        # worker and sink with the pipeline's restricted login, as deployed
        worker = spawn("worker", deployed(settings), tmp / "worker.log", VIGIL_WORKER_SUITE="support.worker:make_suite")
        sink = spawn("sink", deployed(settings), tmp / "sink.log")
        try:
            with console_running(settings, tmp / "console.log") as base:
                yield {"settings": settings, "es": es, "base": base, "platform": platform, "media": media,
                       "tmp": tmp, "receiver": receiver, "shots": screenshot_dir(tmp_path_factory, "submissions")}
        finally:
            for proc in (worker, sink):
                stop(proc)
            reap()
            es.close()
            remove_test_objects(settings)


@pytest.fixture(scope="module")
def browser(running: dict[str, Any]) -> Iterator[Any]:
    with chromium() as instance:
        yield instance


def _logs(running: dict[str, Any]) -> str:
    return "\n".join(f"--- {n}\n" + (running["tmp"] / n).read_text()[-2500:]
                     for n in ("worker.log", "sink.log", "console.log") if (running["tmp"] / n).exists())


def _wait_for_verdict(page: Any, running: dict[str, Any]) -> None:
    """The page polls while the video is queued and reloads once it is scored."""
    try:
        page.wait_for_selector("[data-video-status=scored]", timeout=SCORED_WITHIN_MS)
    except Exception as exc:
        raise AssertionError(f"not scored in time: {exc}\n{_logs(running)}") from exc


def test_analyst_submits_a_link_and_a_file_and_sees_the_verdicts(running: dict[str, Any], browser: Any) -> None:
    base, shots, es, settings = running["base"], running["shots"], running["es"], running["settings"]
    page = log_in(browser, base, "ana")
    page.click("nav a:has-text('Check a video')")
    page.wait_for_url(f"{base}/submit")
    link = running["platform"].page_url("tip")
    page.fill("input[name=url]", link)
    page.fill("textarea[name=note]", "sent by a caller, says it is <b>fake</b>")
    page.fill("input[name=tags]", "tip-line, recount")
    page.fill("input[name=webhook]", running["receiver"].url("/tipline/hook"))  # told when the verdict lands
    page.screenshot(path=str(shots / "1_submit_link.png"), full_page=True)
    page.click("form.submit button[type=submit]")
    page.wait_for_url(f"{base}/videos/generic:tip")
    if page.locator("[data-video-status]").get_attribute("data-video-status") == "queued":
        assert "updates by itself" in page.locator("[data-waiting]").inner_text()
    assert "submitted by ana" in page.locator("p.meta").nth(1).inner_text()
    assert "<b>fake</b>" in page.locator("p.meta").nth(1).inner_text()  # the note as text
    page.screenshot(path=str(shots / "2_link_queued.png"), full_page=True)
    _wait_for_verdict(page, running)
    assert page.locator("[data-waiting]").count() == 0
    verdict = page.locator(".summary .verdict").inner_text().strip()
    assert verdict in ("likely manipulated", "suspicious", "no signal", "inconclusive"), verdict
    video = es.get(index=settings.index("videos"), id="generic:tip")["_source"]
    assert video["fused"]["verdict"].replace("_", " ") == verdict
    assert video["submission"]["by"] == "ana" and {"tip-line", "recount"} <= set(video["tags"])
    page.screenshot(path=str(shots / "3_link_scored.png"), full_page=True)
    # the submitter's webhook got the verdict from the sink
    received = running["receiver"].received
    assert wait_for(lambda: received, timeout_s=20), _logs(running)
    assert [(p, b) for p, b, _ in received] == [("/tipline/hook", {
        "video_uid": "generic:tip", "verdict": video["fused"]["verdict"], "score": video["fused"]["score"],
        "url": "https://vigil.example.org/videos/generic:tip"})]

    # a file upload
    page.goto(f"{base}/submit")
    clip = running["media"].clip(3, size="176x144")
    page.set_input_files("input[name=file]", str(clip))
    page.fill("textarea[name=note]", "uploaded from a mail attachment")
    page.click("form.submit button[type=submit]")
    page.wait_for_url(f"{base}/videos/file:*")
    upload_uid = page.url.removeprefix(f"{base}/videos/")
    page.screenshot(path=str(shots / "4_upload_queued.png"), full_page=True)
    _wait_for_verdict(page, running)
    assert page.locator(".summary .verdict").inner_text().strip()
    assert page.locator("h1.video-title").inner_text() == clip.name
    page.screenshot(path=str(shots / "5_upload_scored.png"), full_page=True)

    # both in the queue, scored
    page.goto(f"{base}/")
    uids = page.eval_on_selector_all("table.queue td.title .uid", "els => els.map(e => e.textContent)")
    assert any("generic:tip" in u for u in uids) and any(upload_uid in u for u in uids), uids
    assert "None" not in " ".join(uids)  # an upload has no channel: nothing printed for it
    page.screenshot(path=str(shots / "6_queue.png"), full_page=True)

    # the same link again: the same video, no second job or document
    page.goto(f"{base}/submit")
    page.fill("input[name=url]", link)
    page.click("form.submit button[type=submit]")
    page.wait_for_url(f"{base}/videos/generic:tip?duplicate=1")
    assert "Submitted before" in page.locator("[data-duplicate]").inner_text()
    assert page.locator("[data-video-status]").get_attribute("data-video-status") == "scored"
    page.screenshot(path=str(shots / "7_duplicate.png"), full_page=True)
    es.indices.refresh(index=settings.index("videos"))
    assert es.count(index=settings.index("videos"), query={"term": {"url.full": link}})["count"] == 1
    assert es.count(index=settings.index("videos"))["count"] == 2


def test_a_file_that_is_not_media_is_refused_and_nothing_is_stored(running: dict[str, Any], browser: Any) -> None:
    base, shots, es, settings = running["base"], running["shots"], running["es"], running["settings"]
    es.indices.refresh(index=settings.index("videos"))
    videos, files = es.count(index=settings.index("videos"))["count"], _stored(settings)
    page = log_in(browser, base, "ana")
    page.goto(f"{base}/submit")
    page.set_input_files("input[name=file]", str(running["media"].not_a_video()))
    page.click("form.submit button[type=submit]")
    page.wait_for_load_state()
    assert page.url == f"{base}/submit"
    message = page.locator("[data-submit-error]").inner_text()
    assert message.startswith("refused: not-a-video.mp4 is not a video file"), message
    page.screenshot(path=str(shots / "8_not_media.png"), full_page=True)
    es.indices.refresh(index=settings.index("videos"))
    assert es.count(index=settings.index("videos"))["count"] == videos
    assert _stored(settings) == files


def test_an_analyst_cannot_edit_watchlists(running: dict[str, Any], browser: Any) -> None:
    base, shots = running["base"], running["shots"]
    page = log_in(browser, base, "ana")
    assert page.locator("nav a", has_text="Watchlists").count() == 0
    response = page.goto(f"{base}/watchlists")
    assert response.status == 403
    assert page.locator("form.addentry").count() == 0 and page.locator("button:has-text('Remove')").count() == 0
    page.screenshot(path=str(shots / "9_watchlists_refused.png"), full_page=True)
    page.goto(f"{base}/submit")  # a real CSRF token of this session: the role is what refuses the post
    csrf = page.locator("form.submit input[name=csrf_token]").get_attribute("value")
    forged = page.request.post(f"{base}/watchlists/add", headers={"Origin": base}, form={
        "csrf_token": csrf, "watchlist": "analyst-made", "kind": "url", "target": "https://example.org/v/1"})
    assert forged.status == 403
    assert page.request.get(f"{base}/api/watchlists").status == 403
    store = running["es"]
    assert not store.options(ignore_status=404).indices.exists(index=running["settings"].index("watchlists")) or (
        store.count(index=running["settings"].index("watchlists"))["count"] == 0)
    # an admin has the edit controls
    admin = log_in(browser, base, "root")
    assert admin.goto(f"{base}/watchlists").status == 200
    assert admin.locator("form.addentry button:has-text('Add')").count() == 1
    admin.screenshot(path=str(shots / "10_watchlists_admin.png"), full_page=True)
