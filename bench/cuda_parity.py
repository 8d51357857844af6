"""The same clips through the suite on the CPU and on a CUDA device: the largest score difference per detector.

A detector whose device step reads results before the GPU finished writing them (an asynchronous copy read too
early), or whose half-precision path drifts, shows here. Exit status 1 when any difference exceeds --tolerance.

    python bench/cuda_parity.py --device cuda --clips 16
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _clips import make_clips  # noqa: E402


def scores(device: str, paths: list[Path], names: list[str] | None, batch: int) -> list[dict[str, Any]]:
    from detectors import Suite
    from pipeline import load_settings

    suite = Suite.from_settings(load_settings(device=device), names=names)
    clips = [suite.prepare(str(p))[0] for p in paths]
    out = []
    for i in range(0, len(clips), batch):
        for result in suite.analyse(clips[i:i + batch]):
            out.append({"fused": result.fused.score,
                        **{n: (r.score, [w.score for w in r.timeline]) for n, r in result.results.items()}})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--detectors", default="")
    parser.add_argument("--tolerance", type=float, default=0.02, help="largest score difference accepted")
    parser.add_argument("--workdir", type=Path, default=Path("bench/out/clips"))
    args = parser.parse_args()
    names = [n for n in args.detectors.split(",") if n] or None
    paths = make_clips(args.workdir, args.clips)
    cpu, dev = scores("cpu", paths, names, args.batch), scores(args.device, paths, names, args.batch)
    worst: dict[str, float] = {}
    for a, b in zip(cpu, dev, strict=True):
        for name in a:
            if name == "fused":
                left, right = [a[name]], [b[name]]
            else:
                left, right = [a[name][0], *a[name][1]], [b[name][0], *b[name][1]]
            diffs = [abs(x - y) for x, y in zip(left, right) if x is not None and y is not None]
            if any((x is None) != (y is None) for x, y in zip(left, right)) or len(left) != len(right):
                diffs.append(1.0)  # applicable on one device and not the other
            worst[name] = max([worst.get(name, 0.0), *diffs])
    print(json.dumps({"device": args.device, "clips": len(paths), "largest_score_difference": worst}))
    largest = max(worst.values(), default=0.0)
    print(f"largest CPU vs {args.device} score difference: {largest:.4g} "
          f"({max(worst, key=worst.get) if worst else '-'}); tolerance {args.tolerance}")
    sys.exit(0 if largest <= args.tolerance else 1)


if __name__ == "__main__":
    main()
