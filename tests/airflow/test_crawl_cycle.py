"""One crawl cycle outside Airflow (`run_cycle`, `vigil crawl`) on the real stack, and every failure path of a
download against the fake platform: 404, not a video, over the size cap, too long, server down, 503s, timeouts."""
from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from support.crawl import consume_jobs, crawl_overrides, settings_env
from support.fakeplatform import FakePlatform, FakeVideo, MediaFactory
from typer.testing import CliRunner

from pipeline import Settings, get_settings, make_es_client
from pipeline._exceptions import DownloadFailed, DownloadRefused
from pipeline.cli import app
from pipeline.crawl import Candidate, download_media, parse_watchlist, run_cycle



def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _statuses(settings: Settings) -> dict[str, dict[str, Any]]:
    es = make_es_client(settings)
    try:
        es.indices.refresh(index=settings.index("videos"))
        hits = es.search(index=settings.index("videos"), size=100)["hits"]["hits"]
        return {h["_id"]: h["_source"] for h in hits}
    finally:
        es.close()


# ------------------------------------------------------------------ download failure paths (no stack needed)

def _candidate(platform: FakePlatform, video_id: str) -> Candidate:
    return Candidate(video_uid=f"generic:{video_id}", url=platform.page_url(video_id))


@pytest.fixture
def local_settings(tmp_path: Path) -> Settings:
    return Settings(media_store=str(tmp_path / "media"), **crawl_overrides())


def test_download_verifies_and_hashes(platform: FakePlatform, media: MediaFactory, local_settings: Settings,
                                      tmp_path: Path) -> None:
    clip = media.clip(2)
    platform.add(FakeVideo("ok", "Speech", media=clip))
    result = download_media(_candidate(platform, "ok"), local_settings, workdir=tmp_path / "dl")
    assert result.path.read_bytes() == clip.read_bytes() and result.bytes == clip.stat().st_size
    assert result.duration_s == pytest.approx(2, abs=0.2) and (result.width, result.height) == (160, 120)
    assert result.ext == "mp4" and len(result.sha256) == 64


@pytest.mark.parametrize(("setup", "error", "reason"), [
    (lambda p, m: p.add(FakeVideo("v", "t", media=m.not_a_video())), DownloadRefused, "not a video ("),
    (lambda p, m: p.add(FakeVideo("v", "t", media=m.clip(2, size="640x360", noise=True))), DownloadRefused,
     "larger than 1 MB cap ("),
    # the page does not declare its duration: the file itself is measured
    (lambda p, m: p.add(FakeVideo("v", "t", media=m.clip(8))), DownloadRefused, "longer than 5 s cap (8 s)"),
    (lambda p, m: p.add(FakeVideo("v", "t", media=m.clip(2), page_status=404)), DownloadFailed,
     "page not found (HTTP 404)"),
    (lambda p, m: p.add(FakeVideo("v", "t", media=m.clip(2), page_status=410)), DownloadFailed,
     "video removed (HTTP 410)"),
    (lambda p, m: p.add(FakeVideo("v", "t", media=m.clip(2), media_failures=99)), DownloadFailed,
     "platform error (HTTP 503)"),
    (lambda p, m: p.add(FakeVideo("v", "t", media=m.clip(2), content_url="http://10.9.9.9/v.mp4")), DownloadRefused,
     "host resolves to a private address"),
])
def test_download_failure_paths(platform: FakePlatform, media: MediaFactory, local_settings: Settings, setup: Any,
                                error: type[Exception], reason: str, tmp_path: Path) -> None:
    setup(platform, media)
    with pytest.raises(error) as info:
        download_media(_candidate(platform, "v"), local_settings, workdir=tmp_path / "dl")
    assert str(info.value).startswith(reason), str(info.value)


def test_transient_errors_are_retried_with_backoff(platform: FakePlatform, media: MediaFactory,
                                                   local_settings: Settings, tmp_path: Path) -> None:
    platform.add(FakeVideo("flaky", "t", media=media.clip(1), media_failures=2))
    result = download_media(_candidate(platform, "flaky"), local_settings, workdir=tmp_path / "dl")
    assert result.bytes > 0 and platform.page_requests("flaky") == 3  # each try reads the page again
    platform.add(FakeVideo("broken", "t", media=media.clip(1), media_failures=99))
    with pytest.raises(DownloadFailed, match="HTTP 503"):
        download_media(_candidate(platform, "broken"), local_settings, workdir=tmp_path / "dl2")
    assert platform.page_requests("broken") == local_settings.crawl_download_attempts
    platform.add(FakeVideo("gone", "t", media=media.clip(1), page_status=404))
    with pytest.raises(DownloadFailed):
        download_media(_candidate(platform, "gone"), local_settings, workdir=tmp_path / "dl3")
    assert platform.page_requests("gone") == 1  # a 404 is not tried again


