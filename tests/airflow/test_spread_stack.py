"""Spread refresh on the real stack: the fake platform's counters change between polls, snapshots accumulate, the
metrics match values computed by hand, and a re-encoded, resized re-upload joins the original's cluster."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.spread import (WebhookReceiver, documents, flag, lavfi_clip, make_due, seed_videos, snapshots, transcode,
                       whole_seconds)

from support.fakeplatform import FakeVideo
from pipeline.crawl import CrawlIndex, WatchlistEntry, discover_entry
from pipeline.spread import cluster_id_of, run_refresh

pytestmark = [pytest.mark.elasticsearch, pytest.mark.slow]


def _hours(later: str | datetime, earlier: str | datetime) -> float:
    def parse(x: str | datetime) -> datetime:
        return x if isinstance(x, datetime) else datetime.fromisoformat(x.replace("Z", "+00:00"))

    return (parse(later) - parse(earlier)).total_seconds() / 3600


@pytest.fixture
def scene(platform: Any, media: Any, make_crawl_settings: Any, tmp_path: Path) -> dict[str, Any]:
    # hourly checkpoints, so that every video is due at each of the hours the tests poll at
    settings = make_crawl_settings(spread_min_interval_s=0.0, crawl_fetch_subtitles=False,
                                   spread_checkpoints_h=[1, 2, 3, 4, 5, 6])
    uploaded = whole_seconds(datetime.now(UTC)) - timedelta(hours=2)
    original = media.clip(2)
    channel = "Capitol News"
    platform.add(FakeVideo("flag", "Senator's confession on the ballots", media=original, views=1000, likes=100,
                           comments=10, author=channel, uploaded=uploaded))
    for name, views in (("b1", 100), ("b2", 200), ("b3", 400), ("b4", 4000)):  # the channel's usual
        platform.add(FakeVideo(name, f"Committee hearing {name}", media=original, views=views, author=channel,
                               uploaded=uploaded))
    platform.add(FakeVideo("copy", "SHOCKING senator confession (reupload)", views=50, author="Repost Bot",
                           media=transcode(original, tmp_path / "copy.mp4"), uploaded=uploaded + timedelta(hours=1)))
    platform.add(FakeVideo("other", "Budget debate highlights", views=10, author="Parliament TV",
                           media=lavfi_clip(tmp_path / "other.mp4"), uploaded=uploaded))
    uids = seed_videos(platform, settings, ["flag", "b1", "b2", "b3", "b4", "copy", "other"],
                       stored={"flag", "copy", "other"})
    flag(settings, uids["flag"], 0.92)
    return {"settings": settings, "uids": uids, "uploaded": uploaded}


def test_refresh_accumulates_snapshots_and_metrics_match_by_hand(scene: dict[str, Any], platform: Any) -> None:
    settings, uids, uploaded = scene["settings"], scene["uids"], scene["uploaded"]
    start = whole_seconds(datetime.now(UTC))
    first_poll, second_poll = start + timedelta(hours=1), start + timedelta(hours=2)
    videos = platform.videos

    for name, views in (("flag", 2000), ("b1", 150), ("b2", 300), ("b3", 600), ("b4", 5000)):
        videos[name].views = views
    summary = run_refresh(settings, clock=lambda: first_poll)
    assert summary.polled == 7 and summary.failed == 0
    assert summary.hashed == 3

    for name, views in (("flag", 5000), ("b1", 200), ("b2", 400), ("b3", 800), ("b4", 6000), ("copy", 400)):
        videos[name].views = views
    videos["other"].views = None  # the platform withholds it now
    videos["other"].likes = None
    summary = run_refresh(settings, clock=lambda: second_poll)
    assert summary.polled == 7 and summary.hashed == 0

    # snapshots accumulate: the crawl's first one, then one per refresh
    snaps = snapshots(settings, uids["flag"])
    assert [s["views"] for s in snaps] == [1000, 2000, 5000]
    assert snaps[0]["event"]["dataset"] == "vigil.crawl" and snaps[2]["event"]["dataset"] == "vigil.spread"
    t0, t1, t2 = (s["@timestamp"] for s in snaps)
    assert _hours(t2, t1) == pytest.approx(1.0)

    # by hand: velocity over the last hour, acceleration between the last two intervals' midpoints
    velocity = (5000 - 2000) / _hours(t2, t1)
    previous = (2000 - 1000) / _hours(t1, t0)
    acceleration = (velocity - previous) / (_hours(t2, t0) / 2)
    latest = snaps[2]
    assert latest["views_per_hour"] == pytest.approx(3000.0)
    assert latest["acceleration"] == pytest.approx(acceleration, rel=1e-3)
    assert latest["age_h"] == pytest.approx(_hours(second_poll, uploaded), abs=1e-3)
    assert latest["engagement_rate"] == pytest.approx((100 + 10) / 5000)
    # the channel's four other videos at the same age had 200, 400, 800, 6000 views: middle half 400, 800
    assert latest["overperformance"] == pytest.approx(5000 / 600, rel=1e-3)
    assert latest["counters_missing"] in ("reposts", ["reposts"])  # synthetic source: one element reads as itself

    docs = documents(settings)
    doc = docs[uids["flag"]]
    assert doc["spread"]["views"] == 5000 and doc["spread"]["views_per_hour"] == pytest.approx(3000.0)
    assert doc["spread"]["overperformance"] == pytest.approx(8.333, abs=1e-3)
    assert doc["risk"] == pytest.approx(0.92 * 3000.0)
    assert doc["last_polled"] == second_poll.isoformat()

    # withheld counters: null (absent from the snapshot's synthetic source), listed, never 0; metrics that need them
    # are unknown
    quiet = snapshots(settings, uids["other"])[-1]
    assert quiet.get("views") is None and quiet.get("likes") is None
    assert quiet["counters_missing"] == ["likes", "reposts", "views"]
    assert quiet.get("views_per_hour") is None and quiet.get("overperformance") is None
    assert docs[uids["other"]]["spread"]["views"] is None

    # re-upload clusters: the re-encoded, resized copy joins the original; the unrelated video does not
    cid = cluster_id_of(uids["flag"])
    assert docs[uids["copy"]]["cluster"]["id"] == cid and doc["cluster"]["id"] == cid
    assert doc["cluster"]["size"] == 2 and doc["cluster"]["reach"] == 5000 + 400
    assert doc["cluster"]["first_uploader"] == "Capitol News" and doc["cluster"]["original"] is True
    assert docs[uids["copy"]]["cluster"]["original"] is False
    assert docs[uids["copy"]]["cluster"]["max_score"] == pytest.approx(0.92)
    assert docs[uids["copy"]]["cluster"]["first_seen"] == doc["first_seen"]
    other = docs[uids["other"]]["cluster"]
    assert other["id"] == cluster_id_of(uids["other"]) and other["size"] == 1 and other["reach"] is None
    assert len(doc["phash"]) == settings.phash_frames
    assert "phash" not in docs[uids["b1"]] and docs[uids["b1"]]["cluster"]["size"] == 1  # every video has a cluster
    assert snaps[2]["cluster"]["id"] == cid  # the snapshot carries the cluster for dashboards


def test_a_page_that_disappears_is_reported_not_zeroed(scene: dict[str, Any], platform: Any) -> None:
    settings, uids = scene["settings"], scene["uids"]
    platform.videos["b1"].page_status = 404
    summary = run_refresh(settings, clock=lambda: whole_seconds(datetime.now(UTC)) + timedelta(hours=1))
    assert summary.failed == 1
    failed = [r for r in summary.rows if r.get("error")]
    assert failed[0]["video_uid"] == uids["b1"] and "404" in failed[0]["error"]
    assert len(snapshots(settings, uids["b1"])) == 1  # no snapshot from a failed poll
    assert documents(settings)[uids["b1"]]["spread"]["views"] == 100  # the last known counters stay


def test_vigil_spread_command_prints_a_summary(scene: dict[str, Any], platform: Any) -> None:
    import os
    import subprocess
    import sys

    from support.crawl import settings_env

    settings, uids = scene["settings"], scene["uids"]
    platform.videos["flag"].views = 4321
    make_due(settings)  # the command reads at the real time: as if the next checkpoint had come
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")} | settings_env(settings)
    env["COLUMNS"] = "200"
    done = subprocess.run([sys.executable, "-m", "pipeline", "spread"], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "vigil spread" in done.stdout and "Senator's confession on the ballots" in done.stdout
    assert "4,321" in done.stdout
    assert "7 polled, 0 failed, 3 newly hashed, 1 re-upload clusters" in done.stdout
    assert "backlog: 0 readings due, 0 past their deadline" in done.stdout
    assert documents(settings)[uids["flag"]]["spread"]["views"] == 4321


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver().running() as running:
        yield running


def test_readings_come_at_the_checkpoints_and_the_backlog_counts_missed_ones(
        platform: Any, media: Any, make_crawl_settings: Any, receiver: WebhookReceiver) -> None:
    """Default checkpoints (15 min, 1 h, 5 h, 24 h after publication): a refresh reads only the videos whose
    checkpoint has come; a risky one is read hourly in between; a checkpoint left unread past 10 % of its age counts
    as missed, and the refresh that finds it posts a backlog alert."""
    settings = make_crawl_settings(spread_min_interval_s=0.0, crawl_fetch_subtitles=False,
                                   alert_webhooks=[receiver.url])
    seen = whole_seconds(datetime.now(UTC))
    clip = media.clip(1)
    platform.add(FakeVideo("fresh", "Minister speaks at the rally", media=clip, views=50, author="Rally TV",
                           uploaded=seen - timedelta(minutes=10)))
    platform.add(FakeVideo("older", "Debate night replay", media=clip, views=5000, author="Debate TV",
                           uploaded=seen - timedelta(hours=3)))
    platform.add(FakeVideo("risky", "Leaked call of the candidate", media=clip, views=1000, author="Leaks",
                           uploaded=seen - timedelta(hours=3)))
    uids = seed_videos(platform, settings, ["fresh", "older", "risky"], stored=set())
    flag(settings, uids["risky"], 0.9)
    docs = documents(settings)
    # the crawl's reading at discovery is the first; the next is the first checkpoint after the video's age
    assert _hours(docs[uids["fresh"]]["next_poll"], seen - timedelta(minutes=10)) == pytest.approx(0.25)
    assert _hours(docs[uids["older"]]["next_poll"], seen - timedelta(hours=3)) == pytest.approx(5.0)

    def polled_at(hours: float) -> set[str]:
        summary = run_refresh(settings, clock=lambda: seen + timedelta(hours=hours))
        assert summary.failed == 0
        return {r["video_uid"] for r in summary.rows}

    assert polled_at(6 / 60) == {uids["fresh"]}  # its 15 min checkpoint; the others are not due
    assert polled_at(50 / 60) == {uids["fresh"]}  # its 1 h checkpoint
    assert polled_at(1.5) == set()
    platform.videos["risky"].views = 9000  # 8000 views in 2.25 h: risk 0.9 x ~3500 views/h
    assert polled_at(2.25) == {uids["older"], uids["risky"]}  # their 5 h checkpoint
    docs = documents(settings)
    assert docs[uids["risky"]]["risk"] >= settings.spread_promote_risk
    assert _hours(docs[uids["risky"]]["next_poll"], seen) == pytest.approx(3.25)  # promoted: an hour later
    assert _hours(docs[uids["older"]]["next_poll"], seen) == pytest.approx(21.0)  # its 24 h checkpoint
    platform.videos["risky"].views = 12000  # still growing: still risky
    assert polled_at(3.3) == {uids["risky"]}
    # no refresh runs for a while: the fresh video's 5 h checkpoint (4 h 50 min after discovery) is due at 4.83 h
    # and missed from 5.33 h on (30 min late); the risky one's hourly reading from 4.3 + 0.1 h
    summary_later = run_refresh(settings.model_copy(update={"spread_max_videos": 1}),
                                clock=lambda: seen + timedelta(hours=5.5))
    assert summary_later.polled == 1  # the most overdue first: the risky one
    assert summary_later.rows[0]["video_uid"] == uids["risky"]
    assert summary_later.due == 1 and summary_later.overdue == 1  # the fresh video: due and past its deadline
    # earlier refreshes missed nothing and posted nothing; this one tells the operators
    assert len(receiver.received) == 1
    text = receiver.received[0]["body"]["text"]
    assert "spread backlog: 1 followed videos missed a checkpoint (1 readings due)" in text
    assert receiver.url not in text


def test_videos_listed_on_one_page_share_its_read(platform: Any, media: Any, make_crawl_settings: Any) -> None:
    """A news page with three videos, each with its counters in the page's metadata: one request reads all three
    (it was three, one per video, before reads were batched by page); a video gone from the page is reported, never
    given another video's counters."""
    # every extractor: the page with several videos is yt-dlp's html5 extractor's
    settings = make_crawl_settings(spread_min_interval_s=0.0, crawl_fetch_subtitles=False, ytdlp_extractors=[])
    uploaded = whole_seconds(datetime.now(UTC)) - timedelta(hours=2)
    clip = media.clip(1)
    for name, views in (("n1", 100), ("n2", 200), ("n3", 300)):
        platform.add(FakeVideo(name, f"Evening news item {name}", media=clip, views=views, author="Nightly News",
                               uploaded=uploaded, in_feed=False))
    platform.multi_pages["tonight"] = ["n1", "n2", "n3"]
    result = discover_entry(WatchlistEntry(kind="url", target=platform.page_url("tonight")), settings, watchlist="t")
    assert len(result.candidates) == 3
    for c in result.candidates:
        c.relevance_score = 0.9
        c.decide("queued", "downloaded")
    index = CrawlIndex(settings)
    try:
        index.write(result.candidates)
    finally:
        index.close()
    uids = {c.title: c.video_uid for c in result.candidates}
    for name, views in (("n1", 150), ("n2", 260), ("n3", 390)):
        platform.videos[name].views = views
    before = platform.page_requests("tonight")
    make_due(settings)
    summary = run_refresh(settings, clock=lambda: whole_seconds(datetime.now(UTC)) + timedelta(seconds=1))
    assert summary.polled == 3 and summary.failed == 0
    assert platform.page_requests("tonight") - before == 1
    # their channel's page was asked once too: it lists them under their own pages, not this one, so it is not asked
    # for them again
    assert platform.channel_requests("Nightly News") == 1 and summary.page_reads == 2.0
    docs = documents(settings)
    assert [docs[uids[f"Evening news item {n}"]]["spread"]["views"] for n in ("n1", "n2", "n3")] == [150, 260, 390]

    platform.multi_pages["tonight"] = ["n1", "n2"]  # n3 was taken off the page
    make_due(settings)
    summary = run_refresh(settings, clock=lambda: whole_seconds(datetime.now(UTC)) + timedelta(minutes=1))
    assert summary.polled == 2 and summary.failed == 1 and summary.page_reads == 1.0
    assert platform.channel_requests("Nightly News") == 1
    gone = next(r for r in summary.rows if r.get("error"))
    assert gone["video_uid"] == uids["Evening news item n3"] and "no longer listed" in gone["error"]
    assert documents(settings)[uids["Evening news item n3"]]["spread"]["views"] == 390  # its last known counters
