"""Bytes per spread snapshot: the time-series index Vigil's template makes against a standard index with the same
fields, in one run on the local stack's Elasticsearch.

``--videos`` videos with ``--readings`` snapshots each (the week's checkpoints), shaped as `update_metrics` writes
them (counters, derived metrics, platform, channel, cluster, source), are written to both indices; after a force
merge to one segment each prints the primary store's bytes per document.

    python bench/spread_storage.py                    # 20,000 videos x 11 readings, about a minute
    python bench/spread_storage.py --videos 50000 --json bench/out/spread_storage.json
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def snapshots(videos: int, readings: int, seed: int = 3) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(days=7)
    ages = [0.1, 0.25, 1.0, 5.0, 24.0, 48.0, 72.0, 96.0, 120.0, 144.0, 168.0][:readings]
    for v in range(videos):
        uid = f"youtube:{v:011d}"
        published = start + timedelta(hours=rng.uniform(0, 24))
        views = rng.randint(10, 5000)
        withheld = rng.random() < 0.1
        for age in ages:
            views = int(views * rng.uniform(1.0, 1.6))
            at = published + timedelta(hours=age + rng.uniform(0, 0.05))
            counters = {"views": views, "likes": None if withheld else views // 20, "comments": views // 200,
                        "reposts": None}
            yield {**counters, "video_uid": uid, "@timestamp": at.isoformat(), "age_h": round(age, 3),
                   "views_per_hour": round(views / max(age, 0.1), 3), "acceleration": round(rng.gauss(0, 50), 3),
                   "engagement_rate": None if withheld else round(0.055, 3), "overperformance": round(rng.random() * 3, 3),
                   "platform": "youtube", "channel": {"id": f"UC{v % 700:05d}"}, "cluster": {"id": f"c{v % 9000:05d}"},
                   "counters_missing": sorted(k for k, value in counters.items() if value is None),
                   "source": "listing" if rng.random() < 0.6 else "page",
                   "event": {"created": at.isoformat(), "dataset": "vigil.spread"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=20_000)
    parser.add_argument("--readings", type=int, default=11)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from elasticsearch import helpers
    from sink_rate import stack_env

    from pipeline import Settings, make_es_client
    from pipeline._elasticsearch import _without_time_series, load_index_templates, snapshot_action

    env = stack_env()
    settings = Settings(es_url=env["VIGIL_ES_URL"], es_user=env.get("VIGIL_ES_USER"),
                        es_password=env.get("VIGIL_ES_PASSWORD"), es_ca_file=env.get("VIGIL_ES_CA_FILE"),
                        es_index_prefix=f"bench-store-{uuid.uuid4().hex[:8]}")
    template = load_index_templates(settings)[settings.index("spread")]["template"]
    mode = template["settings"]["index"]
    layouts = {
        "standard": ({"number_of_shards": 1, "number_of_replicas": 0}, _without_time_series(template["mappings"])),
        "time_series": ({"number_of_shards": 1, "number_of_replicas": 0, "index.mode": mode["mode"],
                         "index.routing_path": mode["routing_path"]}, template["mappings"]),
    }
    es = make_es_client(settings, request_timeout=300)
    figures: dict[str, Any] = {"videos": args.videos, "readings": args.readings}
    try:
        for name, (index_settings, mappings) in layouts.items():
            index = f"{settings.es_index_prefix}-{name.replace('_', '-')}"
            es.indices.create(index=index, settings=index_settings, mappings=mappings)
            try:
                actions = (snapshot_action(index, doc) for doc in snapshots(args.videos, args.readings))
                helpers.bulk(es, actions, chunk_size=5000, request_timeout=300)
                es.indices.refresh(index=index)
                es.indices.forcemerge(index=index, max_num_segments=1)
                stats = es.indices.stats(index=index)["_all"]["primaries"]
                docs, size = int(stats["docs"]["count"]), int(stats["store"]["size_in_bytes"])
            finally:
                es.options(ignore_status=404).indices.delete(index=index)
            figures[name] = {"documents": docs, "bytes": size, "bytes_per_snapshot": round(size / docs, 1)}
            print(f"{name:>11}: {docs:,} snapshots, {size / 1e6:.1f} MB, {size / docs:.0f} bytes a snapshot")
    finally:
        es.close()
    ratio = figures["standard"]["bytes_per_snapshot"] / figures["time_series"]["bytes_per_snapshot"]
    figures["ratio"] = round(ratio, 2)
    print(f"time-series index: {ratio:.1f}x fewer bytes a snapshot")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
