"""Election day, measured: each component's sustained rate on this machine, and the deployment those rates imply for
``--per-day`` new political videos a day (50,000 by default) scored within ``--p95-minutes`` of discovery and
followed for a week.

On the real stack (Kafka, Elasticsearch; ``infra/local/stack up``) with topics and indices of its own (removed
afterwards), against the tests' fake platform grown to ``--videos`` videos over ``--channels`` channels (upload ages
up to a day, views log-normal, a few viral), serving pages with a per-host rate limit like a real platform (a page
asked for sooner than ``--host-interval`` after the previous one answers 429):

1. discovery: the crawl's `discover_entry` over the platform's feed (every video's page read with yt-dlp, at the
   polite interval): videos discovered per hour per crawl slot;
2. triage's write: the crawl's `vigil-videos` documents for all of them (bulk): documents per second;
3. downloads: the crawl's `download` (fetch, verify, store, produce the job, index) of ``--downloads`` of them:
   downloads per hour per slot (the clips are small: seconds per download are mostly fixed costs);
4. spread: `poll_videos` + `update_metrics` over ``--polls`` videos at the polite interval: observations per hour per
   host poller (and how many pages the platform refused: 0 when the limiter holds);
5. workers: the default detector suite (no checkpoints configured) on generated talking heads: video-seconds per
   second per worker on this machine;
6. sink: `Sink` from Kafka into Elasticsearch (`bench/sink_rate.py`'s): results per second;
7. storage: Elasticsearch bytes per video document and per spread snapshot (primary store after a force merge).

    python bench/election_day.py                       # about 5-10 minutes on 2 cores
    python bench/election_day.py --videos 5000 --polls 1000 --json bench/out/election_day.json
"""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))  # support.fakeplatform: the platform the tests serve

#: readings of one video in its week with the default checkpoints: discovery, 15 min, 1 h, 5 h, 24 h, then daily
READINGS_PER_VIDEO_WEEK = 11


def settings_for(env: dict[str, str], media: Path, host_interval: float) -> Any:
    from pipeline import Settings

    uniq = uuid.uuid4().hex[:8]
    return Settings(
        kafka_bootstrap=env["VIGIL_KAFKA_BOOTSTRAP"], es_url=env["VIGIL_ES_URL"], es_user=env.get("VIGIL_ES_USER"),
        es_password=env.get("VIGIL_ES_PASSWORD"), es_ca_file=env.get("VIGIL_ES_CA_FILE"), es_replicas=0,
        es_index_prefix=f"bench-day-{uniq}", topic_jobs=f"bench-day-{uniq}.jobs",
        topic_results=f"bench-day-{uniq}.results", topic_dlq=f"bench-day-{uniq}.dlq", topic_partitions=2,
        worker_group=f"bench-day-{uniq}-workers", sink_group=f"bench-day-{uniq}-sink", media_store=str(media),
        allowed_private_networks=["127.0.0.0/8"], ytdlp_extractors=["generic"], crawl_fetch_subtitles=False,
        crawl_sleep_requests_s=host_interval, spread_min_interval_s=host_interval, crawl_retry_wait_s=0.05,
        crawl_default_limit=100_000)


def populate(platform: Any, clip: Path, videos: int, channels: int, seed: int = 5) -> None:
    """Mostly flat videos, 2 % viral, upload ages up to a day."""
    from support.fakeplatform import FakeVideo

    rng = random.Random(seed)
    now = datetime.now(UTC)
    topics = ("election fraud claims", "senate debate", "ballot counting", "campaign rally", "minister interview",
              "vote by mail", "polling station queues", "candidate speech")
    for i in range(videos):
        viral = rng.random() < 0.02
        views = int(rng.lognormvariate(6, 1.5) * (200 if viral else 1))
        platform.add(FakeVideo(f"v{i:06d}", f"{rng.choice(topics).capitalize()} in district {i % 97}",
                               description="Footage from the campaign trail, election day coverage.", media=clip,
                               author=f"Channel {i % channels:04d}", views=views, likes=views // 20,
                               comments=views // 200, uploaded=now - timedelta(hours=rng.uniform(0.1, 24)),
                               layout="video-tag"))


