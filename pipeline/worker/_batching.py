"""When a batch of decoded videos goes to the device: full, waited long enough, or flushing at shutdown."""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BatchPolicy"]


@dataclass(frozen=True)
class BatchPolicy:
    """``max_size`` videos per device step; a partial batch leaves once its oldest video waited ``max_wait_s``.

    At most ``max_size * buffer_batches`` decoded videos wait in memory; beyond that the step rejects (backpressure).
    """

    max_size: int = 8
    max_wait_s: float = 0.5
    buffer_batches: int = 2

    def __post_init__(self) -> None:
        if self.max_size < 1:
            raise ValueError("max_size must be at least 1")
        if self.max_wait_s < 0:
            raise ValueError("max_wait_s must not be negative")

    @property
    def capacity(self) -> int:
        return self.max_size * max(1, self.buffer_batches)

    def ready(self, waiting: int, oldest_age_s: float, *, flushing: bool = False) -> bool:
        """Should a batch leave now, given how many wait and how long the oldest has waited?"""
        if waiting <= 0:
            return False
        return flushing or waiting >= self.max_size or oldest_age_s >= self.max_wait_s

    def take(self, waiting: int) -> int:
        """How many of the waiting videos the next batch takes."""
        return min(waiting, self.max_size)

    def full(self, waiting: int) -> bool:
        return waiting >= self.capacity
