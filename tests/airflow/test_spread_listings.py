"""Spread readings from listings on the real stack: a channel's page that shows its videos' counters is read once
for all of its followed videos that are due or inside their early window; what it does not show is read from the
video's own page, and a listing that shows none of a video's counters is not asked for it again."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from support.spread import documents, seed_videos, set_video_fields, snapshots, whole_seconds

from support.fakeplatform import FakeVideo
from pipeline.spread import run_refresh

pytestmark = [pytest.mark.elasticsearch, pytest.mark.slow]


def _seed(platform: Any, media: Any, settings: Any) -> tuple[dict[str, str], datetime]:
    now = whole_seconds(datetime.now(UTC))
    clip = media.clip(1)
    for n in range(6):  # r4 is 4 h 50 min old: its 5 h checkpoint is 10 min away
        age = timedelta(hours=5, minutes=-10) if n == 4 else timedelta(hours=3)
        platform.add(FakeVideo(f"r{n}", f"Rally speech part {n}", media=clip, views=100 * (n + 1), likes=10 + n,
                               comments=n, author="Rally TV", uploaded=now - age))
    platform.add(FakeVideo("solo", "A lone upload", media=clip, views=77, author="Solo Channel",
                           uploaded=now - timedelta(hours=3)))
    uids = seed_videos(platform, settings, [f"r{n}" for n in range(6)] + ["solo"], stored=set())
    platform.requests.clear()
    return uids, now


def test_a_channel_listing_reads_its_due_videos_in_one_request(platform: Any, media: Any,
                                                                 make_crawl_settings: Any) -> None:
    settings = make_crawl_settings(spread_min_interval_s=0.0, crawl_fetch_subtitles=False)
    uids, now = _seed(platform, media, settings)
    due = {"next_poll": now - timedelta(minutes=1), "poll_deadline": now + timedelta(minutes=29),
           "poll_early": now - timedelta(minutes=31)}
    fields = {uids[f"r{n}"]: due for n in range(4)} | {uids["solo"]: due}
    # r4: its 5 h checkpoint is 10 min away, inside its window (30 min either side): it comes with the listing
    fields[uids["r4"]] = {"next_poll": now + timedelta(minutes=10), "poll_deadline": now + timedelta(minutes=40),
                          "poll_early": now - timedelta(minutes=20)}
    # r5: 4 h away, outside its window: not read although the listing shows it
    fields[uids["r5"]] = {"next_poll": now + timedelta(hours=4), "poll_deadline": now + timedelta(hours=4.5),
                          "poll_early": now + timedelta(hours=3.5)}
    set_video_fields(settings, fields)
    for n in range(6):
        platform.videos[f"r{n}"].views += 1000
    platform.videos["solo"].views = 90

    summary = run_refresh(settings, clock=lambda: now + timedelta(seconds=5))

    assert summary.failed == 0 and summary.polled == 6
    # one request to the channel's page for five videos, one page request for the video whose channel is alone
    assert platform.channel_requests("Rally TV") == 1 and platform.listing_requests() == 1
    assert platform.page_requests("solo") == 1
    assert sum(platform.page_requests(f"r{n}") for n in range(6)) == 0
    assert summary.page_reads == pytest.approx(2.0)
    rows = {r["video_uid"]: r for r in summary.rows}
    assert {uid for uid, r in rows.items() if r["source"] == "listing"} == {uids[f"r{n}"] for n in range(5)}
    assert rows[uids["solo"]]["source"] == "page"
    assert sum(r["reads"] for r in rows.values() if r["source"] == "listing") == pytest.approx(1.0)
    docs = documents(settings)
    assert [docs[uids[f"r{n}"]]["spread"]["views"] for n in range(5)] == [1100, 1200, 1300, 1400, 1500]
    assert docs[uids["r2"]]["spread"]["likes"] == 12  # the listing shows likes too
    assert "spread" not in docs[uids["r5"]] or docs[uids["r5"]]["spread"].get("views") != 1600
    # r4's reading, 10 min early, took its 5 h checkpoint: the next is the 24 h one
    published = now - timedelta(hours=5, minutes=-10)
    next_r4 = datetime.fromisoformat(docs[uids["r4"]]["next_poll"])
    assert next_r4 == published + timedelta(hours=24)
    assert snapshots(settings, uids["r1"])[-1]["source"] == "listing"


def test_a_listing_without_counters_falls_back_to_pages_once(platform: Any, media: Any,
                                                              make_crawl_settings: Any) -> None:
    settings = make_crawl_settings(spread_min_interval_s=0.0, crawl_fetch_subtitles=False)
    uids, now = _seed(platform, media, settings)
    platform.listing_counters = False  # this platform's channel pages list videos without their counters
    due = {"next_poll": now - timedelta(minutes=1), "poll_deadline": now + timedelta(minutes=29),
           "poll_early": now - timedelta(minutes=31)}
    set_video_fields(settings, {uids[f"r{n}"]: due for n in range(3)})

    summary = run_refresh(settings, clock=lambda: now + timedelta(seconds=5))
    assert summary.polled == 3 and summary.failed == 0
    assert platform.channel_requests("Rally TV") == 1
    assert [platform.page_requests(f"r{n}") for n in range(3)] == [1, 1, 1]
    assert summary.page_reads == pytest.approx(4.0)  # the listing's request counts
    assert {r["source"] for r in summary.rows} == {"page"}
    docs = documents(settings)
    assert all(docs[uids[f"r{n}"]]["listings_missed"] == [platform.channel_url("Rally TV")] for n in range(3))

    set_video_fields(settings, {uids[f"r{n}"]: due for n in range(3)})
    summary = run_refresh(settings, clock=lambda: now + timedelta(minutes=2))
    assert summary.polled == 3 and summary.page_reads == pytest.approx(3.0)
    assert platform.channel_requests("Rally TV") == 1  # not asked again for them


def test_listings_off_reads_every_page(platform: Any, media: Any, make_crawl_settings: Any) -> None:
    settings = make_crawl_settings(spread_min_interval_s=0.0, crawl_fetch_subtitles=False, spread_listings=False)
    uids, now = _seed(platform, media, settings)
    due = {"next_poll": now - timedelta(minutes=1), "poll_deadline": now + timedelta(minutes=29),
           "poll_early": now - timedelta(minutes=31)}
    set_video_fields(settings, {uids[f"r{n}"]: due for n in range(4)})
    summary = run_refresh(settings, clock=lambda: now + timedelta(seconds=5))
    assert summary.polled == 4 and summary.page_reads == pytest.approx(4.0)
    assert platform.listing_requests() == 0
