"""Sink rate: results per second from Kafka into Elasticsearch through `Sink`, against a raw
``elasticsearch.helpers.streaming_bulk`` of the same documents, in the same run.

Needs the local stack (infra/local/stack up). Indices and topics of its own are created and deleted.

    python bench/sink_rate.py --results 5000
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def stack_env() -> dict[str, str]:
    out = subprocess.run([str(ROOT / "infra/local/stack"), "env"], capture_output=True, text=True, check=True).stdout
    return dict(line[len("export "):].split("=", 1) for line in out.splitlines() if line.startswith("export "))


def make_results(n: int) -> list[Any]:
    """Results shaped like the real suite's: two detectors with timelines and evidence, fused score, timings."""
    from pipeline import DetectorOutput, FusedScore, ResultMessage, SourceMetadata, TimelineWindow

    rng = random.Random(1)
    out = []
    for i in range(n):
        timeline = [TimelineWindow(start_s=w * 2.0, end_s=w * 2.0 + 2.0, score=rng.random()) for w in range(15)]
        detectors = {
            "lipsync": DetectorOutput(version="1.0", applicable=True, score=rng.random(), timeline=timeline,
                                      evidence={"offset_ms": rng.randint(-300, 300), "confidence": rng.random()}),
            "spectral": DetectorOutput(version="1.0", applicable=True, score=rng.random(), timeline=timeline[:5],
                                       evidence={"peaks": [rng.random() for _ in range(8)]}),
        }
        out.append(ResultMessage(
            video_uid=f"bench:{i}", media_sha256=f"{rng.getrandbits(256):064x}", suite_version="suite-bench",
            duration_s=30.0, fused=FusedScore(score=rng.random(), verdict="no_signal", reasons=["bench"]),
            detectors=detectors, timings_ms={"decode": 400.0, "faces": 120.0, "lipsync": 35.0},
            source=SourceMetadata(platform="bench", url=f"https://example.org/{i}", title=f"video {i}")))
    return out


def settings_for_run(env: dict[str, str], bulk: int) -> Any:
    from pipeline import load_settings

    uniq = uuid.uuid4().hex[:8]
    return load_settings(
        kafka_bootstrap=env["VIGIL_KAFKA_BOOTSTRAP"], es_url=env["VIGIL_ES_URL"], es_user=env["VIGIL_ES_USER"],
        es_password=env["VIGIL_ES_PASSWORD"], es_ca_file=env["VIGIL_ES_CA_FILE"], es_replicas=0,
        es_index_prefix=f"bench-{uniq}", topic_jobs=f"bench-{uniq}.jobs", topic_results=f"bench-{uniq}.results",
        topic_dlq=f"bench-{uniq}.dlq", topic_partitions=2, sink_group=f"bench-{uniq}-sink", sink_bulk_size=bulk,
        sink_flush_interval_s=0.5)


def cleanup(settings: Any) -> None:
    """Delete the indices, templates and topics of a benchmark's own settings (prefix and topic names of its own):
    the tests' clean-up, `tests/support/stack.py` (explicit names, no wildcard deletes)."""
    if str(ROOT / "tests") not in sys.path:
        sys.path.insert(0, str(ROOT / "tests"))
    from support.stack import remove_test_objects

    remove_test_objects(settings)


def run_raw(results: list[Any], settings: Any) -> float:
    """streaming_bulk of the same two documents per result (already parsed, plain dicts); seconds."""
    from elasticsearch.helpers import streaming_bulk

    from pipeline import make_es_client
    from pipeline.sink import bulk_actions, detection_doc

    es = make_es_client(settings)
    start = time.perf_counter()
    def plain(r: Any) -> list[dict[str, Any]]:  # the same documents, as plain dicts the client serialises
        index, update = bulk_actions(r, settings)
        return [dict(index, _source=detection_doc(r)), update]

    actions = (a for r in results for a in plain(r))
    failed = sum(1 for ok, _ in streaming_bulk(es, actions, chunk_size=2 * settings.sink_bulk_size,
                                               raise_on_error=False) if not ok)
    elapsed = time.perf_counter() - start
    es.close()
    assert failed == 0, f"{failed} raw bulk items failed"
    return elapsed


def run_sink(results: list[Any], settings: Any) -> float:
    """Pre-produce the results, run a Sink; seconds from its first record to its last commit."""
    from pipeline import encode, make_producer
    from pipeline.sink import Sink

    producer = make_producer(settings, linger_ms=20, batch_size=1 << 20)
    for r in results:
        producer.send(settings.topic_results, key=r.video_uid.encode(), value=encode(r))
    producer.flush()
    producer.close()
    sink = Sink(settings)
    marks: dict[str, float] = {}
    done = threading.Event()
    original_submit, original_done, original_commit = sink.decode.submit, sink.tracker.done, sink.commit.commit_now
    settled = [0]

    def submit(item: Any) -> None:
        marks.setdefault("first", time.perf_counter())
        original_submit(item)

    def mark_done(*args: Any) -> bool:
        ok = original_done(*args)
        settled[0] += int(ok)
        return ok

    def commit_now() -> Any:
        committed = original_commit()  # the offsets of what Elasticsearch acknowledged
        if settled[0] >= len(results) and not sink.tracker.committable() and "last" not in marks:
            marks["last"] = time.perf_counter()
            done.set()
        return committed

    sink.decode.submit = submit  # type: ignore[method-assign]
    sink.tracker.done = mark_done  # type: ignore[method-assign]
    sink.commit.commit_now = commit_now  # type: ignore[method-assign]
    thread = threading.Thread(target=sink.run, kwargs={"max_seconds": 600})
    thread.start()
    try:
        if not done.wait(600):
            raise RuntimeError(f"the sink wrote {settled[0]} of {len(results)} in 600 s")
    finally:
        sink.stop()
        thread.join(60)
    return marks["last"] - marks["first"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=5000)
    parser.add_argument("--bulk", type=int, default=500, help="results per bulk request (sink_bulk_size)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from pipeline import make_es_client, run_setup

    env = stack_env()
    results = make_results(args.results)
    raw_s, sink_s = [], []
    for _ in range(args.repeat):  # interleaved, each on fresh indices
        for kind in ("raw", "sink"):
            settings = settings_for_run(env, args.bulk)
            run_setup(settings)
            try:
                (raw_s if kind == "raw" else sink_s).append(
                    run_raw(results, settings) if kind == "raw" else run_sink(results, settings))
                es = make_es_client(settings)
                es.indices.refresh(index=settings.index("detections"))
                count = es.count(index=settings.index("detections"))["count"]
                es.close()
                assert count == len(results), f"{kind}: {count} documents of {len(results)}"
            finally:
                cleanup(settings)
    raw, sink = statistics.median(raw_s), statistics.median(sink_s)
    ratio = (len(results) / sink) / (len(results) / raw)
    print(json.dumps({"results": len(results), "bulk": args.bulk, "raw_s": [round(x, 3) for x in raw_s],
                      "sink_s": [round(x, 3) for x in sink_s], "ratio_sink_to_raw": round(ratio, 3)}))
    print(f"raw streaming_bulk: {len(results) / raw:.0f} results/s (median {raw:.2f} s, 2 documents per result)")
    print(f"sink (Kafka → bulk → commit): {len(results) / sink:.0f} results/s (median {sink:.2f} s)")
    print(f"ratio sink/raw rate: {ratio:.3f} (goal >= 0.9)")


if __name__ == "__main__":
    main()
