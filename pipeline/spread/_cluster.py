"""Re-upload clusters: videos whose perceptual hashes are within a threshold belong together, across platforms and
accounts. Pure functions; the cycle loads the members and writes the result.

- Membership: single linkage. A newly hashed video joins every cluster one of whose members is within
  ``threshold`` bits (`phash_distance`, computed against all stored videos at once by `phash_distances`); clusters
  it bridges merge. Existing members keep their grouping.
- Identity: ``c-`` + 16 hex digits of sha1(uid of the member Vigil saw first). Every video has one; a video without
  a hash is a cluster of one. The id stays put as copies join, since they are seen later.
- Stats, written to each member as ``cluster.*``: ``size``; ``reach`` (summed latest views; withheld counters add
  nothing, all withheld = unknown); ``first_seen`` (earliest first sighting); ``first_uploader`` (channel of the
  earliest upload); ``max_score`` (highest manipulation score among members); ``original`` (true for the earliest
  upload, false for the re-uploads).
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ._phash import hash_matrix, hex_to_ints, phash_distances
from .._time import parse_moment

__all__ = ["Member", "cluster_id_of", "assign_clusters", "cluster_stats"]

FAR_FUTURE = "9999"


def cluster_id_of(uid: str) -> str:
    """The cluster id a video founds: ``c-`` + 16 hex digits of sha1(uid)."""
    return "c-" + hashlib.sha1(uid.encode("utf-8")).hexdigest()[:16]


@dataclass
class Member:
    """What clustering needs to know of one video."""

    uid: str
    hashes: list[str] | None = None
    cluster_id: str | None = None
    first_seen: str | None = None  # ISO 8601, as stored
    published: str | None = None
    uploader: str | None = None
    views: int | None = None
    score: float | None = None
    new: bool = False  # hashed in this cycle: compare against everyone
    _ints: list[int] = field(default_factory=list, repr=False)

    def ints(self) -> list[int]:
        if not self._ints and self.hashes:
            self._ints = hex_to_ints(self.hashes)
        return self._ints


def _seen_key(m: Member) -> tuple[str, str]:
    return (_norm(m.first_seen) or FAR_FUTURE, m.uid)


def _upload_key(m: Member) -> tuple[str, str, str]:
    return (_norm(m.published) or _norm(m.first_seen) or FAR_FUTURE, _norm(m.first_seen) or FAR_FUTURE, m.uid)


def _norm(moment: str | datetime | None) -> str | None:
    """ISO text comparable as a string (UTC offsets normalised by parsing)."""
    if moment is None:
        return None
    if isinstance(moment, str):
        return _norm_text(moment)
    return _norm_moment(moment)


@lru_cache(maxsize=200_000)
def _norm_text(moment: str) -> str:
    return _norm_moment(moment)


def _norm_moment(moment: str | datetime) -> str:
    if isinstance(moment, str):
        try:
            moment = parse_moment(moment)  # type: ignore[assignment]
        except ValueError:
            return moment
    if moment.tzinfo is not None:
        from datetime import UTC

        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat()


class _Groups:
    def __init__(self, uids: Iterable[str]) -> None:
        self.parent = {u: u for u in uids}

    def find(self, u: str) -> str:
        while self.parent[u] != u:
            self.parent[u] = self.parent[self.parent[u]]
            u = self.parent[u]
        return u

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra


def assign_clusters(members: Sequence[Member], threshold: float) -> dict[str, list[Member]]:
    """{cluster id: members} after new members joined; see the module docstring.

    Existing clusters are kept as groups (one dict pass, no per-member union); only what a new member matches is
    merged, so the cost past the distances is a few dictionary operations per stored video."""
    keys: list[str] = []
    for m in members:  # existing grouping is kept
        keys.append("c:" + m.cluster_id if m.cluster_id and not m.new else "u:" + m.uid)
    groups = _Groups(set(keys))
    # one matrix of frame hashes per sequence length; each new member is compared with all of them at once
    by_length: dict[int, list[int]] = {}
    for i, m in enumerate(members):
        if m.hashes:
            by_length.setdefault(len(m.hashes), []).append(i)
    matrices: dict[int, Any] = {}
    for i, m in enumerate(members):
        if not (m.new and m.hashes):
            continue
        for length, indices in by_length.items():
            if length not in matrices:
                matrices[length] = hash_matrix([members[k].hashes or [] for k in indices])
            for k in (phash_distances(m.ints(), matrices[length]) <= threshold).nonzero()[0]:
                other = indices[int(k)]
                if other != i:
                    groups.union(keys[i], keys[other])
    touched = {groups.find(keys[i]) for i, m in enumerate(members) if m.new}
    roots: dict[str, list[Member]] = {}
    for key, m in zip(keys, members, strict=True):
        roots.setdefault(groups.find(key), []).append(m)
    out: dict[str, list[Member]] = {}
    for root, group in roots.items():
        if root.startswith("c:") and root not in touched:  # a stored cluster nothing new joined: id and order stay
            out[root[2:]] = group
            continue
        ordered = sorted(group, key=_seen_key) if len(group) > 1 else group
        out[cluster_id_of(ordered[0].uid)] = ordered
    return out


def cluster_stats(cluster_id: str, members: Sequence[Member]) -> dict[str, dict[str, Any]]:
    """{uid: the ``cluster`` object of its document} for one cluster's members."""
    views = [m.views for m in members if m.views is not None]
    scores = [m.score for m in members if m.score is not None]
    first_seen = min((m for m in members if m.first_seen), key=_seen_key, default=None)
    original = min(members, key=_upload_key)
    common = {
        "id": cluster_id,
        "size": len(members),
        "reach": sum(views) if views else None,
        "first_seen": first_seen.first_seen if first_seen else None,
        "first_uploader": original.uploader,
        "max_score": max(scores) if scores else None,
    }
    return {m.uid: {**common, "original": m is original} for m in members}
