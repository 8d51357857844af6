"""Pure logic of spread tracking: metrics, overperformance, the reading schedule, the per-host rate limiter,
perceptual hashes, clusters."""
from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline import Settings
from pipeline.spread import (
    HostRateLimiter,
    Member,
    PollSchedule,
    Snapshot,
    assign_clusters,
    cluster_id_of,
    cluster_stats,
    compute_metrics,
    expected_views,
    overperformance,
    phash_distance,
    risk_of,
    settings_for_host,
    trimmed_mean,
    video_phash,
    views_at_age,
)

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


# ------------------------------------------------------------------ metrics

def test_velocity_and_acceleration_by_hand() -> None:
    snaps = [Snapshot(at(2), views=1000, likes=50, comments=10), Snapshot(at(3), views=1600, likes=80, comments=20),
             Snapshot(at(4), views=2800, likes=120, comments=20)]
    m = compute_metrics(snaps, published=T0)
    assert m.age_h == pytest.approx(4.0)
    assert m.views_per_hour == pytest.approx(1200.0)  # (2800 - 1600) / 1 h
    assert m.acceleration == pytest.approx(600.0)  # (1200 - 600) / ((4 - 2) / 2) h
    assert m.engagement_rate == pytest.approx(140 / 2800)


def test_two_snapshots_use_the_upload_as_the_first_point() -> None:
    m = compute_metrics([Snapshot(at(2), views=1000), Snapshot(at(3), views=1600)], published=T0)
    assert m.views_per_hour == pytest.approx(600.0)
    assert m.acceleration == pytest.approx((600 - 500) / 1.5)
    one = compute_metrics([Snapshot(at(2), views=1000)], published=T0)
    assert one.views_per_hour == pytest.approx(500.0) and one.acceleration is None
    unknown_upload = compute_metrics([Snapshot(at(2), views=1000)], published=None)
    assert unknown_upload.views_per_hour is None and unknown_upload.age_h is None


def test_withheld_counters_stay_unknown() -> None:
    snaps = [Snapshot(at(1), views=100, likes=None, comments=5), Snapshot(at(2), views=None, likes=None, comments=9)]
    m = compute_metrics(snaps, published=T0)
    assert m.views_per_hour is None and m.acceleration is None  # the latest snapshot has no views
    assert m.engagement_rate is None
    assert snaps[1].missing == ["views", "likes", "reposts"]
    # a withheld snapshot in the middle is skipped, not read as 0
    m = compute_metrics([Snapshot(at(1), views=100), Snapshot(at(2), views=None), Snapshot(at(3), views=500)], T0)
    assert m.views_per_hour == pytest.approx(200.0)
    assert overperformance(None, 100.0) is None and overperformance(10, None) is None
    assert overperformance(10, 0.0) is None
    assert risk_of(None, 10.0) is None and risk_of(0.5, None) is None


def test_snapshots_moments_apart_do_not_explode_the_velocity() -> None:
    m = compute_metrics([Snapshot(at(2), views=1000), Snapshot(at(2) + timedelta(seconds=5), views=1010)], T0)
    assert m.views_per_hour == pytest.approx(1010 / 2, rel=1e-3)


def test_interpolation_and_trimmed_mean() -> None:
    assert views_at_age([(1, 100), (3, 300)], 2) == pytest.approx(200)
    assert views_at_age([(4, 4000)], 2) == pytest.approx(2000)  # from the upload (0 views)
    assert views_at_age([(1, 50)], 2) is None  # never extrapolated
    assert views_at_age([(2, 70)], 2) == 70
    assert trimmed_mean([100, 200, 400, 2000]) == pytest.approx(300)  # drop one each side of four
    assert trimmed_mean([1, 2, 3]) == pytest.approx(2)
    assert trimmed_mean(range(1, 9)) == pytest.approx(4.5)  # 3..6
    with pytest.raises(ValueError):
        trimmed_mean([])


def test_overperformance_in_crowdtangle_manner() -> None:
    histories = [[(1, 100), (3, 300)], [(2, 400)], [(4, 4000)], [(1, 50)], [(2, 100)]]
    expected = expected_views(histories, 2.0, min_videos=3)
    assert expected == pytest.approx(300)  # values 200, 400, 2000, 100 → middle half 200, 400
    assert overperformance(900, expected) == pytest.approx(3.0)
    assert expected_views(histories[:2], 2.0, min_videos=3) is None  # too few videos observed at that age
    assert risk_of(0.8, 1200.0) == pytest.approx(960.0)
    assert risk_of(0.8, -50.0) == 0.0


# ------------------------------------------------------------------ polling politeness

