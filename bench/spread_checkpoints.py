"""Spread readings at election scale, on a simulated clock: are the checkpoints met, and what does a reading cost?

On the real stack (Elasticsearch; ``infra/local/stack up``, indices of its own, removed afterwards) against the
tests' fake platform with ``--videos`` videos over ``--channels`` channels (each channel's page lists its newest
videos with their counters, as channel tabs and video hubs do; the trending feed lists every video without counters)
and a per-host rate limit (429 when a page or listing is asked for sooner than ``--host-interval``):

- ``--new-share`` of the videos are published during the first ``--publish-hours`` of the simulation and discovered
  a few minutes later (the crawl's documents, its reading at discovery); the rest were published one to seven days
  earlier and read on time so far (their daily checkpoint comes during the simulation or not);
- every ``--every-min`` simulated minutes a refresh runs as the DAG does (`select_active`, `poll` per host batch,
  `update_metrics`): real requests to the platform, real writes; the clock is simulated so hours pass in seconds;
- run twice, reading pages only (``VIGIL_SPREAD_LISTINGS`` off) and listings first (on).

It prints, for each run, the platform requests per observation and, per checkpoint (15 min, 1 h, 5 h, 24 h, daily),
the share of checkpoints that fell inside the simulation read within their window (10 % of the age either side) and
the 95th percentile of how late the first reading in or after the window came.

    python bench/spread_checkpoints.py                            # about 5 minutes on 2 cores
    python bench/spread_checkpoints.py --videos 5000 --json bench/out/spread_checkpoints.json
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))  # support.fakeplatform: the platform the tests serve


def populate(platform: Any, clip: Path, args: argparse.Namespace, t0: datetime) -> None:
    from support.fakeplatform import FakeVideo

    rng = random.Random(args.seed)
    for i in range(args.videos):
        if rng.random() < args.new_share:
            published = t0 + timedelta(hours=rng.uniform(0, args.publish_hours))
        else:
            published = t0 - timedelta(hours=rng.uniform(24, 7 * 24 - 12))
        views = int(rng.lognormvariate(6, 1.5))
        platform.add(FakeVideo(f"v{i:06d}", f"Campaign video {i}", media=clip, author=f"Channel {i % args.channels:04d}",
                               views=views, likes=views // 20, comments=views // 200, uploaded=published,
                               layout="video-tag"))


def last_checkpoint(schedule: Any, age_h: float) -> float:
    """The latest checkpoint age at or before ``age_h``."""
    point, last = 0.0, 0.0
    while True:
        point = schedule.checkpoint_after(point)
        if point > age_h:
            return last
        last = point


def checkpoint_report(readings: dict[str, list[datetime]], videos: dict[str, dict[str, Any]], schedule: Any,
                      end: datetime) -> dict[str, dict[str, float]]:
    """Per checkpoint kind: how many fell inside the simulation, the share read within their window, the p95
    lateness (minutes) of the first reading from the window's opening on."""
    kinds = {0.25: "15 min", 1.0: "1 h", 5.0: "5 h", 24.0: "24 h"}
    hits: dict[str, list[bool]] = defaultdict(list)
    late: dict[str, list[float]] = defaultdict(list)
    for uid, video in videos.items():
        published, followed_from = video["published"], video["followed_from"]
        point = 0.0
        while True:
            point = schedule.checkpoint_after(point)
            window = schedule.window_h(point)
            opens = published + timedelta(hours=point - window)
            closes = published + timedelta(hours=point + window)
            if closes > end:
                break
            if opens < followed_from:
                continue
            kind = kinds.get(point, "daily")
            ages = sorted(r for r in readings.get(uid, []) if r >= opens)
            hits[kind].append(bool(ages) and ages[0] <= closes)
            if ages:
                late[kind].append((ages[0] - (published + timedelta(hours=point))).total_seconds() / 60)
    out = {}
    for kind in ("15 min", "1 h", "5 h", "24 h", "daily"):
        if not hits[kind]:
            continue
        lateness = sorted(late[kind])
        p95 = lateness[min(len(lateness) - 1, int(0.95 * len(lateness)))] if lateness else float("nan")
        out[kind] = {"checkpoints": len(hits[kind]), "in_window": round(sum(hits[kind]) / len(hits[kind]), 4),
                     "p95_late_min": round(p95, 1)}
    return out


