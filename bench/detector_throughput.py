"""Throughput of decode + faces + lipsync + spectral (+ fusion) on generated talking-head clips.

Prints, per stage, milliseconds per clip and frames per second: *source* frames (25 fps video decoded by PyAV)
and *sampled* frames (the suite's 5 fps that reach the face tracker and detectors), plus the real-time factor
(seconds of video per second of wall time). Single process, one clip after another, detectors batched across
all clips at once as a worker would.

    python bench/detector_throughput.py                      # CPU, 8 clips of 256 px and 8 of 512 px
    python bench/detector_throughput.py --device cuda --clips 32
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_clips(directory: Path, n: int, size: int) -> list[Path]:
    from detectors.synthetic import HELDOUT_SENTENCES, make_talking_clip

    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = directory / f"talk{size}_{i:03d}.mp4"
        if not path.exists():
            make_talking_clip(path, HELDOUT_SENTENCES[i % len(HELDOUT_SENTENCES)], offset_ms=(i % 5 - 2) * 100.0,
                              size=size, seed=i)
        paths.append(path)
    return paths


def run(paths: list[Path], device: str, fps: float) -> dict[str, float]:
    import torch

    from detectors import Fusion, LipSync, Spectral, Suite

    torch.set_num_threads(max(1, torch.get_num_threads()))
    suite = Suite([LipSync(device=device), Spectral(device=device)], fusion=Fusion(), fps=fps)
    suite.scan(paths[0])  # warm-up: mediapipe graph, torch kernels
    decode_ms = faces_ms = 0.0
    clips = []
    start = time.perf_counter()
    for path in paths:
        clip, timings = suite.prepare(path)
        decode_ms += timings["decode"]
        faces_ms += timings["faces"]
        clips.append(clip)
    prepared = time.perf_counter()
    results = suite.analyse(clips)
    end = time.perf_counter()
    n_sampled = sum(len(c.frames) for c in clips)
    video_s = sum(c.duration_s for c in clips)
    source_frames = video_s * 25.0
    wall = end - start
    lipsync_ms = sum(r.timings_ms["lipsync"] for r in results)
    spectral_ms = sum(r.timings_ms["spectral"] for r in results)
    return {
        "clips": len(clips), "video_s": round(video_s, 1), "sampled_frames": n_sampled, "wall_s": round(wall, 2),
        "decode_ms_per_clip": round(decode_ms / len(clips), 1), "faces_ms_per_clip": round(faces_ms / len(clips), 1),
        "lipsync_ms_per_clip": round(lipsync_ms / len(clips), 1),
        "spectral_ms_per_clip": round(spectral_ms / len(clips), 1),
        "analyse_s": round(end - prepared, 2),
        "sampled_fps": round(n_sampled / wall, 1), "source_fps": round(source_frames / wall, 1),
        "realtime_factor": round(video_s / wall, 1),
        "faces_sampled_fps": round(n_sampled / (faces_ms / 1000), 1),
        "decode_source_fps": round(source_frames / (decode_ms / 1000), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=8, help="clips per size")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--media", type=Path, default=ROOT / "bench" / "out" / "detector_throughput")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import torch

    report = {}
    print(f"device {args.device}, torch threads {torch.get_num_threads()}, sampling {args.fps:g} fps "
          f"(source video 25 fps)")
    for size in args.sizes:
        stats = run(make_clips(args.media, args.clips, size), args.device, args.fps)
        report[str(size)] = stats
        print(f"{size}x{size}: {stats['clips']} clips, {stats['video_s']} s of video, {stats['sampled_frames']} "
              f"sampled frames in {stats['wall_s']} s")
        print(f"  end to end: {stats['sampled_fps']} sampled frames/s = {stats['source_fps']} source frames/s = "
              f"{stats['realtime_factor']}x real time")
        print(f"  per clip: decode {stats['decode_ms_per_clip']} ms ({stats['decode_source_fps']} source frames/s),"
              f" faces {stats['faces_ms_per_clip']} ms ({stats['faces_sampled_fps']} sampled frames/s), "
              f"lipsync {stats['lipsync_ms_per_clip']} ms, spectral {stats['spectral_ms_per_clip']} ms")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