def test_rate_limiter_spaces_requests_per_host() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = HostRateLimiter(default_s=2.0, per_host={"youtube.com": 5.0, "tiktok": 10.0},
                              clock=lambda: now[0], sleep=sleep)
    assert limiter.wait("www.youtube.com") == 0.0
    assert limiter.wait("example.org") == 0.0  # another host is not held up
    now[0] += 1.0
    assert limiter.wait("www.youtube.com") == pytest.approx(4.0)  # parent-domain rule: 5 s
    assert limiter.wait("example.org") == pytest.approx(0.0)  # 2 s default: 5 s have passed
    assert limiter.interval("www.tiktok.com", "tiktok") == 10.0  # by platform name
    assert slept == [pytest.approx(4.0)]


def test_cookies_and_proxy_per_host(tmp_path: Path) -> None:
    cookies = tmp_path / "yt.txt"
    settings = Settings(ytdlp_proxy="http://default:3128", spread_cookies_files={"youtube.com": str(cookies)},
                        spread_proxies={"tiktok": "http://user:secret@proxy:8080"})
    yt = settings_for_host(settings, "m.youtube.com", "youtube")
    assert yt.ytdlp_cookies_file == cookies and yt.ytdlp_proxy.get_secret_value() == "http://default:3128"
    assert yt.crawl_fetch_subtitles is False
    tt = settings_for_host(settings, "www.tiktok.com", "tiktok")
    assert tt.ytdlp_proxy.get_secret_value() == "http://user:secret@proxy:8080"
    assert "user:secret@" not in repr(settings)  # the proxy password never shows


# ------------------------------------------------------------------ perceptual hash and clusters

def _ffmpeg(*args: str) -> None:
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True,
                   capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("phash")
    out = {k: d / f"{k}.mp4" for k in ("orig", "copy", "other")}
    enc = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=10", "-t", "3", *enc, "-crf", "28", str(out["orig"]))
    _ffmpeg("-i", str(out["orig"]), "-vf", "scale=320:240", "-r", "25", *enc, "-crf", "38", str(out["copy"]))
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10", "-t", "3", *enc, "-crf", "28", str(out["other"]))
    return out


def test_phash_is_robust_to_reencode_and_resize(clips: dict[str, Path]) -> None:
    orig, copy, other = (video_phash(clips[k], frames=8) for k in ("orig", "copy", "other"))
    assert len(orig) == 8 and all(len(h) == 16 for h in orig)
    assert phash_distance(orig, orig) == 0
    assert phash_distance(orig, copy) <= 6
    assert phash_distance(orig, other) >= 20
    with open(clips["orig"], "rb") as handle:  # a file object (what the media store hands out) works too
        assert video_phash(handle, frames=8) == orig


def test_clusters_join_copies_and_keep_strangers_apart() -> None:
    base = ["0" * 16] * 4
    near = ["0" * 15 + "7"] * 4  # 3 bits away
    far = ["f" * 16] * 4
    existing = Member("youtube:a", hashes=base, cluster_id=cluster_id_of("youtube:a"), first_seen="2026-11-01T10:00:00+00:00",
                      published="2026-11-01T09:00:00+00:00", uploader="Capitol News", views=1000, score=0.9)
    copy = Member("tiktok:b", hashes=near, first_seen="2026-11-01T12:00:00+00:00",
                  published="2026-11-01T11:30:00+00:00", uploader="repost_bot", views=None, new=True)
    stranger = Member("youtube:c", hashes=far, first_seen="2026-11-01T11:00:00+00:00", uploader="Cooking", views=5,
                      new=True)
    unhashed = Member("x:d", first_seen="2026-11-01T13:00:00+00:00", views=7)
    clusters = assign_clusters([existing, copy, stranger, unhashed], threshold=12)
    cid = cluster_id_of("youtube:a")
    assert sorted(m.uid for m in clusters[cid]) == ["tiktok:b", "youtube:a"]
    assert [m.uid for m in clusters[cluster_id_of("youtube:c")]] == ["youtube:c"]
    assert [m.uid for m in clusters[cluster_id_of("x:d")]] == ["x:d"]
    stats = cluster_stats(cid, clusters[cid])
    assert stats["tiktok:b"] == {"id": cid, "size": 2, "reach": 1000, "first_seen": "2026-11-01T10:00:00+00:00",
                                 "first_uploader": "Capitol News", "max_score": 0.9, "original": False}
    assert stats["youtube:a"]["original"] is True
    # a copy that bridges two clusters merges them under the earliest-seen founder
    bridge = Member("vk:e", hashes=["0" * 15 + "1"] * 4, first_seen="2026-11-02T00:00:00+00:00", new=True)
    other_copy = Member("vk:f", hashes=["0" * 14 + "11"] * 4, cluster_id="c-elsewhere",
                        first_seen="2026-11-01T08:00:00+00:00")
    merged = assign_clusters([existing, bridge, other_copy], threshold=1)
    assert list(merged) == [cluster_id_of("vk:f")]