def simulate(candidates: list[Any], base: Any, platform: Any, args: argparse.Namespace, t0: datetime, *,
             listings: bool) -> dict[str, Any]:
    from sink_rate import cleanup

    from pipeline._setup import run_setup
    from pipeline.crawl import CrawlIndex
    from pipeline.spread import HostRateLimiter, PollSchedule, SpreadIndex, poll, select_active, update_metrics

    settings = base.model_copy(update={"es_index_prefix": f"{base.es_index_prefix}-{'lists' if listings else 'pages'}",
                                       "spread_listings": listings, "spread_max_videos": 5000})
    run_setup(settings)
    schedule = PollSchedule.from_settings(settings)
    crawl_index, spread_index = CrawlIndex(settings), SpreadIndex(settings)
    rng = random.Random(args.seed + 1)
    videos: dict[str, dict[str, Any]] = {}
    readings: dict[str, list[datetime]] = defaultdict(list)
    old_fields: dict[str, dict[str, Any]] = {}
    waves: list[Any] = []
    for c in candidates:
        c = c.model_copy(deep=True)
        delay = timedelta(minutes=rng.uniform(2, 10))
        published = c.published
        if published < t0:  # followed for days, read on time so far
            c.discovered_at = c.first_seen = published + delay
            last = published + timedelta(hours=last_checkpoint(schedule, (t0 - published).total_seconds() / 3600))
            old_fields[c.video_uid] = {**schedule.next_poll(last, published).fields(), "last_polled": last.isoformat()}
            videos[c.video_uid] = {"published": published, "followed_from": t0}
            waves.append((t0, c))
        else:
            c.discovered_at = c.first_seen = published + delay
            videos[c.video_uid] = {"published": published, "followed_from": c.discovered_at}
            readings[c.video_uid].append(c.discovered_at)  # the crawl's reading at discovery
            waves.append((c.discovered_at, c))
    waves.sort(key=lambda w: w[0])
    end = t0 + timedelta(hours=args.publish_hours + args.after_hours)
    limiter = HostRateLimiter(default_s=args.host_interval)
    before = len(platform.requests)
    platform.throttled = 0
    observations = failed = cycles = 0
    started = time.perf_counter()
    try:
        now = t0
        position = 0
        while now <= end:
            fresh = []
            while position < len(waves) and waves[position][0] <= now:
                fresh.append(waves[position][1])
                position += 1
            if fresh:
                crawl_index.write(fresh)
                old = {c.video_uid: old_fields[c.video_uid] for c in fresh if c.video_uid in old_fields}
                spread_index.write(updates=old)
                spread_index.es.indices.refresh(index=settings.index("videos"))
            moment = now
            obs: list[dict[str, Any]] = []
            for batch in select_active(settings, now=moment, index=spread_index):
                obs.extend(poll(batch, settings, clock=lambda m=moment: m, limiter=limiter))
            rows = update_metrics(obs, settings, index=spread_index)
            for row in rows:
                if row.get("error"):
                    failed += 1
                else:
                    observations += 1
                    readings[row["video_uid"]].append(moment)
            cycles += 1
            now += timedelta(minutes=args.every_min)
    finally:
        crawl_index.close()
        spread_index.close()
        cleanup(settings)
    seconds = time.perf_counter() - started
    requests = [p for p in platform.requests[before:] if p.startswith(("/watch/", "/channel/", "/feed.xml"))]
    listing_requests = sum(1 for p in requests if not p.startswith("/watch/"))
    return {"listings": listings, "cycles": cycles, "observations": observations, "failed": failed,
            "requests": len(requests), "listing_requests": listing_requests,
            "requests_per_observation": round(len(requests) / max(observations, 1), 3),
            "refused_by_platform": platform.throttled, "seconds": round(seconds, 1),
            "checkpoints": checkpoint_report(readings, videos, schedule, end)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=2000)
    parser.add_argument("--channels", type=int, default=100)
    parser.add_argument("--new-share", type=float, default=0.3, help="share published during the simulation")
    parser.add_argument("--publish-hours", type=float, default=2.0)
    parser.add_argument("--after-hours", type=float, default=5.6, help="simulated hours after the last publication")
    parser.add_argument("--every-min", type=float, default=5.0, help="refresh schedule (simulated minutes)")
    parser.add_argument("--host-interval", type=float, default=0.02,
                        help="seconds the fake platform wants between two page requests (429 when sooner)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from election_day import settings_for
    from support.fakeplatform import FakePlatform, MediaFactory
    from sink_rate import stack_env

    from pipeline.crawl import WatchlistEntry, discover_entry

    env = stack_env()
    t0 = datetime.now(UTC).replace(microsecond=0)
    figures: dict[str, Any] = {"videos": args.videos, "channels": args.channels, "every_min": args.every_min}
    with tempfile.TemporaryDirectory(prefix="vigil-checkpoints-") as tmp, FakePlatform() as platform:
        settings = settings_for(env, Path(tmp) / "media", args.host_interval)
        clip = MediaFactory(Path(tmp) / "clips").clip(1.0)
        populate(platform, clip, args, t0)
        platform.page_interval_s = args.host_interval
        started = time.perf_counter()
        found = discover_entry(WatchlistEntry(kind="feed", target=platform.feed_url), settings, watchlist="sim")
        assert not found.error, found.error
        candidates = [c for c in found.candidates if c.published is not None]
        for c in candidates:
            c.relevance_score = 0.9
            c.decide("queued", "downloaded")
        print(f"discovered {len(candidates)} videos in {time.perf_counter() - started:.0f} s; simulating "
              f"{args.publish_hours + args.after_hours:g} h with a refresh every {args.every_min:g} min")
        runs = [simulate(candidates, settings, platform, args, t0, listings=flag) for flag in (False, True)]
    figures["runs"] = runs
    for run in runs:
        name = "listings first" if run["listings"] else "pages only"
        print(f"\n{name}: {run['observations']:,} readings ({run['failed']} failed) with {run['requests']:,} requests "
              f"({run['listing_requests']:,} to listings): {run['requests_per_observation']:.3f} requests a reading; "
              f"{run['refused_by_platform']} refused with 429; {run['cycles']} refreshes in {run['seconds']:.0f} s")
        for kind, row in run["checkpoints"].items():
            print(f"  {kind:>6}: {row['checkpoints']:5,} checkpoints, {row['in_window']:.1%} read within 10 % of "
                  f"their age, p95 {row['p95_late_min']:+.1f} min from the checkpoint")
    pages, lists = runs
    if lists["requests_per_observation"]:
        print(f"\nrequests a reading: {pages['requests_per_observation']:.3f} -> {lists['requests_per_observation']:.3f}"
              f" ({pages['requests_per_observation'] / lists['requests_per_observation']:.1f}x fewer)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
