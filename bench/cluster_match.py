"""Re-upload clustering at scale: one newly hashed video matched against N stored hashed videos (default 100,000),
as `pipeline.spread.assign_clusters` does in every spread refresh. Goal: under 1 s for 100,000 on this machine.

Stored videos get random 8-frame pHash sequences (unrelated videos sit near 32 bits apart, like real ones), grouped
into clusters as a real index would be; the new video is a copy of one stored video with a few bits flipped per
frame (a re-encode). Reports the time of the vectorised distances alone, of the whole `assign_clusters` (existing
grouping, matching, cluster ids), and the memory they take (tracemalloc peak, process RSS). No servers needed.

    python bench/cluster_match.py [--stored 100000] [--repeat 3] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_members(stored: int, frames: int, seed: int = 1) -> tuple[list, str]:
    """``stored`` existing members (clusters of 1–3) plus one new re-upload of a random one; returns its target."""
    from pipeline.spread import Member, cluster_id_of

    rng = random.Random(seed)
    members = []
    for i in range(stored):
        base = i - (i % 3) if rng.random() < 0.3 else i  # some stored videos already share a cluster
        members.append(Member(uid=f"p:{i}", hashes=[f"{rng.getrandbits(64):016x}" for _ in range(frames)],
                              cluster_id=cluster_id_of(f"p:{base}"), first_seen=f"2026-01-01T00:00:{i % 60:02d}",
                              views=rng.randint(0, 10_000)))
    target = members[rng.randrange(stored // 10)]  # an old one
    hashes = [f"{int(h, 16) ^ (1 << rng.randrange(64)) ^ (1 << rng.randrange(64)):016x}" for h in target.hashes]
    members.append(Member(uid="p:new", hashes=hashes, first_seen="2026-12-01T00:00:00", new=True))
    return members, target.cluster_id or ""


def main(argv: list[str] | None = None) -> int:
    from pipeline.spread import assign_clusters
    from pipeline.spread._phash import hash_matrix, phash_distances

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stored", type=int, default=100_000)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--threshold", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    members, target_cluster = make_members(args.stored, args.frames)
    new = members[-1]
    matrix = hash_matrix([m.hashes for m in members[:-1]])
    distance_s, assign_s = [], []
    for _ in range(args.repeat):
        t = time.perf_counter()
        phash_distances(new.ints(), matrix)
        distance_s.append(time.perf_counter() - t)
    for _ in range(args.repeat):
        t = time.perf_counter()
        clusters = assign_clusters(members, args.threshold)
        assign_s.append(time.perf_counter() - t)
    joined = next(cid for cid, group in clusters.items() if any(m.uid == "p:new" for m in group))
    tracemalloc.start()
    assign_clusters(members, args.threshold)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    result = {
        "stored": args.stored, "frames": args.frames,
        "distances_s": round(min(distance_s), 4), "assign_clusters_s": round(min(assign_s), 3),
        "assign_peak_mb": round(peak / 2**20, 1), "matrix_mb": round(matrix.nbytes / 2**20, 1),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "joined_its_cluster": joined == target_cluster, "goal_s": 1.0,
    }
    print(f"one new video against {args.stored:,} stored ({args.frames} frames each): distances "
          f"{result['distances_s'] * 1000:.0f} ms, whole assign_clusters {result['assign_clusters_s']:.2f} s "
          f"(goal < 1 s); assign peak {result['assign_peak_mb']} MB, hash matrix {result['matrix_mb']} MB, "
          f"process max RSS {result['max_rss_mb']} MB; re-upload joined its cluster: {result['joined_its_cluster']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if result["joined_its_cluster"] else 1


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
