"""Trending rank: which relevant videos get the download budget first.

Growth is views per hour since upload. When the channel's usual views per hour are known (from earlier videos in
the index, or from its other videos in this run), growth is weighed by the channel ratio: a video doing 5x its
channel's usual is spreading unusually fast even at modest absolute numbers. Videos without a view counter rank
after those with one, newest first. (The channel ratio ranks downloads only; the stored overperformance is
CrowdTangle's, computed by pipeline.spread from snapshots.)
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from datetime import datetime

from ._candidate import Candidate, utcnow

__all__ = ["growth", "rank_candidates", "MIN_AGE_H", "MIN_BASELINE_SAMPLES"]

MIN_AGE_H = 0.25  # a video minutes old would otherwise get an absurd rate
MIN_BASELINE_SAMPLES = 3
OVERPERFORMANCE_CLAMP = (0.1, 10.0)


def growth(candidate: Candidate, now: datetime | None = None) -> tuple[float | None, float | None]:
    """(age in hours, views per hour) of a candidate; views per hour is None without views or upload time."""
    if candidate.published is None:
        return None, None
    now = now or utcnow()
    age_h = max((now - candidate.published).total_seconds() / 3600.0, 0.0)
    if candidate.views is None:
        return round(age_h, 3), None
    return round(age_h, 3), candidate.views / max(age_h, MIN_AGE_H)


def _baseline_without(candidate: Candidate, candidates: Sequence[Candidate],
                      known: Mapping[str, Sequence[float]]) -> float | None:
    if not candidate.channel_id:
        return None
    rates = list(known.get(candidate.channel_id, ()))
    rates += [c.views_per_hour for c in candidates
              if c is not candidate and c.channel_id == candidate.channel_id and c.views_per_hour is not None]
    if len(rates) < MIN_BASELINE_SAMPLES:
        return None
    return statistics.median(rates)


def rank_candidates(candidates: Sequence[Candidate], *, known_rates: Mapping[str, Sequence[float]] | None = None,
                    now: datetime | None = None) -> list[Candidate]:
    """Set growth fields and ``rank`` on the given candidates; return them fastest-spreading first."""
    now = now or utcnow()
    known = known_rates or {}
    for candidate in candidates:
        candidate.age_h, candidate.views_per_hour = growth(candidate, now)
    for candidate in candidates:
        vph = candidate.views_per_hour
        baseline = _baseline_without(candidate, candidates, known)
        if vph is None:
            candidate.channel_ratio = None
            candidate.rank_score = None
            candidate.rank_reason = "no view counter" if candidate.published else "no view counter or upload time"
            continue
        if baseline and baseline > 0:
            ratio = vph / baseline
            candidate.channel_ratio = round(ratio, 3)
            low, high = OVERPERFORMANCE_CLAMP
            candidate.rank_score = round(vph * math.sqrt(min(max(ratio, low), high)), 3)
            candidate.rank_reason = f"{vph:,.0f} views/h, {ratio:.1f}x the channel's usual {baseline:,.0f}"
        else:
            candidate.channel_ratio = None
            candidate.rank_score = round(vph, 3)
            candidate.rank_reason = f"{vph:,.0f} views/h"

    def key(c: Candidate) -> tuple[int, float, float]:
        published = c.published.timestamp() if c.published else 0.0
        return (0 if c.rank_score is not None else 1, -(c.rank_score or 0.0), -published)

    ordered = sorted(candidates, key=key)
    for position, candidate in enumerate(ordered, start=1):
        candidate.rank = position
    return ordered
