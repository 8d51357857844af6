"""Watchlist entries against the installed yt-dlp's own extractor list: shipped watchlists, removed search keys,
`vigil watchlist check`, the per-entry health history a crawl records and what `vigil status` says of it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.crawl import ROOT, settings_env
from support.fakeplatform import FakePlatform, FakeVideo, MediaFactory

from pipeline import Settings, make_es_client
from pipeline._exceptions import WatchlistError
from pipeline._setup import run_status
from pipeline.crawl import Watchlist, WatchlistEntry, load_watchlist, parse_watchlist, run_cycle
from pipeline.crawl._extractors import check_entry, search_keys, ytdlp_version
from pipeline.crawl._health import failed_last_run, last_runs

SHIPPED = sorted((ROOT / "infra" / "watchlists").glob("*.yaml"))


def _claimed_by_a_site_extractor(kind: str, target: str) -> list[str]:
    """yt-dlp's own answer (FIELD-NOTES): the extractors, other than the generic page reader, that claim it."""
    from yt_dlp.extractor import gen_extractor_classes

    if kind == "search":
        key = target.split(":", 1)[0].rstrip("0123456789").removesuffix("all")
        return [ie.IE_NAME for ie in gen_extractor_classes() if getattr(ie, "SEARCH_KEY", None) == key]
    return [ie.IE_NAME for ie in gen_extractor_classes() if ie.ie_key() != "Generic" and ie.suitable(target)]


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_watchlist_is_read_by_a_site_extractor(path: Path) -> None:
    watchlist = load_watchlist(path)  # the load itself checks every entry
    for entry in watchlist.entries:
        claimed = _claimed_by_a_site_extractor(entry.kind, entry.target)
        assert claimed, f"{path.name}: {entry.target!r} is read by no site extractor of yt-dlp {ytdlp_version()}"
        assert check_entry(entry.kind, entry.target).extractor == claimed[0]


def test_a_removed_search_key_is_refused_with_what_to_write_instead() -> None:
    assert "ytsearchdate" not in search_keys() and search_keys()["ytsearch"] == "youtube:search"
    with pytest.raises(WatchlistError) as info:
        parse_watchlist("entries:\n  - kind: url\n    target: https://www.youtube.com/watch?v=x\n"
                        "  - kind: search\n    target: 'ytsearchdate50:election fraud video'\n", source="w.yaml")
    message = str(info.value)
    assert "entry 2 (line 4) 'ytsearchdate50:election fraud video'" in message
    assert "has no search key 'ytsearchdate'" in message
    assert "'ytsearch50:election fraud video'" in message
    assert "https://www.youtube.com/results?search_query=election+fraud+video&sp=CAI%253D" in message
    assert info.value.line == 4
    # the suggested forms are what the installed yt-dlp reads
    assert check_entry("search", "ytsearch50:election fraud video").extractor == "youtube:search"
    assert check_entry("page", "https://www.youtube.com/results?search_query=election+fraud+video&sp=CAI%253D"
                       ).extractor == "youtube:search_url"
    # a key that is not yt-dlp's at all lists the keys there are
    assert "search keys yt-dlp" in str(check_entry("search", "tiktoksearch10:vote").problem)
    # restricted extractors: only what they read
    assert check_entry("search", "ytsearch5:x", ["generic"]).problem == (
        "its extractor youtube:search is not among VIGIL_YTDLP_EXTRACTORS")
    assert check_entry("feed", "http://127.0.0.1:9/feed.xml", ["generic"]).extractor == "generic"


def _vigil(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, timeout=120,
                          env=env, cwd=ROOT)


def test_vigil_watchlist_check(tmp_path: Path) -> None:
    ok = _vigil("watchlist", "check", str(ROOT / "infra" / "watchlists" / "example.yaml"))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "youtube:search_url" in ok.stdout and "tiktok:tag" in ok.stdout and "FAIL" not in ok.stdout
    bad = tmp_path / "old.yaml"
    bad.write_text("name: old\nentries:\n  - kind: search\n    target: 'ytsearchdate50:election fraud video'\n")
    refused = _vigil("watchlist", "check", str(bad))
    assert refused.returncode == 1
    text = " ".join((refused.stdout + refused.stderr).split())
    assert "FAIL" in text and "entry 1 (line 3) 'ytsearchdate50:election fraud video'" in text
    assert "write 'ytsearch50:election fraud video'" in text and "sp=CAI%253D" in text


def test_status_reports_ytdlp_and_its_pin(stack_settings: Settings) -> None:
    version = ytdlp_version()
    lines = {c.name: c for c in run_status(stack_settings)}
    assert lines["yt-dlp"].ok and lines["yt-dlp"].detail == f"{version} (not pinned: VIGIL_YTDLP_VERSION)"
    pinned = stack_settings.model_copy(update={"ytdlp_version": "2020.01.01"})
    line = {c.name: c for c in run_status(pinned)}["yt-dlp"]
    assert not line.ok and "VIGIL_YTDLP_VERSION pins 2020.01.01" in line.detail
    assert "infra/ytdlp-upgrade" in line.hint


@pytest.mark.kafka
@pytest.mark.elasticsearch
@pytest.mark.slow
def test_crawl_records_each_entrys_extractor_and_health(make_crawl_settings: Any, platform: FakePlatform,
                                                        media: MediaFactory) -> None:
    settings = make_crawl_settings()
    platform.add(FakeVideo("senate", "Senator accused of election fraud", media=media.clip(1), views=50_000))
    # as stored before yt-dlp dropped the key: the crawl refuses it without fetching anything, and says why
    stale = WatchlistEntry(kind="search", target="ytsearchdate5:election fraud", name="old search")
    watchlist = Watchlist(name="health", entries=[WatchlistEntry(kind="feed", target=platform.feed_url), stale])
    summary = run_cycle(settings, watchlist)
    assert summary.downloaded == 1
    runs = {r["target"]: r for r in summary.entry_runs}
    feed, old = runs[platform.feed_url], runs[stale.target]
    assert feed["extractor"] == "generic" and feed["ok"] and feed["found"] == 1 and feed["queued"] == 1
    assert feed["errors"] == 0 and feed["ytdlp_version"] == ytdlp_version()
    assert not old["ok"] and old["errors"] == 1 and old["extractor"] is None
    assert old["error"].startswith("unreadable: yt-dlp") and "ytsearch5:election fraud" in old["error"]

    second = run_cycle(settings, watchlist)  # the video is known now: found, not queued again
    assert {r["target"]: r["queued"] for r in second.entry_runs}[platform.feed_url] == 0
    es = make_es_client(settings)
    try:
        history = last_runs(es, settings, watchlist="health")
        failed = failed_last_run(es, settings)
    finally:
        es.close()
    assert len(history) == 2
    feed_history = history[feed["entry_id"]]
    assert [r["queued"] for r in feed_history["runs"]] == [0, 1]  # latest first
    assert feed_history["last_worked"] == feed_history["runs"][0]["@timestamp"]
    assert history[old["entry_id"]]["last_worked"] is None
    assert [r["target"] for r in failed] == [stale.target]

    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")} | settings_env(settings) | {
        "COLUMNS": "400"}
    status = _vigil("status", env=env)
    text = " ".join(status.stdout.split())
    assert status.returncode == 1
    assert "watchlist entries" in text and "1 failed their last run: health: old search (unreadable: yt-dlp" in text
    assert f"{ytdlp_version()} (not pinned" in text