# ------------------------------------------------------------------ the reading schedule

def test_readings_follow_the_checkpoints_by_age_then_daily() -> None:
    schedule = PollSchedule()  # 15 min, 1 h, 5 h, 24 h, then daily
    seen = [0.0, 0.2, 0.25, 0.8, 1.0, 4.0, 21.0, 24.0, 30.0, 48.0]
    due = [schedule.next_poll(at(h), T0).due for h in seen]
    assert [(d - T0).total_seconds() / 3600 for d in due] == [0.25, 0.25, 1.0, 1.0, 5.0, 5.0, 24.0, 48.0, 48.0, 72.0]
    # a reading inside a checkpoint's window (10 % of its age either side) counts for it: the next is the one after
    inside = [0.9, 4.6, 22.0, 46.0]
    due = [schedule.next_poll(at(h), T0).due for h in inside]
    assert [(d - T0).total_seconds() / 3600 for d in due] == [5.0, 24.0, 48.0, 72.0]
    # a reading is missed once it is 10 % of its checkpoint's age late (6 min at 1 h, 30 min at 5 h, 2.4 h daily)
    assert schedule.next_poll(at(0.5), T0).deadline == at(1.1)
    assert schedule.next_poll(at(2.0), T0).deadline == at(5.5)
    assert schedule.next_poll(at(30.0), T0).deadline == at(48.0 + 2.4)
    assert schedule.next_poll(at(0.5), T0).fields() == {"next_poll": at(1.0).isoformat(),
                                                        "poll_deadline": at(1.1).isoformat(),
                                                        "poll_early": at(0.9).isoformat()}
    # the window opens as early: a reading that comes free with a listing read takes the checkpoint from then on
    assert schedule.next_poll(at(2.0), T0).early == at(4.5)
    assert schedule.next_poll(at(30.0), T0).early == at(48.0 - 2.4)


def test_unknown_or_future_publication_counts_from_the_reading() -> None:
    schedule = PollSchedule()
    assert schedule.next_poll(at(10), None).due == at(10.25)
    assert schedule.next_poll(at(10), at(12)).due == at(10.25)  # a clock ahead of ours: from now


def test_risk_and_an_analysts_verdict_promote_a_video_between_checkpoints() -> None:
    schedule = PollSchedule(promote_risk=100.0, promote_interval_h=1.0)
    calm = schedule.next_poll(at(6), T0, risk=20.0)
    assert calm.due == at(24) and calm.reason == "checkpoint"
    risky = schedule.next_poll(at(6), T0, risk=450.0)
    assert risky.due == at(7) and risky.reason == "promoted" and risky.deadline == at(7.1)
    watched = schedule.next_poll(at(6), T0, risk=None, watched=True)
    assert watched.due == at(7) and watched.reason == "promoted"
    young = schedule.next_poll(at(0.1), T0, risk=450.0)  # the checkpoint comes first: it is kept
    assert young.due == at(0.25) and young.reason == "checkpoint"


@pytest.mark.parametrize("points", [[], [0.0, 1.0], [1.0, 1.0], [5.0, 1.0]])
def test_checkpoints_must_be_positive_and_increasing(points: list[float]) -> None:
    with pytest.raises(ValueError, match="positive and increasing"):
        PollSchedule(checkpoints_h=points)
    with pytest.raises(ValueError, match="positive and increasing"):
        Settings(spread_checkpoints_h=points)


def test_checkpoints_come_from_settings_as_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_SPREAD_CHECKPOINTS_H", "0.5, 2, 6")
    schedule = PollSchedule.from_settings(Settings())
    assert tuple(schedule.checkpoints_h) == (0.5, 2.0, 6.0)
    assert schedule.next_poll(at(7), T0).due == at(30)  # 6 h, then every 24 h


# ------------------------------------------------------------------ listings

