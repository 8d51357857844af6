"""Spread refresh on the real stack: the fake platform's counters change between polls, snapshots accumulate, the
metrics match values computed by hand, and a re-encoded, resized re-upload joins the original's cluster."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from spreadkit import documents, flag, lavfi_clip, seed_videos, snapshots, transcode, whole_seconds

from fakeplatform import FakeVideo
from pipeline.spread import cluster_id_of, run_refresh

pytestmark = [pytest.mark.elasticsearch, pytest.mark.slow]


def _hours(later: str | datetime, earlier: str | datetime) -> float:
    def parse(x: str | datetime) -> datetime:
        return x if isinstance(x, datetime) else datetime.fromisoformat(x.replace("Z", "+00:00"))

    return (parse(later) - parse(earlier)).total_seconds() / 3600


@pytest.fixture
def scene(platform: Any, media: Any, make_crawl_settings: Any, tmp_path: Path) -> dict[str, Any]:
    settings = make_crawl_settings(spread_min_interval_s=0.0, crawl_fetch_subtitles=False)
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
    assert latest["counters_missing"] == ["reposts"]

    docs = documents(settings)
    doc = docs[uids["flag"]]
    assert doc["spread"]["views"] == 5000 and doc["spread"]["views_per_hour"] == pytest.approx(3000.0)
    assert doc["spread"]["overperformance"] == pytest.approx(8.333, abs=1e-3)
    assert doc["risk"] == pytest.approx(0.92 * 3000.0)
    assert doc["last_polled"] == second_poll.isoformat()

    # withheld counters: null, listed, never 0; metrics that need them are unknown
    quiet = snapshots(settings, uids["other"])[-1]
    assert quiet["views"] is None and quiet["likes"] is None
    assert quiet["counters_missing"] == ["likes", "reposts", "views"]
    assert quiet["views_per_hour"] is None and quiet["overperformance"] is None
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

    from crawlkit import settings_env

    settings, uids = scene["settings"], scene["uids"]
    platform.videos["flag"].views = 4321
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")} | settings_env(settings)
    env["COLUMNS"] = "200"
    done = subprocess.run([sys.executable, "-m", "pipeline", "spread"], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "vigil spread" in done.stdout and "Senator's confession on the ballots" in done.stdout
    assert "4,321" in done.stdout
    assert "7 polled, 0 failed, 3 newly hashed, 1 re-upload clusters" in done.stdout
    assert documents(settings)[uids["flag"]]["spread"]["views"] == 4321