def test_download_timeout(platform: FakePlatform, media: MediaFactory, tmp_path: Path) -> None:
    settings = Settings(media_store=str(tmp_path / "m"), **crawl_overrides(download_timeout_s=1e-6,
                                                                           crawl_download_attempts=2))
    platform.add(FakeVideo("slow", "t", media=media.clip(2)))
    with pytest.raises(DownloadFailed, match="download took longer than"):
        download_media(_candidate(platform, "slow"), settings, workdir=tmp_path / "dl")
    assert platform.page_requests("slow") == 2


def test_server_down(local_settings: Settings, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/watch/v"
    with pytest.raises(DownloadFailed, match=r"^server unreachable") as info:
        download_media(Candidate(video_uid="generic:v", url=url), local_settings, workdir=tmp_path / "dl")
    assert info.value.transient


# ------------------------------------------------------------------ whole cycles on the stack

@pytest.mark.kafka
@pytest.mark.elasticsearch
@pytest.mark.slow
def test_cycle_budget_down_servers_and_retries(make_crawl_settings: Any, platform: FakePlatform,
                                               media: MediaFactory) -> None:
    settings = make_crawl_settings(crawl_max_downloads=1)
    platform.add(FakeVideo("hot", "Senator accused of election fraud", media=media.clip(1), views=50_000))
    platform.add(FakeVideo("warm", "Minister defends the new tax law", media=media.clip(1.5), views=500))
    down = _closed_port()
    watchlist = parse_watchlist(
        f"entries:\n  - kind: feed\n    target: {platform.feed_url}\n"
        f"  - kind: feed\n    target: http://127.0.0.1:{down}/feed.xml\n"
        f"  - kind: url\n    target: http://127.0.0.1:{down}/watch/v9\n"
        f"  - kind: url\n    target: {platform.page_url('hot')}\n", name="budget")
    first = run_cycle(settings, watchlist)
    assert first.downloaded == 1 and first.duplicates == 1  # "hot" came from the feed and the url entry
    assert first.entry_errors == [f"http://127.0.0.1:{down}/feed.xml: failed: server unreachable (connection refused)"]
    docs = _statuses(settings)
    assert docs["generic:hot"]["status"] == "queued"
    assert docs["generic:warm"]["status_reason"] == ("skipped: download budget of 1 per run spent (rank 2); "
                                                     "tried again next run")
    (down_doc,) = [d for uid, d in docs.items() if uid.startswith("url:")]
    assert down_doc["status_reason"] == "failed: server unreachable (connection refused)"
    assert first.reasons["failed: server unreachable"] == 1

    # the next run spends its budget on the deferred video; a transient 503 on the way is tried again
    platform.videos["warm"].media_failures = 1
    second = run_cycle(settings, watchlist)
    assert second.downloaded == 1
    assert _statuses(settings)["generic:warm"]["status"] == "queued"
    assert platform.page_requests("warm") == 4  # run 1: metadata; run 2: metadata (a 503, then ok), download
    jobs = consume_jobs(settings, expect=2)
    assert sorted(j.video_uid for j in jobs) == ["generic:hot", "generic:warm"]
    assert set(_statuses(settings)) == set(docs)


@pytest.mark.kafka
@pytest.mark.elasticsearch
@pytest.mark.slow
def test_vigil_crawl_command(make_crawl_settings: Any, platform: FakePlatform, media: MediaFactory, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    settings = make_crawl_settings()
    platform.add(FakeVideo("p1", "President signs the election reform bill", media=media.clip(1)))
    platform.add(FakeVideo("c1", "Cute cat plays the piano", media=media.clip(1)))
    platform.add(FakeVideo("f1", "Protest against the government", media=media.not_a_video()))
    watchlist = tmp_path / "w.yaml"
    watchlist.write_text(f"entries:\n  - kind: feed\n    target: {platform.feed_url}\n")
    for key, value in settings_env(settings).items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    runner = CliRunner()
    out = tmp_path / "summary.json"
    result = runner.invoke(app, ["crawl", "--watchlist", str(watchlist), "--json", str(out)],
                           env={"COLUMNS": "200"})
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    for text in ("discovered", "relevant", "downloaded and queued", "refused", "refused: not a video",
                 "skipped: not political"):
        assert text in result.output
    summary = json.loads(out.read_text())
    assert (summary["discovered"], summary["downloaded"], summary["skipped"], summary["refused"]) == (3, 1, 1, 1)
    assert summary["reasons"] == {"skipped: not political": 1, "refused: not a video": 1}
    assert [j.video_uid for j in consume_jobs(settings, expect=1)] == ["generic:p1"]

    # a bad watchlist is a clear error and exit status 2... of the settings kind: exit 1 with the entry named
    bad = tmp_path / "bad.yaml"
    bad.write_text("entries:\n  - kind: feed\n    target: file:///etc/passwd\n")
    result = runner.invoke(app, ["crawl", "--watchlist", str(bad)], env={"COLUMNS": "200"})
    get_settings.cache_clear()
    assert result.exit_code == 1
    assert "entry 1 (line 2) 'file:///etc/passwd'" in result.output


def test_dns_rebinding_is_refused_at_connection_time(platform: FakePlatform, media: MediaFactory,
                                                     tmp_path: Path) -> None:
    """The name looks public when the URL is checked, then resolves to loopback when the socket opens."""
    from pipeline.crawl import UrlPolicy

    platform.add(FakeVideo("v", "t", media=media.clip(1)))
    settings = Settings(media_store=str(tmp_path / "m"), **crawl_overrides(allowed_private_networks=[]))
    policy = UrlPolicy(resolver=lambda host: ["93.184.216.34"])  # the check's view; connections use the system's
    url = platform.page_url("v").replace("127.0.0.1", "localhost")
    with pytest.raises(DownloadRefused, match="^host resolves to a loopback address"):
        download_media(Candidate(video_uid="generic:v", url=url), settings, policy=policy, workdir=tmp_path / "dl")
    assert platform.requests == []  # nothing reached the server


@pytest.mark.kafka
@pytest.mark.elasticsearch
@pytest.mark.slow
def test_the_budget_follows_the_workers_queue(make_crawl_settings: Any, platform: FakePlatform,
                                              media: MediaFactory) -> None:
    """Jobs the workers have not taken yet lower the next run's budget: the queue is topped up to
    crawl_queue_target, never past it, and the most viral still go in (crawl_min_downloads)."""
    from pipeline._kafka import consumer_lag, make_consumer

    settings = make_crawl_settings(crawl_max_downloads=3, crawl_min_downloads=1, crawl_queue_target=4)
    for i in range(6):
        platform.add(FakeVideo(f"q{i}", f"Election rally number {i} of the senator", media=media.clip(1),
                               views=10_000 * (i + 1)))
    watchlist = parse_watchlist(f"entries:\n  - kind: feed\n    target: {platform.feed_url}\n", name="queue")
    first = run_cycle(settings, watchlist)
    assert (first.budget, first.queue_lag, first.downloaded) == (3, 0, 3)  # nothing waiting: the whole budget
    assert consumer_lag(settings, settings.worker_group, settings.topic_jobs) == 3
    second = run_cycle(settings, watchlist)
    assert (second.budget, second.queue_lag, second.downloaded) == (1, 3, 1)  # 4 - 3 waiting
    third = run_cycle(settings, watchlist)
    assert (third.budget, third.queue_lag, third.downloaded) == (1, 4, 1)  # past the target: the minimum
    # the workers take the queue: the next run has its whole budget again
    consumer = make_consumer(settings, settings.worker_group, settings.topic_jobs, enable_auto_commit=False)
    try:
        taken = 0
        for _ in range(20):
            taken += sum(len(batch) for batch in consumer.poll(timeout_ms=500).values())
            if taken >= 5:
                break
        consumer.commit()
    finally:
        consumer.close()
    assert taken == 5 and consumer_lag(settings, settings.worker_group, settings.topic_jobs) == 0
    fourth = run_cycle(settings, watchlist)
    assert (fourth.budget, fourth.queue_lag, fourth.downloaded) == (3, 0, 1)  # one video left to download