def talking_clips(directory: Path, n: int) -> list[Path]:
    from detectors.synthetic import make_long_clip

    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = directory / f"talking_{i}.mp4"
        if not path.exists():
            make_long_clip(path, seed=21_000 + i)
        paths.append(path)
    return paths


def es_bytes_per_doc(es: Any, index: str) -> tuple[float, int]:
    es.indices.refresh(index=index)
    es.indices.forcemerge(index=index, max_num_segments=1)
    stats = es.indices.stats(index=index)["_all"]["primaries"]
    docs = int(stats["docs"]["count"])
    return (stats["store"]["size_in_bytes"] / docs if docs else float("nan")), docs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=2000, help="videos on the fake platform (all discovered)")
    parser.add_argument("--channels", type=int, default=200)
    parser.add_argument("--downloads", type=int, default=40)
    parser.add_argument("--polls", type=int, default=500, help="videos re-polled for the spread rate")
    parser.add_argument("--worker-clips", type=int, default=4, help="generated talking heads (20-30 s) for the suite")
    parser.add_argument("--results", type=int, default=2000,
                        help="results through the sink (the first ones score the discovered videos' documents)")
    parser.add_argument("--host-interval", type=float, default=0.05,
                        help="seconds the fake platform wants between two page requests (429 when sooner)")
    parser.add_argument("--real-host-interval", type=float, default=1.0,
                        help="the polite interval assumed for a real platform host in the deployment arithmetic")
    parser.add_argument("--requests-per-reading", type=float, default=None,
                        help="platform requests per spread reading with listings first (default: the figure of the "
                        "last `bench/spread_checkpoints.py --json bench/out/spread_checkpoints.json` run, else 1)")
    parser.add_argument("--per-day", type=int, default=50_000)
    parser.add_argument("--mean-duration-s", type=float, default=60.0, help="median political video: a minute")
    parser.add_argument("--peak-factor", type=float, default=3.0, help="busiest hour against the day's mean hour")
    parser.add_argument("--p95-minutes", type=float, default=15.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from support.fakeplatform import FakePlatform, MediaFactory
    from sink_rate import cleanup, make_results, run_sink, stack_env
    from suite_throughput import run_bare

    from pipeline import make_es_client
    from pipeline._setup import run_setup
    from pipeline._media_store import MediaStore
    from pipeline.crawl import (CrawlIndex, JobQueue, UrlPolicy, WatchlistEntry, discover_entry, download,
                                rank_candidates)
    from pipeline.spread import HostRateLimiter, poll_videos, update_metrics

    env = stack_env()
    figures: dict[str, Any] = {"videos": args.videos, "host_interval_s": args.host_interval}
    with tempfile.TemporaryDirectory(prefix="vigil-election-") as tmp:
        settings = settings_for(env, Path(tmp) / "media", args.host_interval)
        run_setup(settings)
        es = make_es_client(settings, request_timeout=120)
        try:
            with FakePlatform() as platform:
                clip = MediaFactory(Path(tmp) / "clips").clip(4.0, size="320x240")
                populate(platform, clip, args.videos, args.channels)
                platform.page_interval_s = args.host_interval

                # 1. discovery
                started = time.perf_counter()
                found = discover_entry(WatchlistEntry(kind="feed", target=platform.feed_url), settings,
                                       watchlist="election-day")
                seconds = time.perf_counter() - started
                assert not found.error, found.error
                candidates = found.candidates
                uids = [c.video_uid for c in candidates]
                figures["discovery"] = {"videos": len(candidates), "seconds": round(seconds, 1),
                                        "per_hour_per_slot": round(3600 * len(candidates) / seconds),
                                        "refused_by_platform": platform.throttled}
                print(f"1. discovery: {len(candidates)} videos in {seconds:.1f} s at a {args.host_interval:g} s "
                      f"polite interval: {figures['discovery']['per_hour_per_slot']:,} an hour per crawl slot "
                      f"({platform.throttled} pages refused with 429)")

                # 2. triage's write
                for c in candidates:
                    c.relevance_score = 0.9
                rank_candidates(candidates)
                chosen = candidates[: args.downloads]
                rest = candidates[args.downloads:]
                for c in rest:
                    c.decide("skipped", "download budget of this benchmark spent")
                index = CrawlIndex(settings)
                started = time.perf_counter()
                index.write(rest)
                seconds = time.perf_counter() - started
                figures["index_write"] = {"documents": len(rest), "per_second": round(len(rest) / seconds)}
                print(f"2. crawl documents: {len(rest)} written in {seconds:.1f} s: "
                      f"{figures['index_write']['per_second']:,} a second")

                # 3. downloads
                jobs = JobQueue(settings)
                store = MediaStore.from_settings(settings)
                policy = UrlPolicy.from_settings(settings)
                started = time.perf_counter()
                done = [download(c.to_xcom(), settings, index=index, jobs=jobs, store=store, policy=policy)
                        for c in chosen]
                seconds = time.perf_counter() - started
                jobs.close()
                queued = sum(1 for d in done if d["status"] == "queued")
                figures["downloads"] = {"queued": queued, "of": len(chosen), "seconds": round(seconds, 1),
                                        "bytes_each": clip.stat().st_size,
                                        "per_hour_per_slot": round(3600 * queued / seconds)}
                print(f"3. downloads: {queued} of {len(chosen)} queued in {seconds:.1f} s "
                      f"({clip.stat().st_size // 1024} KB each): {figures['downloads']['per_hour_per_slot']:,} an "
                      f"hour per slot")
                index.close()

                # 4. spread
                docs = [{"video_uid": c.video_uid, "url": c.url, "platform": c.platform}
                        for c in candidates[: args.polls]]
                platform.throttled = 0
                limiter = HostRateLimiter(default_s=args.host_interval)
                started = time.perf_counter()
                observations = poll_videos(docs, settings, limiter=limiter)
                polled = time.perf_counter() - started
                rows = update_metrics([o.to_xcom() for o in observations], settings)
                written = time.perf_counter() - started - polled
                ok = sum(1 for o in observations if not o.error)
                figures["spread"] = {"observations": ok, "of": len(docs), "seconds": round(polled, 1),
                                     "per_hour_per_host": round(3600 * ok / polled),
                                     "request_s": round(polled / max(ok, 1), 4),
                                     "refused_by_platform": platform.throttled,
                                     "metrics_write_per_second": round(len(rows) / max(written, 1e-6))}
                print(f"4. spread: {ok} of {len(docs)} observations in {polled:.1f} s at a {args.host_interval:g} s "
                      f"interval: {figures['spread']['per_hour_per_host']:,} an hour per host "
                      f"({figures['spread']['request_s'] * 1000:.0f} ms a reading, {platform.throttled} refused); "
                      f"snapshots and metrics written at {figures['spread']['metrics_write_per_second']:,} a second")

            # 5. workers
            from detectors import Suite

            suite = Suite.from_settings(settings.model_copy(update={"device": "cpu"}))
            paths = talking_clips(ROOT / "bench" / "out" / "election_day", args.worker_clips)
            run_bare(suite, paths[:1], batch=1, threads=2)  # warm-up
            worker = run_bare(suite, paths, batch=4, threads=2)
            figures["worker"] = {"detectors": suite.names, "video_s": round(worker["video_s"], 1),
                                 "video_s_per_s": round(worker["video_s_per_s"], 2)}
            print(f"5. worker ({', '.join(suite.names)}): {worker['video_s']:.0f} video-seconds at "
                  f"{worker['video_s_per_s']:.1f}x real time on this machine")

            # 6. sink
            results = [r.model_copy(update={"video_uid": uid}) if uid else r  # scores merge into the crawl's documents
                       for r, uid in zip(make_results(args.results), uids + [None] * args.results, strict=False)]
            seconds = run_sink(results, settings)
            figures["sink"] = {"results": args.results, "per_second": round(args.results / seconds)}
            print(f"6. sink: {args.results} results in {seconds:.1f} s: {figures['sink']['per_second']:,} a second")

            # 7. storage
            per_video, n_videos = es_bytes_per_doc(es, settings.index("videos"))
            per_snapshot, n_snaps = es_bytes_per_doc(es, f"{settings.es_index_prefix}-spread-000001")
            per_detection, n_det = es_bytes_per_doc(es, settings.index("detections"))
            figures["storage"] = {"bytes_per_video": round(per_video), "bytes_per_snapshot": round(per_snapshot),
                                  "bytes_per_detection": round(per_detection), "videos": n_videos,
                                  "snapshots": n_snaps, "detections": n_det}
            print(f"7. Elasticsearch: {per_video:,.0f} bytes a video document ({n_videos:,}), {per_snapshot:,.0f} a "
                  f"spread snapshot ({n_snaps:,}), {per_detection:,.0f} a detection ({n_det:,})")
        finally:
            es.close()
            cleanup(settings)  # its own indices, templates and topics

    # the deployment for the day
    per_hour = args.per_day / 24
    peak_hour = per_hour * args.peak_factor
    page_s = figures["discovery"]["seconds"] / max(figures["discovery"]["videos"], 1)
    discovery_slots = math.ceil(peak_hour / (3600 / max(args.real_host_interval, page_s)))
    download_slots = math.ceil(peak_hour / figures["downloads"]["per_hour_per_slot"])
    video_s_per_s = peak_hour * args.mean_duration_s / 3600
    workers = math.ceil(video_s_per_s / figures["worker"]["video_s_per_s"])
    readings_per_hour = args.per_day * READINGS_PER_VIDEO_WEEK / 24
    per_reading = args.requests_per_reading
    measured = ROOT / "bench" / "out" / "spread_checkpoints.json"
    if per_reading is None and measured.exists():
        runs = json.loads(measured.read_text())["runs"]
        per_reading = next(r["requests_per_observation"] for r in runs if r["listings"])
    per_reading = 1.0 if per_reading is None else per_reading
    host_rate = 3600 / max(args.real_host_interval, figures["spread"]["request_s"])
    pollers = math.ceil(readings_per_hour * per_reading / host_rate)
    sink_load = args.per_day / 86400 / figures["sink"]["per_second"]
    es_day = (args.per_day * (figures["storage"]["bytes_per_video"] + figures["storage"]["bytes_per_detection"])
              + args.per_day * READINGS_PER_VIDEO_WEEK * figures["storage"]["bytes_per_snapshot"])
    deployment = {"per_day": args.per_day, "peak_hour_videos": round(peak_hour), "discovery_slots": discovery_slots,
                  "download_slots": download_slots, "cpu_workers_2_cores": workers,
                  "video_seconds_per_second_at_peak": round(video_s_per_s, 1),
                  "spread_readings_per_hour": round(readings_per_hour), "requests_per_reading": per_reading,
                  "host_pollers": pollers,
                  "sink_share_of_one": round(sink_load, 4), "es_bytes_per_day": round(es_day),
                  "es_gb_per_year": round(es_day * 365 / 1e9, 1)}
    figures["deployment"] = deployment
    print(f"\nfor {args.per_day:,} videos a day (busiest hour {args.peak_factor:g}x the mean: {peak_hour:,.0f} videos; "
          f"{args.mean_duration_s:g} s each; capacity for the busiest hour keeps the queue from growing, so a video is "
          f"scored within {args.p95_minutes:g} min of discovery: one crawl interval, its download and its analysis):")
    print(f"  discovery: {discovery_slots} crawl slots, each reading one page per {args.real_host_interval:g} s of a "
          f"host (spread over hosts and platform pools: a host's limit is the platform's)")
    print(f"  downloads: {download_slots} download slots at this machine's {figures['downloads']['per_hour_per_slot']:,} "
          f"an hour (small clips: a minute of 720p is ~10x the bytes; give the network its share)")
    print(f"  workers: {video_s_per_s:.0f} video-seconds a second at the peak: {workers} CPU workers of 2 cores at "
          f"{figures['worker']['video_s_per_s']:.1f}x real time (the model detectors need GPUs: `bench/gpu.sh`)")
    print(f"  spread: {readings_per_hour:,.0f} readings an hour ({READINGS_PER_VIDEO_WEEK} a video-week) at "
          f"{per_reading:.2f} requests a reading (listings first): {pollers} host pollers at one request per "
          f"{args.real_host_interval:g} s per host; VIGIL_SPREAD_MAX_VIDEOS at least "
          f"{math.ceil(readings_per_hour * args.peak_factor / 12):,} for a refresh every 5 minutes at the peak")
    print(f"  sink: {sink_load:.1%} of one sink process; Elasticsearch: {es_day / 1e9:.2f} GB a day, "
          f"{deployment['es_gb_per_year']:,} GB a year before replicas")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
