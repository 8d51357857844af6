"""Console queue latency: ``GET /api/queue`` (bearer token, real `vigil console` process, real Elasticsearch) with
N synthetic videos in an index prefix of its own, over a mix of plain pages, deep pages and filters; p50 / p95 /
max in milliseconds. Goal: p95 under 200 ms with 50,000 videos. The prefix is deleted afterwards.

Needs the local stack (infra/local/stack up).

    python bench/console_queue.py --videos 50000 --requests 300
"""
from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def stack_env() -> dict[str, str]:
    out = subprocess.run([str(ROOT / "infra/local/stack"), "env"], capture_output=True, text=True, check=True).stdout
    return dict(line[len("export "):].split("=", 1) for line in out.splitlines() if line.startswith("export "))


PLATFORMS = ("youtube", "tiktok", "x", "facebook", "file")
TAGS = ("us", "eu", "election-2026", "health", "migration")


def videos(n: int, seed: int = 1) -> Any:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    for i in range(n):
        platform = rng.choice(PLATFORMS)
        score = rng.random()
        doc: dict[str, Any] = {
            "video_uid": f"{platform}:{i:07d}", "platform": platform, "title": f"Synthetic video {i} about politics",
            "status": rng.choice(("scored", "scored", "scored", "queued", "skipped")),
            "first_seen": (now - timedelta(hours=rng.random() * 24 * 14)).isoformat(),
            "tags": rng.sample(TAGS, 2), "channel": {"name": f"channel {i % 997}"},
            "fused": {"score": score, "verdict": "likely_manipulated" if score >= 0.75 else
                      "suspicious" if score >= 0.5 else "no_signal"},
        }
        if platform != "file":
            vph = rng.lognormvariate(4, 2)
            doc["spread"] = {"views": int(vph * 10), "views_per_hour": vph}
            doc["risk"] = round(score * vph, 3)
        if i % 50 == 0:
            doc["cluster"] = {"id": f"c{i % 500}", "size": 3}
        if i % 40 == 0:
            doc["analyst"] = {"verdict": rng.choice(("authentic", "manipulated", "cannot_tell")), "analyst": "ana",
                              "at": now.isoformat()}
        yield {"_index": None, "_id": doc["video_uid"], "_source": doc}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=50_000)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()

    import requests
    from elasticsearch import helpers

    from pipeline import Settings, make_es_client
    from pipeline._elasticsearch import apply_templates
    from pipeline.console import Accounts

    env = stack_env()
    prefix = f"bench-console-{uuid.uuid4().hex[:6]}"
    settings = Settings(es_url=env["VIGIL_ES_URL"], es_user=env.get("VIGIL_ES_USER"),
                        es_password=env.get("VIGIL_ES_PASSWORD"), es_ca_file=env.get("VIGIL_ES_CA_FILE"),
                        es_index_prefix=prefix, es_replicas=0, media_store=f"/tmp/{prefix}")
    es = make_es_client(settings, request_timeout=120)
    proc = None
    try:
        apply_templates(es, settings)
        index = settings.index("videos")
        started = time.perf_counter()
        actions = ({**a, "_index": index} for a in videos(args.videos))
        for ok, item in helpers.streaming_bulk(es, actions, chunk_size=2000, raise_on_error=True):
            pass
        es.indices.refresh(index=index)
        es.indices.forcemerge(index=index, max_num_segments=1)
        print(f"loaded {es.count(index=index)['count']} videos in {time.perf_counter() - started:.1f} s")
        accounts = Accounts(es, settings)
        accounts.add_user("bench", "analyst", uuid.uuid4().hex)  # a password the console's policy accepts
        token, _ = accounts.new_token("bench")

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        child_env = {**{k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")},
                     **{f"VIGIL_{k.upper()}": str(v) for k, v in (("es_url", settings.es_url),
                                                                 ("es_user", settings.es_user),
                                                                 ("es_password", env.get("VIGIL_ES_PASSWORD")),
                                                                 ("es_ca_file", settings.es_ca_file),
                                                                 ("es_index_prefix", prefix)) if v},
                     "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen([sys.executable, "-m", "pipeline", "console", "--port", str(port)], cwd=ROOT,
                                env=child_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        for _ in range(200):
            try:
                if session.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
        rng = random.Random(7)
        mixes = [
            lambda: {},
            lambda: {"page": str(rng.randint(1, 150))},
            lambda: {"platform": rng.choice(PLATFORMS)},
            lambda: {"analyst": rng.choice(("none", "manipulated"))},
            lambda: {"tag": rng.choice(TAGS), "page": str(rng.randint(1, 5))},
            lambda: {"since": (datetime.now(UTC) - timedelta(days=rng.randint(1, 7))).date().isoformat()},
            lambda: {"q": "politics", "verdict": "suspicious"},
        ]
        for _ in range(20):  # warm-up
            session.get(f"{base}/api/queue", params=mixes[0](), timeout=30).raise_for_status()
        timings = []
        for i in range(args.requests):
            params = mixes[i % len(mixes)]()
            start = time.perf_counter()
            response = session.get(f"{base}/api/queue", params=params, timeout=30)
            timings.append((time.perf_counter() - start) * 1000)
            response.raise_for_status()
            assert response.json()["items"] or params.get("page"), params
        timings.sort()
        p95 = timings[int(0.95 * (len(timings) - 1))]
        print(f"GET /api/queue over {args.videos} videos, {len(timings)} requests: "
              f"p50 {statistics.median(timings):.1f} ms, p95 {p95:.1f} ms, max {timings[-1]:.1f} ms "
              f"(goal p95 < 200 ms: {'met' if p95 < 200 else 'NOT met'})")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        from pipeline._elasticsearch import INDEX_NAMES

        names = [settings.index(n) for n in ("videos", "detections", "alerts", "verdicts", "watchlists",
                                                "watchlist-runs")]
        es.options(ignore_status=404).indices.delete(index=",".join([*names, f"{prefix}-spread-000001",
                                                                     f"{prefix}-console-users"]),
                                                     ignore_unavailable=True)
        for name in INDEX_NAMES:  # every index template apply_templates put, before the components they use
            es.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}-{name}")
        for name in ("settings", "spread-ilm"):
            es.options(ignore_status=404).cluster.delete_component_template(name=f"{prefix}-{name}")
        es.close()


if __name__ == "__main__":
    main()
