"""Exponential backoff with jitter, for every retry of a consumer (sends, bulk requests, device steps)."""
from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass
class Backoff:
    """``delay(attempt)`` for attempt 1, 2, …: doubles from ``initial`` up to ``maximum``; with ``jitter`` > 0 a
    random part of up to that fraction is taken off, so many clients that failed together do not retry together."""

    initial: float = 0.5
    maximum: float = 30.0
    jitter: float = 0.0
    _random: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def delay(self, attempt: int) -> float:
        base = min(self.maximum, self.initial * (2 ** max(0, attempt - 1)))
        if self.jitter <= 0:
            return base
        return base * (1.0 - self.jitter * self._random.random())