def test_listing_keys_are_the_channel_and_the_feed_on_the_videos_own_host() -> None:
    from pipeline.spread._listing import listing_keys

    video = {"url": "https://news.example/watch/1", "channel_url": "https://news.example/channel/A/",
             "watchlist_kind": "feed", "watchlist_target": "https://news.example/feed.xml#top"}
    assert listing_keys(video) == ["https://news.example/channel/A", "https://news.example/feed.xml"]
    # another host's listing would break that host's rate limit in this host's task; a search is no listing
    assert listing_keys({**video, "channel_url": "https://cdn.other.example/c/A", "watchlist_kind": "search"}) == []
    assert listing_keys({**video, "channel_url": "https://news.example/watch/1", "watchlist_kind": "url"}) == []
    assert listing_keys({**video, "listings_missed": ["https://news.example/channel/A"]}) == [
        "https://news.example/feed.xml"]
    assert listing_keys({**video, "channel_url": "javascript:alert(1)", "watchlist_kind": None}) == []


def test_listing_page_json_ld_gives_each_video_its_page_and_counters() -> None:
    import json

    import yt_dlp

    from pipeline.spread._listing import counters_by_key, from_json_ld

    def video(n: int, **extra: object) -> dict[str, object]:
        return {"@type": "VideoObject", "name": f"Clip {n}", "interactionStatistic": [
            {"@type": "InteractionCounter", "interactionType": "https://schema.org/WatchAction",
             "userInteractionCount": 100 * n},
            {"@type": "InteractionCounter", "interactionType": {"@type": "LikeAction"}, "userInteractionCount": "1,5"}],
            **extra}

    data = {"@context": "https://schema.org", "@graph": [
        {"@type": "ItemList", "itemListElement": [
            {"@type": "ListItem", "position": 1, "url": "/watch/1", "item": video(1)},  # the ListItem's url
            video(2, url="https://news.example/watch/2/"),  # the video's own url
            video(3, mainEntityOfPage={"@id": "https://news.example/watch/3"}),
            {"@type": "VideoObject", "name": "no counters", "url": "https://news.example/watch/4"},
            {"@type": "VideoObject", "name": "no page", "contentUrl": "https://cdn.example/5.mp4"}]}]}
    page = f'<html><head><script type="application/ld+json">{json.dumps(data)}</script></head></html>'
    with yt_dlp.YoutubeDL({"quiet": True}) as ydl:
        listed = from_json_ld(ydl, page, "https://news.example/channel/A")
    assert [(v.page_url, v.views) for v in listed] == [("https://news.example/watch/1", 100),
                                                       ("https://news.example/watch/2", 200),
                                                       ("https://news.example/watch/3", 300),
                                                       ("https://news.example/watch/4", None)]
    assert listed[0].likes == 15
    assert set(counters_by_key(listed)) == {f"https://news.example/watch/{n}" for n in (1, 2, 3)}


def test_listing_feeds_with_media_rss_statistics() -> None:
    from pipeline.spread._listing import from_feed

    rss = ('<?xml version="1.0"?><rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel>'
           '<item><link>https://v.example/watch/1</link><media:community><media:statistics views="1234"/>'
           '<media:starRating count="56" average="5"/></media:community></item>'
           '<item><link>https://v.example/watch/2</link></item></channel></rss>')
    assert [(v.page_url, v.views, v.likes) for v in from_feed(rss, "https://v.example/feed")] == [
        ("https://v.example/watch/1", 1234, 56), ("https://v.example/watch/2", None, None)]
    atom = ('<feed xmlns="http://www.w3.org/2005/Atom" xmlns:media="http://search.yahoo.com/mrss/">'
            '<entry><link rel="alternate" href="https://v.example/watch?v=abc"/><media:group><media:community>'
            '<media:statistics views="99"/></media:community></media:group></entry></feed>')
    assert [(v.page_url, v.views) for v in from_feed(atom, "https://v.example/feeds")] == [
        ("https://v.example/watch?v=abc", 99)]
    assert from_feed("<rss><channel><item>", "https://v.example/feed") == []  # malformed: nothing, no error
    bomb = ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
            '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">'
            '<!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">'
            '<!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;"><!ENTITY h "&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;">]>'
            '<rss><channel><item><link>&h;</link></item></channel></rss>')
    assert from_feed(bomb, "https://v.example/feed") == []  # expat refuses the expansion


def test_listing_flat_entries_of_a_platform_extractor() -> None:
    from pipeline.spread._listing import from_flat_entries

    entries = [{"ie_key": "Youtube", "id": "abc", "url": "https://www.youtube.com/watch?v=abc", "view_count": 1200,
                "like_count": None},
               {"ie_key": "Youtube", "id": "def", "url": "https://www.youtube.com/watch?v=def"},
               None]
    listed = from_flat_entries(entries, "https://www.youtube.com/@chan/videos")
    assert [(v.uid, v.views) for v in listed] == [("youtube:abc", 1200), ("youtube:def", None)]
    assert listed[0].page_url == "https://www.youtube.com/watch?v=abc"
