"""Offsets in flight and the commit, the last step of every consumer.

An offset is committed only after its output is durable, and only as part of the contiguous done prefix of its
partition: a later job that finished first waits for the earlier one, so a crash redoes work but never skips it.
"""
from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

from .._observe import timed
from ._steps import Envelope, ProcessingStep

__all__ = ["OffsetTracker", "commit_offsets", "Commit", "describe", "COMMIT_TIMEOUT_MS"]

COMMIT_TIMEOUT_MS = 10_000

logger = logging.getLogger(__name__)


@dataclass
class _PartitionState:
    generation: int
    offsets: OrderedDict[int, bool] = field(default_factory=OrderedDict)  # consumed offset -> done
    committed: int | None = None  # next offset to read, as last committed by us


class OffsetTracker:
    """Offsets handed to the pipeline and not yet committed, per partition.

    ``add`` records an offset when its message enters the pipeline (in consumption order); ``done`` marks it
    durable; ``committable`` yields, per partition, the offset after the longest done prefix (what Kafka expects
    as the committed position). Offsets of a revoked partition are forgotten; a late ``done`` for an older
    assignment (another generation) is ignored, so nothing is ever committed for work this member no longer owns.
    """

    def __init__(self) -> None:
        self._parts: dict[TopicPartition, _PartitionState] = {}
        self._generation = 0

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            if tp not in self._parts:
                self._generation += 1
                self._parts[tp] = _PartitionState(generation=self._generation)

    def revoke(self, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            self._parts.pop(tp, None)

    def generation(self, tp: TopicPartition) -> int | None:
        state = self._parts.get(tp)
        return state.generation if state else None

    def add(self, tp: TopicPartition, offset: int) -> int | None:
        """Track ``offset`` (consumed in order); returns the partition's generation to hand back to ``done``, or
        None for a record this assignment already has (redelivered after the consumer went back to the last
        commit): the caller skips it."""
        state = self._parts.get(tp)
        if state is None:  # consumed before the assignment was applied (manual assignment, tests)
            self.assign([tp])
            state = self._parts[tp]
        if state.committed is not None and offset < state.committed:
            return None
        if state.offsets and offset <= next(reversed(state.offsets)):
            return None
        state.offsets[offset] = False
        return state.generation

    def done(self, tp: TopicPartition, offset: int, generation: int) -> bool:
        """Mark ``offset`` durable; False when it belongs to an assignment this member no longer has."""
        state = self._parts.get(tp)
        if state is None or state.generation != generation or offset not in state.offsets:
            return False
        state.offsets[offset] = True
        return True

    def committable(self) -> dict[TopicPartition, int]:
        """{partition: next offset} for every partition whose done prefix moved past its last commit."""
        out: dict[TopicPartition, int] = {}
        for tp, state in self._parts.items():
            position = None
            for offset, finished in state.offsets.items():
                if not finished:
                    break
                position = offset + 1
            if position is not None and (state.committed is None or position > state.committed):
                out[tp] = position
        return out

    def committed(self, offsets: dict[TopicPartition, int]) -> None:
        """Forget the offsets below each committed position."""
        for tp, position in offsets.items():
            state = self._parts.get(tp)
            if state is None:
                continue
            state.committed = position
            for offset in list(state.offsets):
                if offset >= position:
                    break
                del state.offsets[offset]

    def in_flight(self) -> int:
        """Offsets tracked and not yet committed, over all partitions."""
        return sum(len(state.offsets) for state in self._parts.values())

    def partitions(self) -> list[TopicPartition]:
        return list(self._parts)


def commit_offsets(consumer: Any, tracker: OffsetTracker) -> dict[TopicPartition, int]:
    """Commit the tracker's committable positions synchronously; returns what was committed."""
    from kafka import errors as kafka_errors

    offsets = tracker.committable()
    if not offsets:
        return {}
    try:
        consumer.commit({tp: OffsetAndMetadata(pos, "", -1) for tp, pos in offsets.items()},
                        timeout_ms=COMMIT_TIMEOUT_MS)
    except (kafka_errors.CommitFailedError, kafka_errors.RebalanceInProgressError,
            kafka_errors.IllegalGenerationError, kafka_errors.UnknownMemberIdError) as exc:
        # the group moved on; the new owner redoes what was not committed (writes are idempotent)
        logger.warning("commit of %s refused by the group coordinator: %s", describe(offsets), exc)
        return {}
    except kafka_errors.KafkaError as exc:  # timeout, coordinator moving: the next commit carries these offsets
        logger.warning("commit of %s failed, will be retried: %s", describe(offsets), exc)
        return {}
    tracker.committed(offsets)
    logger.debug("committed %s", offsets)
    return offsets


def describe(partitions: Iterable[TopicPartition]) -> str:
    """``topic[0,1] other[3]`` for log lines; ``none`` when empty."""
    by_topic: dict[str, list[int]] = {}
    for tp in partitions:
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    return " ".join(f"{t}[{','.join(map(str, sorted(p)))}]" for t, p in sorted(by_topic.items())) or "none"


class Commit(ProcessingStep[Envelope]):
    """The last step: mark the offset done; commit each partition's contiguous done prefix (at most every
    ``interval_s``, and at ``join``)."""

    def __init__(self, consumer: Any, tracker: OffsetTracker, *, component: str, interval_s: float = 0.2) -> None:
        self.consumer = consumer
        self.tracker = tracker
        self.component = component
        self.interval_s = interval_s
        self._last = 0.0
        self._dirty = False

    def submit(self, item: Envelope) -> None:
        record = item.record
        if self.tracker.done(record.tp, record.offset, record.generation):
            self._dirty = True
        else:
            logger.info("not committing %s@%d: the partition was reassigned", record.tp, record.offset)

    def poll(self) -> None:
        if self._dirty and time.monotonic() - self._last >= self.interval_s:
            self.commit_now()

    def commit_now(self) -> dict[TopicPartition, int]:
        with timed(self.component, "commit"):
            committed = commit_offsets(self.consumer, self.tracker)
        self._dirty = bool(self.tracker.committable())
        self._last = time.monotonic()
        return committed

    def pending(self) -> int:
        return 1 if self._dirty else 0

    def join(self, timeout: float | None = None) -> None:
        if self._dirty:
            self.commit_now()
