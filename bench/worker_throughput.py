"""Worker throughput on CPU: video-seconds analysed per wall-second, and the full worker path (Kafka → worker →
result acknowledged) against the bare suite path (decode + detectors) on the same clips, in the same run.

Needs the local stack (infra/local/stack up). Topics of its own are created and deleted.

    python bench/worker_throughput.py --clips 32 --batch 8
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from _clips import make_clips  # noqa: E402
from suite_throughput import run_bare, run_bare_overlapped  # noqa: E402


def stack_env() -> dict[str, str]:
    out = subprocess.run([str(ROOT / "infra/local/stack"), "env"], capture_output=True, text=True, check=True).stdout
    return dict(line[len("export "):].split("=", 1) for line in out.splitlines() if line.startswith("export "))


def run_worker_path(suite: Any, paths: list[Path], settings: Any, video_seconds: float) -> dict[str, float]:
    """Queue one job per clip, run a Worker in this process, time first job taken → last result acknowledged."""
    from pipeline import JobMessage, SourceMetadata, encode, ensure_topics, make_admin, make_producer
    from pipeline._submit import store_file
    from pipeline.worker import Worker

    admin = make_admin(settings)
    ensure_topics(admin, settings)
    producer = make_producer(settings)
    for path in paths:
        sha, uri = store_file(path, settings)
        job = JobMessage(video_uid=f"file:{sha[:16]}", media_uri=uri, media_sha256=sha,
                         source=SourceMetadata(platform="file", url=path.as_uri()))
        producer.send(settings.topic_jobs, key=job.video_uid.encode(), value=encode(job))
    producer.flush()
    producer.close()

    marks: dict[str, float] = {}
    acked = [0]
    done = threading.Event()
    worker = Worker(settings, suite=suite)
    original_submit, original_acked = worker.prepare.submit, worker.produce.on_acked

    def submit(item: Any) -> None:
        marks.setdefault("first", time.perf_counter())
        original_submit(item)

    def on_ack(item: Any, work: Any) -> None:
        if original_acked is not None:
            original_acked(item, work)
        acked[0] += 1
        if acked[0] == len(paths):
            marks["last"] = time.perf_counter()
            done.set()

    worker.prepare.submit = submit  # type: ignore[method-assign]
    worker.produce.on_acked = on_ack
    thread = threading.Thread(target=worker.run, kwargs={"max_seconds": 600})
    thread.start()
    try:
        if not done.wait(600):
            raise RuntimeError(f"only {acked[0]} of {len(paths)} results in 600 s")
    finally:
        worker.stop()
        thread.join(60)
        admin.delete_topics(list(settings.topics))
        admin.close()
    wall = marks["last"] - marks["first"]
    video_s = video_seconds
    return {"wall_s": wall, "video_s": video_s, "video_s_per_s": video_s / wall,
            "batches": len(worker.analyse.batches), "mean_batch": sum(worker.analyse.batches) / max(1, len(worker.analyse.batches))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench/out")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each path; medians are compared")
    args = parser.parse_args()

    from detectors import Suite
    from pipeline import load_settings

    env = stack_env()

    def settings_for_run() -> Any:
        uniq = uuid.uuid4().hex[:8]
        return load_settings(
            kafka_bootstrap=env["VIGIL_KAFKA_BOOTSTRAP"], device="cpu", topic_jobs=f"bench-{uniq}.jobs",
            topic_results=f"bench-{uniq}.results", topic_dlq=f"bench-{uniq}.dlq", topic_partitions=2,
            worker_group=f"bench-{uniq}-workers", worker_batch_size=args.batch, worker_batch_wait_s=0.2,
            worker_decode_threads=args.threads, media_store=str(args.workdir / "store"))

    suite = Suite.from_settings(settings_for_run())
    paths = make_clips(args.workdir / "clips", args.clips, seconds=args.seconds, size=args.size)
    run_bare(suite, paths[: args.batch], batch=args.batch, threads=args.threads)  # warm-up (models, graphs)

    runs: dict[str, list[dict[str, float]]] = {"bare": [], "bare_overlapped": [], "worker": []}
    for _ in range(args.repeat):  # interleaved, so load from other processes hits every path alike
        runs["bare"].append(run_bare(suite, paths, batch=args.batch, threads=args.threads))
        runs["bare_overlapped"].append(run_bare_overlapped(suite, paths, batch=args.batch, threads=args.threads))
        runs["worker"].append(run_worker_path(suite, paths, settings_for_run(), runs["bare"][-1]["video_s"]))
    wall = {name: statistics.median(r["wall_s"] for r in rs) for name, rs in runs.items()}
    video_s = runs["bare"][0]["video_s"]
    ratio = wall["worker"] / wall["bare"]
    ratio_overlapped = wall["worker"] / wall["bare_overlapped"]
    print(json.dumps({"clips": len(paths), "video_s": round(video_s, 2), "suite": suite.version,
                      "detectors": suite.names, "repeat": args.repeat,
                      "wall_s": {k: [round(r["wall_s"], 3) for r in rs] for k, rs in runs.items()},
                      "worker_batches": [r["mean_batch"] for r in runs["worker"]],
                      "ratio_worker_to_bare": round(ratio, 3),
                      "ratio_worker_to_bare_overlapped": round(ratio_overlapped, 3)}))
    print(f"bare suite (decode all, then detect):       {video_s / wall['bare']:.1f} video-s/s "
          f"(median {wall['bare']:.2f} s for {video_s:.0f} s of video)")
    print(f"bare suite (decode overlapping detect):     {video_s / wall['bare_overlapped']:.1f} video-s/s "
          f"(median {wall['bare_overlapped']:.2f} s)")
    print(f"worker path (Kafka → worker → result acked): {video_s / wall['worker']:.1f} video-s/s "
          f"(median {wall['worker']:.2f} s)")
    print(f"ratio worker/bare wall time: {ratio:.3f}; worker/overlapped bare: {ratio_overlapped:.3f} (goal <= 1.15)")


if __name__ == "__main__":
    main()
