"""The bare detector-suite path on generated clips: decode + faces (thread pool) and detectors batched across
videos, no Kafka or Elasticsearch. Prints video-seconds per wall-second and, on CUDA, peak GPU memory.

    python bench/suite_throughput.py --device cuda --clips 64 --batch 16
    python bench/suite_throughput.py --device cpu --clips 16
    python bench/suite_throughput.py --device cpu --files 'bench/out/detector_accuracy/real_check/dub_*.mp4' \
        --files 'bench/out/detector_accuracy/long_*.mp4' --without face_dynamics   # talking faces; the ratio

``--files`` takes existing videos (talking faces: the generated test pattern has none, so face detectors are not
applicable on it); ``--without NAME`` runs the same files again without that detector and prints the ratio.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _clips import make_clips  # noqa: E402


def run_bare(suite: Any, paths: list[Path], *, batch: int, threads: int) -> dict[str, float]:
    """prepare every clip on ``threads`` threads, then analyse in batches of ``batch``; wall time and video time."""
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        clips = [clip for clip, _ in pool.map(lambda p: suite.prepare(str(p)), paths)]
    prepared = time.perf_counter()
    results = []
    for i in range(0, len(clips), batch):
        results.extend(suite.analyse(clips[i:i + batch]))
    end = time.perf_counter()
    video_s = sum(c.duration_s for c in clips)
    assert len(results) == len(paths)
    return {"wall_s": end - start, "prepare_s": prepared - start, "analyse_s": end - prepared, "video_s": video_s,
            "video_s_per_s": video_s / (end - start)}


def run_bare_overlapped(suite: Any, paths: list[Path], *, batch: int, threads: int) -> dict[str, float]:
    """Like ``run_bare`` but a batch is analysed as soon as it is decoded while the pool keeps decoding: the best
    the same hardware can do without any Kafka in between."""
    start = time.perf_counter()
    results, video_s, pending = [], 0.0, []
    with ThreadPoolExecutor(threads) as pool:
        for clip, _ in pool.map(lambda p: suite.prepare(str(p)), paths):
            video_s += clip.duration_s
            pending.append(clip)
            if len(pending) == batch:
                results.extend(suite.analyse(pending))
                pending = []
        if pending:
            results.extend(suite.analyse(pending))
    end = time.perf_counter()
    assert len(results) == len(paths)
    return {"wall_s": end - start, "video_s": video_s, "video_s_per_s": video_s / (end - start)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 … (VIGIL_DEVICE)")
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--detectors", default="", help="comma-separated names; empty = the default suite")
    parser.add_argument("--workdir", type=Path, default=Path("bench/out/clips"))
    parser.add_argument("--files", action="append", default=[], help="glob of existing videos (repeatable)")
    parser.add_argument("--without", default="", help="run again without this detector and print the ratio")
    args = parser.parse_args()

    import torch

    from detectors import Suite
    from pipeline import load_settings

    import glob

    settings = load_settings(device=args.device)
    names = [n for n in args.detectors.split(",") if n] or None
    suite = Suite.from_settings(settings, names=names)
    if args.files:
        paths = sorted({Path(p) for pattern in args.files for p in glob.glob(pattern)})
        if not paths:
            parser.error(f"no file matches {args.files}")
    else:
        paths = make_clips(args.workdir, args.clips, seconds=args.seconds, size=args.size)
    cuda = any(getattr(d, "device", torch.device("cpu")).type == "cuda" for d in suite.detectors)
    run_bare(suite, paths[: min(len(paths), args.batch)], batch=args.batch, threads=args.threads)  # warm-up
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    figures = run_bare(suite, paths, batch=args.batch, threads=args.threads)
    out: dict[str, Any] = {"suite": suite.version, "detectors": suite.names, "device": args.device,
                           "clips": len(paths), "batch": args.batch, **{k: round(v, 3) for k, v in figures.items()}}
    if cuda:
        torch.cuda.synchronize()
        out["gpu"] = torch.cuda.get_device_name()
        out["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    print(json.dumps(out))
    print(f"{figures['video_s_per_s']:.1f} video-seconds per wall-second on {args.device} ({len(paths)} files, "
          f"{figures['video_s']:.0f} video-seconds; {', '.join(suite.names)})"
          + (f", peak GPU memory {out['peak_gpu_mib']} MiB" if cuda else ""))
    if args.without:
        if args.without not in suite.names:
            parser.error(f"{args.without} is not in the suite ({', '.join(suite.names)})")
        lighter = Suite.from_settings(settings, names=[n for n in suite.names if n != args.without])
        other = run_bare(lighter, paths, batch=args.batch, threads=args.threads)
        print(f"{other['video_s_per_s']:.1f} video-seconds per wall-second without {args.without}; with it / without: "
              f"{figures['video_s_per_s'] / other['video_s_per_s']:.3f}")


if __name__ == "__main__":
    main()
