"""Helpers of the crawl tests: the standard fake trending set, settings on the stack, reading back jobs."""
from __future__ import annotations

import time
from typing import Any

from .fakeplatform import FakePlatform, FakeVideo, MediaFactory

from pipeline import Settings, decode, make_consumer
from pipeline._messages import JobMessage

__all__ = ["ROOT", "CAPS", "settings_for", "remove_test_objects", "populate", "crawl_overrides", "settings_env",
           "consume_jobs"]

from .stack import ROOT, remove_test_objects, settings_env, settings_for

#: caps small enough for the generated clips
CAPS = dict(max_download_mb=1, max_duration_s=5, max_height=720)


def populate(platform: FakePlatform, media: MediaFactory) -> dict[str, str]:
    """The standard trending set: what each video should end as (status or status_reason prefix)."""
    small = media.clip(2)
    platform.add(FakeVideo("senate", "Senator accused of election fraud in heated debate",
                           "The senator denies the claims about the ballots.", media=small, views=90_000,
                           author="Capitol News"))
    platform.add(FakeVideo("minister", "Prime minister's leaked speech on the new immigration law",
                           media=media.clip(3), views=20_000, likes=None, author="Capitol News"))
    platform.add(FakeVideo("wahl", "Wahlbetrug bei der Bundestagswahl? Kanzler unter Druck",
                           media=media.clip(1.5), views=5_000, author="Berlin TV"))
    platform.add(FakeVideo("cat", "Cute cat plays the piano", "Our cat Mochi learned a new song.", media=small,
                           views=1_000_000))
    platform.add(FakeVideo("pasta", "Easy 10 minute pasta recipe", media=small, views=None, likes=None,
                           comments=None))
    platform.add(FakeVideo("big", "President's full rally speech", media=media.clip(2, size="640x360", noise=True)))
    platform.add(FakeVideo("long", "Parliament debate on the budget, full session", media=media.clip(8),
                           duration_s=8))
    platform.add(FakeVideo("fake", "Election officials announce the vote count", media=media.not_a_video()))
    platform.add(FakeVideo("gone", "Deleted video about the election", media=small, page_status=404))
    platform.add(FakeVideo("meta", "Governor signs the voting bill", media=small,
                           content_url="http://169.254.169.254/latest/video.mp4"))
    platform.add(FakeVideo("redir", "Campaign ad for the senate race", media=small,
                           content_url=f"{platform.base_url}/go/redir"))
    platform.redirects["/go/redir"] = "http://10.1.2.3/video.mp4"
    platform.extra_feed_links[:] = ["file:///etc/passwd", "http://[::1]:9/watch/x"]
    return {
        "senate": "queued", "minister": "queued", "wahl": "queued",
        "cat": "skipped: not political", "pasta": "skipped: not political",
        "big": "refused: larger than 1 MB cap", "long": "refused: longer than 5 s cap",
        "fake": "refused: not a video", "gone": "failed: page not found (HTTP 404)",
        "meta": "refused: host resolves to a link-local address",
        "redir": "refused: host resolves to a private address",
    }


def crawl_overrides(**extra: Any) -> dict[str, Any]:
    return {"allowed_private_networks": ["127.0.0.0/8"], "ytdlp_extractors": ["generic"], "crawl_retry_wait_s": 0.05,
            "crawl_socket_timeout_s": 5.0, "crawl_max_downloads": 10, "crawl_task_retries": 0, **CAPS, **extra}


def consume_jobs(settings: Settings, expect: int, timeout_s: float = 15.0) -> list[JobMessage]:
    """Every job on the test's jobs topic (read from the beginning with a fresh group)."""
    consumer = make_consumer(settings, f"{settings.worker_group}-check-{time.monotonic_ns()}", settings.topic_jobs,
                             consumer_timeout_ms=1000)
    jobs: list[JobMessage] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    job = decode(record.value, JobMessage)
                    assert record.key == job.video_uid.encode()
                    jobs.append(job)
            if len(jobs) >= expect and not batch:
                break
    finally:
        consumer.close()
    return jobs
