"""The analyst console in a real headless Chromium (Debian's chromium package, driven by Playwright; no browser
download) against the real local stack, with real worker output: two generated talking-head clips, one with the
audio 400 ms late (desynced), one in sync, analysed by a real `vigil worker` (lipsync) and written by a real
`vigil sink`. The console runs as deployed (the pipeline's login, and its own for its index: support.console).
Screenshots go to ``$VIGIL_SCREENSHOT_DIR`` (default: the test's tmp dir, printed)."""
from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.browser import browser_missing, chromium, log_in
from support.console import console_running
from support.worker import job_for, produce, reap, spawn, stop, wait_for

from support.stack import remove_test_objects, settings_for
from pipeline import Settings, encode, make_es_client, run_setup

pytestmark = [pytest.mark.kafka, pytest.mark.elasticsearch, pytest.mark.browser, pytest.mark.slow]

EVIL_TITLE = "<script>window.__pwned = 1</script> Senator's speech (desynced)"


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = Path(os.environ.get("VIGIL_SCREENSHOT_DIR") or tmp_path_factory.mktemp("screenshots"))
    directory.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots in {directory}")
    return directory


@pytest.fixture(scope="module")
def scored(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two clips through a real worker and sink; the console running on them."""
    reason = browser_missing()
    if reason:
        pytest.skip(reason)
    from detectors.synthetic import make_talking_clip

    tmp = tmp_path_factory.mktemp("console")
    settings = settings_for(stack_env, tmp, worker_batch_size=2, worker_batch_wait_s=0.5, sink_flush_interval_s=0.3,
                            worker_detectors=["lipsync"])
    run_setup(settings)
    es = make_es_client(settings)
    desynced = make_talking_clip(tmp / "desynced.mp4", offset_ms=400.0, seed=1)
    in_sync = make_talking_clip(tmp / "in_sync.mp4", offset_ms=0.0, seed=2)
    jobs = {"desynced": job_for(settings, desynced.path, "file:desynced-speech"),
            "in_sync": job_for(settings, in_sync.path, "file:in-sync-speech")}
    titles = {"desynced": EVIL_TITLE, "in_sync": "Minister's speech (in sync)"}
    for key, job in jobs.items():  # what the crawl or `vigil submit` leaves on the video before it is scored
        es.index(index=settings.index("videos"), id=job.video_uid, refresh=True, document={
            "video_uid": job.video_uid, "platform": "file", "title": titles[key], "status": "queued",
            "media": {"sha256": job.media_sha256, "uri": job.media_uri}})
    produce(settings, settings.topic_jobs, [(j.video_uid.encode(), encode(j)) for j in jobs.values()])
    sink = spawn("sink", settings, tmp / "sink.log")
    worker = spawn("worker", settings, tmp / "worker.log")

    def both_scored() -> bool:
        es.indices.refresh(index=settings.index("videos"))
        docs = es.mget(index=settings.index("videos"), ids=[j.video_uid for j in jobs.values()])["docs"]
        return all(d.get("found") and d["_source"].get("status") == "scored" for d in docs)

    try:
        assert wait_for(both_scored, timeout_s=300, interval_s=1.0), (tmp / "worker.log").read_text()[-4000:]
    finally:
        stop(worker)
        stop(sink)
    try:
        with console_running(settings, tmp / "console.log") as base:
            yield {"settings": settings, "es": es, "base": base, "jobs": jobs, "tmp": tmp}
    finally:
        reap()
        es.close()
        remove_test_objects(settings)


@pytest.fixture(scope="module")
def browser(scored: dict[str, Any]) -> Iterator[Any]:
    with chromium() as instance:
        yield instance


def _login(browser: Any, base: str, name: str) -> Any:
    # bypass_csp: the test's own probes need eval, and an unescaped <script> would run, so escaping is what is tested
    return log_in(browser, base, name, bypass_csp=True)


def test_queue_ranks_desynced_above_in_sync_and_titles_are_text(scored: dict[str, Any], browser: Any,
                                                                 shots: Path) -> None:
    page = _login(browser, scored["base"], "ana")
    page.wait_for_function("document.querySelector('[data-counter=videos]').textContent !== '…'")
    page.screenshot(path=str(shots / "queue.png"), full_page=True)
    uids = page.eval_on_selector_all("table.queue td.title .uid", "els => els.map(e => e.textContent)")
    order = [next(i for i, text in enumerate(uids) if uid in text) for uid in
             (scored["jobs"]["desynced"].video_uid, scored["jobs"]["in_sync"].video_uid)]
    assert order[0] < order[1], uids
    # the title with <script> is shown as text and never ran
    assert page.locator("table.queue td.title a").first.inner_text().startswith("<script>")
    assert page.evaluate("window.__pwned === undefined")
    assert page.locator("[data-counter=videos]").inner_text() == "2"  # the live counters were fetched


def test_video_page_plays_media_with_ranges_and_marks_the_flagged_window(scored: dict[str, Any], browser: Any,
                                                                         shots: Path) -> None:
    page = _login(browser, scored["base"], "ana")
    statuses: list[int] = []
    page.on("response", lambda r: statuses.append(r.status) if "/media/" in r.url else None)
    uid = scored["jobs"]["desynced"].video_uid
    page.goto(f"{scored['base']}/videos/{uid}")
    assert page.locator("h1.video-title").inner_text() == EVIL_TITLE  # text, not markup
    assert page.evaluate("window.__pwned === undefined")
    # the browser plays the stored file through the console
    page.wait_for_function("document.getElementById('player').readyState >= 2", timeout=30_000)
    page.evaluate("document.getElementById('player').muted = true; document.getElementById('player').play()")
    page.wait_for_function("document.getElementById('player').currentTime > 0.3", timeout=30_000)
    assert 206 in statuses, statuses  # range requests served
    # the lipsync timeline is drawn with its flagged window, and the player's timeline is marked
    assert page.locator("svg.timeline text.label", has_text="lipsync").count() == 1
    assert page.locator("svg.timeline rect.flagged").count() >= 1
    assert page.locator("svg.marks rect.mark").count() >= 1
    assert "mouth" in page.locator("table.detectors").inner_text() or "ms" in page.locator(
        "table.detectors").inner_text()
    # the worker's face-crop keyframes, served through the console from the media store
    assert page.locator(".faces img").count() >= 1
    page.wait_for_function("[...document.querySelectorAll('.faces img')].every(i => i.complete && i.naturalWidth > 0)")
    page.locator("svg.marks rect.mark").first.click()  # jumps the player to the flagged window
    page.screenshot(path=str(shots / "video_desynced.png"), full_page=True)


def test_verdict_is_recorded_in_elasticsearch(scored: dict[str, Any], browser: Any, shots: Path) -> None:
    page = _login(browser, scored["base"], "ana")
    uid = scored["jobs"]["in_sync"].video_uid
    page.goto(f"{scored['base']}/videos/{uid}")
    page.check("input[name=verdict][value=manipulated]")
    page.fill("textarea[name=note]", "voice is cloned: <b>not</b> the minister")
    page.click("button:has-text('Record verdict')")
    page.wait_for_url(f"**/videos/{uid}#verdict")
    page.locator("#verdict").screenshot(path=str(shots / "verdict.png"))
    assert "voice is cloned: <b>not</b> the minister" in page.locator("#verdict table").inner_text()
    settings, es = scored["settings"], scored["es"]
    es.indices.refresh(index=settings.index("verdicts"))
    hits = es.search(index=settings.index("verdicts"), query={"term": {"video_uid": uid}})["hits"]["hits"]
    assert [h["_source"]["verdict"] for h in hits] == ["manipulated"]
    doc = hits[0]["_source"]
    assert doc["analyst"] == "ana" and doc["media_sha256"] == scored["jobs"]["in_sync"].media_sha256
    assert doc["suite_version"] and doc["scores"]["fused"] is not None and "lipsync" in doc["scores"]["detectors"]
    video = es.get(index=settings.index("videos"), id=uid)["_source"]
    assert video["analyst"]["verdict"] == "manipulated" and video["analyst"]["analyst"] == "ana"
    # the analyst's verdict outranks the model: the in-sync clip now heads the queue
    page.goto(f"{scored['base']}/")
    first = page.locator("table.queue td.title .uid").first.inner_text()
    page.screenshot(path=str(shots / "queue_after_verdict.png"), full_page=True)
    assert uid in first


def test_analyst_cannot_reach_admin_and_forms_need_the_csrf_token(scored: dict[str, Any], browser: Any,
                                                                   shots: Path) -> None:
    page = _login(browser, scored["base"], "ana")
    response = page.goto(f"{scored['base']}/admin")
    assert response.status == 403
    page.screenshot(path=str(shots / "admin_refused.png"))
    assert page.request.get(f"{scored['base']}/api/admin/users").status == 403
    # a form with its CSRF token removed is refused
    uid = scored["jobs"]["desynced"].video_uid
    page.goto(f"{scored['base']}/videos/{uid}")
    page.evaluate("document.querySelector('form.verdict input[name=csrf_token]').remove()")
    page.check("input[name=verdict][value=authentic]")
    with page.expect_navigation():
        page.click("button:has-text('Record verdict')")
    assert "CSRF" in page.locator("p.error").inner_text()
    page.screenshot(path=str(shots / "csrf_refused.png"))
    settings, es = scored["settings"], scored["es"]
    es.indices.refresh(index=settings.index("verdicts"))
    assert es.count(index=settings.index("verdicts"), query={"term": {"video_uid": uid}})["count"] == 0
    # an admin does reach it
    admin = _login(browser, scored["base"], "root")
    assert admin.goto(f"{scored['base']}/admin").status == 200
    admin.screenshot(path=str(shots / "admin.png"), full_page=True)
