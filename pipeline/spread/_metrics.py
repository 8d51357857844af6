"""Spread metrics from counter snapshots: pure functions, no I/O.

Definitions (ages and times in hours; a video's upload is a virtual snapshot with 0 views):

- **views per hour** (velocity): views gained between the two latest snapshots that have a view counter, divided by
  the hours between them. With a single snapshot, the interval is upload → snapshot (views ÷ age).
- **acceleration**: change of velocity between the last two intervals, divided by the hours between the intervals'
  midpoints (views per hour per hour). Needs two intervals: two snapshots, or one snapshot and the upload time.
- **engagement rate**: (likes + comments) ÷ views of the latest snapshot; unknown when any of them is withheld.
- **overperformance** (CrowdTangle's manner): views at age *t* ÷ the views the channel's videos usually have at age
  *t*. Each of the channel's other recent videos gives its views at age *t* by linear interpolation between its
  snapshots (never extrapolated: a video not yet observed at age *t* does not count); the expected value is the mean
  of the middle half of those values (the lowest and highest quarter, ⌊n/4⌋ each, are dropped). At least
  ``min_videos`` such values are needed, otherwise the ratio is unknown.
- **risk**: manipulation score × views per hour, i.e. the manipulated views a video is expected to gain per hour.

Counters a platform withholds are None throughout, never 0; a metric that needs one is None.
"""
from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

__all__ = ["Snapshot", "SpreadMetrics", "compute_metrics", "views_at_age", "expected_views", "trimmed_mean",
           "risk_of", "engagement_rate", "overperformance", "MIN_INTERVAL_H", "COUNTERS"]

#: snapshots closer together than this are too noisy for a velocity: the older one is skipped
MIN_INTERVAL_H = 1 / 60
COUNTERS = ("views", "likes", "comments", "reposts")


@dataclass(frozen=True)
class Snapshot:
    """Public counters of one video at one moment; None = the platform withheld it."""

    at: datetime
    views: int | None = None
    likes: int | None = None
    comments: int | None = None
    reposts: int | None = None

    @property
    def missing(self) -> list[str]:
        return [name for name in COUNTERS if getattr(self, name) is None]


@dataclass(frozen=True)
class SpreadMetrics:
    """What is derived from a video's snapshots at its latest one."""

    age_h: float | None
    views_per_hour: float | None
    acceleration: float | None
    engagement_rate: float | None
    overperformance: float | None = None
    expected_views: float | None = None

    def as_fields(self) -> dict[str, float | None]:
        return {"age_h": _round(self.age_h), "views_per_hour": _round(self.views_per_hour),
                "acceleration": _round(self.acceleration), "engagement_rate": _round(self.engagement_rate, 6),
                "overperformance": _round(self.overperformance)}


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _hours(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds() / 3600.0


def engagement_rate(snapshot: Snapshot) -> float | None:
    """(likes + comments) ÷ views; None when a counter is withheld or there are no views."""
    if not snapshot.views or snapshot.likes is None or snapshot.comments is None:
        return None
    return (snapshot.likes + snapshot.comments) / snapshot.views


def _view_points(snapshots: Sequence[Snapshot], published: datetime | None) -> list[tuple[datetime, int]]:
    """(time, views) of snapshots with views, oldest first, at least MIN_INTERVAL_H apart; the upload as (t0, 0)."""
    points: list[tuple[datetime, int]] = []
    if published is not None:
        points.append((published, 0))
    for snap in sorted(snapshots, key=lambda s: s.at):
        if snap.views is None or (published is not None and snap.at < published):
            continue
        if points and _hours(snap.at, points[-1][0]) < MIN_INTERVAL_H:
            if len(points) == 1 and published is not None:
                continue  # moments after the upload: nothing to measure yet
            points[-1] = (snap.at, snap.views)  # keep the newer of two near-simultaneous snapshots
            continue
        points.append((snap.at, snap.views))
    return points


def compute_metrics(snapshots: Sequence[Snapshot], published: datetime | None) -> SpreadMetrics:
    """Age, velocity, acceleration and engagement at the latest snapshot (overperformance is set by the caller)."""
    if not snapshots:
        return SpreadMetrics(None, None, None, None)
    latest = max(snapshots, key=lambda s: s.at)
    age_h = max(_hours(latest.at, published), 0.0) if published is not None else None
    points = _view_points(snapshots, published)
    velocity = acceleration = None
    if latest.views is not None and len(points) >= 2:
        (t1, v1), (t2, v2) = points[-2], points[-1]
        velocity = (v2 - v1) / _hours(t2, t1)
        if len(points) >= 3:
            t0, v0 = points[-3]
            previous = (v1 - v0) / _hours(t1, t0)
            acceleration = (velocity - previous) / (_hours(t2, t0) / 2)
    return SpreadMetrics(age_h=age_h, views_per_hour=velocity, acceleration=acceleration,
                         engagement_rate=engagement_rate(latest))


def views_at_age(points: Sequence[tuple[float, int]], age_h: float) -> float | None:
    """Views at ``age_h`` by linear interpolation over (age, views) points, with (0, 0) implied; None beyond them."""
    pts = sorted({(0.0, 0), *((a, v) for a, v in points if a is not None and v is not None and a >= 0)})
    ages = [a for a, _ in pts]
    if age_h < 0 or age_h > ages[-1]:
        return None
    i = bisect_left(ages, age_h)
    if ages[i] == age_h:
        return float(pts[i][1])
    (a0, v0), (a1, v1) = pts[i - 1], pts[i]
    return v0 + (v1 - v0) * (age_h - a0) / (a1 - a0)


def trimmed_mean(values: Iterable[float]) -> float:
    """Mean of the middle half: the lowest and highest ⌊n/4⌋ values are dropped."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    k = len(ordered) // 4
    middle = ordered[k:len(ordered) - k]
    return math.fsum(middle) / len(middle)


def expected_views(channel_histories: Iterable[Sequence[tuple[float, int]]], age_h: float,
                   *, min_videos: int = 3) -> float | None:
    """The channel's usual views at ``age_h`` from its other videos' (age, views) histories, or None."""
    values = [v for history in channel_histories if (v := views_at_age(history, age_h)) is not None]
    if len(values) < min_videos:
        return None
    return trimmed_mean(values)


def overperformance(views: int | None, expected: float | None) -> float | None:
    """actual ÷ expected; None when either is unknown or nothing was expected."""
    if views is None or expected is None or expected <= 0:
        return None
    return views / expected


def risk_of(score: float | None, views_per_hour: float | None) -> float | None:
    """manipulation score × views per hour (negative growth counts as none)."""
    if score is None or views_per_hour is None:
        return None
    return round(score * max(views_per_hour, 0.0), 3)
