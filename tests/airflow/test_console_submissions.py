"""The console's "Check a video" form and POST /api/submissions on the real stack and the local test platform (no
worker here: scoring is the browser test's part)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.crawl import consume_jobs

from pipeline import Settings, make_es_client
from support.console import console_running, csrf_of, login

pytestmark = [pytest.mark.kafka, pytest.mark.elasticsearch, pytest.mark.slow]


def _doc(settings: Settings, uid: str) -> dict[str, Any] | None:
    es = make_es_client(settings)
    try:
        found = es.options(ignore_status=404).get(index=settings.index("videos"), id=uid)
        return found["_source"] if found.get("found") else None
    finally:
        es.close()


def _stored_files(settings: Settings) -> list[Path]:
    root = Path(settings.media_store)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_an_analyst_submits_a_link_and_a_file(crawl_settings: Settings, platform: Any, media: Any,
                                              tmp_path: Path) -> None:
    from support.fakeplatform import FakeVideo

    platform.add(FakeVideo("tip", "Cute cat plays the piano", media=media.clip(1.5)))  # not political: still taken
    with console_running(crawl_settings, tmp_path / "console.log") as base:
        ana = login(base, "ana")
        csrf = csrf_of(ana.get(f"{base}/submit", timeout=10).text)
        link = platform.page_url("tip")
        first = ana.post(f"{base}/submit", timeout=60, allow_redirects=False,
                         data={"csrf_token": csrf, "url": link, "note": "a tip by phone", "tags": "tip, phone"})
        assert first.status_code == 303, first.text[-1500:]
        assert first.headers["location"] == "/videos/generic:tip"
        doc = _doc(crawl_settings, "generic:tip")
        assert doc["status"] == "queued" and doc["submission"]["by"] == "ana"
        assert doc["submission"]["note"] == "a tip by phone" and {"tip", "phone"} <= set(doc["tags"])
        page = ana.get(f"{base}/videos/generic:tip", timeout=10).text
        assert 'data-video-status="queued"' in page and "submitted by ana" in page

        again = ana.post(f"{base}/api/submissions", timeout=60, json={"url": link},
                         headers={"x-csrf-token": csrf})
        assert again.status_code == 200 and again.json()["video_uid"] == "generic:tip" and again.json()["duplicate"]
        # a webhook the sink would refuse to call (a private address) is refused when submitted, with the reason
        hooked = ana.post(f"{base}/api/submissions", timeout=60, headers={"x-csrf-token": csrf},
                          json={"url": link, "webhook": "http://10.1.2.3/hook"})
        assert hooked.status_code == 400
        assert hooked.json()["error"] == "the webhook is refused: host resolves to a private address"

        clip = media.clip(2)
        with open(clip, "rb") as handle:
            upload = ana.post(f"{base}/submit", timeout=60, allow_redirects=False, data={"csrf_token": csrf},
                              files={"file": ("speech.mp4", handle, "video/mp4")})
        assert upload.status_code == 303, upload.text[-1500:]
        uid = upload.headers["location"].removeprefix("/videos/")
        assert uid.startswith("file:") and _doc(crawl_settings, uid)["status"] == "queued"
        with open(clip, "rb") as handle:
            same = ana.post(f"{base}/api/submissions", timeout=60, headers={"x-csrf-token": csrf},
                            files={"file": ("copy.mp4", handle, "video/mp4")})
        assert same.status_code == 200 and same.json() == {**same.json(), "video_uid": uid, "duplicate": True}

        before = _stored_files(crawl_settings)
        with open(media.not_a_video(), "rb") as handle:
            refused = ana.post(f"{base}/submit", timeout=60, data={"csrf_token": csrf},
                               files={"file": ("notes.mp4", handle, "video/mp4")})
        assert refused.status_code == 400 and "refused: notes.mp4 is not a video file" in refused.text
        assert _stored_files(crawl_settings) == before

        jobs = consume_jobs(crawl_settings, expect=2)
        assert sorted(j.video_uid for j in jobs) == sorted(["generic:tip", uid])
