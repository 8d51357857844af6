"""The vectorised distances equal the one-pair definition for every length mix, with numpy's own popcount and with
the SWAR count used on numpy 1.26; clustering by them keeps existing groups and merges what a new video bridges."""
from __future__ import annotations

import random

import numpy as np
import pytest

from pipeline.spread import Member, assign_clusters, cluster_id_of, phash_distance
from pipeline.spread import _phash
from pipeline.spread._phash import hash_matrix, phash_distances


@pytest.mark.parametrize("swar", [False, True])
def test_distances_match_the_definition(monkeypatch: pytest.MonkeyPatch, swar: bool) -> None:
    if swar:
        monkeypatch.delattr(np, "bitwise_count", raising=False)
    rng = random.Random(3)
    for la, lb in ((8, 8), (8, 5), (5, 8), (1, 8), (8, 1), (3, 3)):
        a = [rng.getrandbits(64) for _ in range(la)]
        rows = [[a[min(i, la - 1)] ^ (1 << rng.randrange(64)) if rng.random() < 0.6 else rng.getrandbits(64)
                 for i in range(lb)] for _ in range(40)]
        assert np.allclose(phash_distances(a, hash_matrix(rows)), [phash_distance(a, r) for r in rows])
    hexes = [[f"{rng.getrandbits(64):016x}" for _ in range(8)] for _ in range(5)]
    assert np.array_equal(hash_matrix(hexes), np.array([_phash.hex_to_ints(h) for h in hexes], dtype=np.uint64))
    assert phash_distances([1], hash_matrix([])).size == 0


def test_new_video_bridges_two_clusters() -> None:
    rng = random.Random(5)
    base_a = [f"{rng.getrandbits(64):016x}" for _ in range(8)]
    base_b = [f"{rng.getrandbits(64):016x}" for _ in range(8)]
    bridge = base_a[:4] + base_b[4:]  # not a re-upload of either: far from both (about 16 bits off each)
    members = [Member("a:1", base_a, cluster_id=cluster_id_of("a:1"), first_seen="2026-01-01T00:00:00"),
               Member("a:2", base_a, cluster_id=cluster_id_of("a:1"), first_seen="2026-01-02T00:00:00"),
               Member("b:1", base_b, cluster_id=cluster_id_of("b:1"), first_seen="2026-01-03T00:00:00"),
               Member("n:1", bridge, first_seen="2026-02-01T00:00:00", new=True),
               Member("n:2", list(base_b), first_seen="2026-02-02T00:00:00", new=True)]
    clusters = assign_clusters(members, threshold=10)
    assert [m.uid for m in clusters[cluster_id_of("a:1")]] == ["a:1", "a:2"]
    assert [m.uid for m in clusters[cluster_id_of("b:1")]] == ["b:1", "n:2"]
    assert [m.uid for m in clusters[cluster_id_of("n:1")]] == ["n:1"]
