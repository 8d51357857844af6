"""When a video's counters are read again: checkpoints at fixed ages, promoted by risk.

A flat "least recently polled first" round cannot keep up at election scale: a week of 50,000 videos a day is
350,000 active videos, and a round of them at polite per-host rates takes weeks. What analysts need is the curve's
shape where it changes: early and often while a video is young, daily once it has settled. So every video has
checkpoints at fixed ages counted from its publication (from when Vigil first saw it when the platform gives no
time), as CrowdTangle's benchmarks did: ``spread_checkpoints_h`` (15 min, 1 h, 5 h, 24 h by default), then every
``spread_daily_h`` hours until ``spread_active_days``. A video whose risk (manipulation score x views per hour) reaches
``spread_promote_risk``, or that an analyst judged ``manipulated`` (they follow its spread), is read at least every
``spread_promote_interval_h`` hours in between.

Each poll writes the video's ``next_poll`` (when the next reading is due), ``poll_deadline`` (when that reading
counts as missed: ``spread_deadline_share`` of the checkpoint's age later, 6 min for the 1 h checkpoint, 30 min for
the 5 h one, at most that share of ``spread_daily_h``) and ``poll_early`` (as much before: a reading that comes free
with a listing read for another video, ``_listing``, takes the checkpoint from then on). A reading inside a
checkpoint's window counts for it, so the next one is the checkpoint after. A refresh reads the videos due now, most
overdue first; the ones past their deadline are the backlog
(``RefreshSummary.overdue``), which the refresh logs and, from ``spread_backlog_alert`` missed readings on, posts
to the alert webhooks.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["PollSchedule", "NextPoll"]


@dataclass(frozen=True)
class NextPoll:
    """The next reading of one video: when it is due, when it counts as missed, and why."""

    due: datetime
    deadline: datetime
    reason: str  # checkpoint | promoted
    early: datetime | None = None  # from when a reading that comes free (a listing read) counts for this one

    def fields(self) -> dict[str, str]:
        """The `vigil-videos` fields."""
        return {"next_poll": self.due.isoformat(), "poll_deadline": self.deadline.isoformat(),
                "poll_early": (self.early or self.due).isoformat()}


@dataclass(frozen=True)
class PollSchedule:
    """Checkpoint ages (hours after publication), then every ``daily_h``; risk promotion. (Which videos are still
    followed at all is ``spread_active_days``: the selection's business.)"""

    checkpoints_h: Sequence[float] = (0.25, 1.0, 5.0, 24.0)
    daily_h: float = 24.0
    promote_risk: float = 100.0
    promote_interval_h: float = 1.0
    deadline_share: float = 0.1

    def __post_init__(self) -> None:
        points = list(self.checkpoints_h)
        if not points or any(b <= a for a, b in zip(points, points[1:])) or points[0] <= 0:
            raise ValueError(f"checkpoints must be positive and increasing: {points}")
        if self.daily_h <= 0 or self.promote_interval_h <= 0 or not 0 <= self.deadline_share < 1:
            raise ValueError("daily_h and promote_interval_h must be positive, deadline_share in [0, 1)")

    @classmethod
    def from_settings(cls, settings: object) -> PollSchedule:
        return cls(checkpoints_h=tuple(settings.spread_checkpoints_h),  # type: ignore[attr-defined]
                   daily_h=settings.spread_daily_h,  # type: ignore[attr-defined]
                   promote_risk=settings.spread_promote_risk,  # type: ignore[attr-defined]
                   promote_interval_h=settings.spread_promote_interval_h,  # type: ignore[attr-defined]
                   deadline_share=settings.spread_deadline_share)  # type: ignore[attr-defined]

    def window_h(self, point_h: float) -> float:
        """How early or late (hours) a reading still counts for the checkpoint at ``point_h``."""
        return self.deadline_share * min(point_h, self.daily_h)

    def checkpoint_after(self, age_h: float) -> float:
        """The first checkpoint age whose window opens strictly after ``age_h`` (hours): a reading inside a
        checkpoint's window counts for that checkpoint."""
        for point in self.checkpoints_h:
            if point - self.window_h(point) > age_h + 1e-9:
                return float(point)
        last = float(self.checkpoints_h[-1])
        lead = self.window_h(last + self.daily_h)
        steps = max(math.floor((age_h + lead - last) / self.daily_h + 1e-9) + 1, 1)
        return last + steps * self.daily_h

    def next_poll(self, polled_at: datetime, born: datetime | None, risk: float | None = None, *,
                  watched: bool = False) -> NextPoll:
        """The reading after one at ``polled_at`` of a video published (or first seen) at ``born``; ``risk`` at or
        above ``promote_risk`` or ``watched`` (an analyst judged it manipulated) promotes it."""
        born = polled_at if born is None or born > polled_at else born
        age_h = (polled_at - born).total_seconds() / 3600.0
        point = self.checkpoint_after(age_h)
        due = born + timedelta(hours=point)
        slack = timedelta(hours=self.window_h(point))
        reason = "checkpoint"
        if watched or (risk is not None and risk >= self.promote_risk):
            promoted = polled_at + timedelta(hours=self.promote_interval_h)
            if promoted < due:
                due, reason = promoted, "promoted"
                slack = timedelta(hours=self.deadline_share * self.promote_interval_h)
        return NextPoll(due=due, deadline=due + slack, reason=reason, early=due - slack)
