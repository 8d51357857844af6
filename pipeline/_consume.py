"""Pieces shared by the Kafka consumers that write somewhere (the worker, the sink), in the arroyo style.

A processing step has five methods: ``submit`` (take one item; raise MessageRejected when full), ``poll`` (move
finished work on, never blocks), ``join(timeout)`` (finish what was submitted), ``close`` and ``terminate``. Steps
chain through ``next_step``. Offsets travel with the payload and the commit is the last step: an offset is
committed only after its output is durable, and only as part of the contiguous done prefix of its partition.
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from kafka import TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.structs import OffsetAndMetadata

from ._observe import CONSUMER_LAG

__all__ = ["MessageRejected", "ProcessingStep", "OffsetTracker", "Backoff", "Record", "commit_offsets", "describe",
           "RebalanceEvents", "GroupWatchdog", "GroupMember", "COMMIT_TIMEOUT_MS", "LAG_INTERVAL_S"]

COMMIT_TIMEOUT_MS = 10_000
LAG_INTERVAL_S = 5.0  # how often a group member refreshes its consumer-lag gauges

logger = logging.getLogger(__name__)

T = TypeVar("T")


class MessageRejected(Exception):  # noqa: N818 - arroyo's name for backpressure
    """A step is full: the caller keeps the item, pauses the consumer and offers it again later."""


class ProcessingStep(ABC, Generic[T]):
    """One step of a consumer's pipeline."""

    @abstractmethod
    def submit(self, item: T) -> None:
        """Take one item, or raise MessageRejected when full (never blocks)."""

    @abstractmethod
    def poll(self) -> None:
        """Move finished work to the next step; never blocks."""

    @abstractmethod
    def pending(self) -> int:
        """Items submitted here and not yet handed to the next step."""

    def join(self, timeout: float | None = None) -> None:
        """Finish submitted work, waiting at most ``timeout`` seconds (None: as long as it takes)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.pending() and (deadline is None or time.monotonic() < deadline):
            self.poll()
            time.sleep(0.01)

    def close(self) -> None:
        """No more submits; release resources after join."""

    def terminate(self) -> None:
        """Stop now, dropping unfinished work (it is not committed, so it is redelivered)."""
        self.close()


@dataclass
class Record:
    """A consumed Kafka message and where it came from; ``generation`` ties it to one assignment of its partition."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    generation: int = 0
    timestamp_ms: int | None = None

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)

    @classmethod
    def from_consumer(cls, message: Any) -> Record:
        return cls(topic=message.topic, partition=message.partition, offset=message.offset, key=message.key,
                   value=message.value if message.value is not None else b"", timestamp_ms=message.timestamp)


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


@dataclass
class Backoff:
    """Exponential backoff: ``delay(attempt)`` for attempt 1, 2, … doubles from ``initial`` up to ``maximum``."""

    initial: float = 0.5
    maximum: float = 30.0

    def delay(self, attempt: int) -> float:
        return min(self.maximum, self.initial * (2 ** max(0, attempt - 1)))


def describe(partitions: Iterable[TopicPartition]) -> str:
    """``topic[0,1] other[3]`` for log lines; ``none`` when empty."""
    by_topic: dict[str, list[int]] = {}
    for tp in partitions:
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    return " ".join(f"{t}[{','.join(map(str, sorted(p)))}]" for t, p in sorted(by_topic.items())) or "none"


class RebalanceEvents(ConsumerRebalanceListener):
    """Records assignment changes for the consumer's own thread to apply.

    kafka-python 3 calls a rebalance listener from its network thread, not from the thread calling ``poll``: a
    listener that commits (a blocking round trip on that very thread) or changes the consumer's working state
    there races the main loop or stalls the group. So this one only queues the change; the main loop applies it
    with ``drain`` before it handles the records of its next poll.
    """

    def __init__(self) -> None:
        self._events: deque[tuple[str, set[TopicPartition]]] = deque()

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self._events.append(("revoked", set(revoked)))

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._events.append(("assigned", set(assigned)))

    def drain(self) -> list[tuple[str, set[TopicPartition]]]:
        out = []
        while self._events:
            out.append(self._events.popleft())
        return out


class GroupWatchdog:
    """Notices a consumer that has not been a stable group member for ``limit_s`` seconds.

    kafka-python 3.0.12 can stall in a rebalance that a metadata change interrupts (seen with a topic created just
    before the first join): the member stops heartbeating, the broker drops it, and it never joins again. The
    loop that owns the consumer asks ``stalled()`` and, when true, builds a new consumer; nothing is lost, as
    uncommitted work is simply consumed again.
    """

    def __init__(self, consumer: Any, limit_s: float) -> None:
        self.limit_s = limit_s
        self.reset(consumer)

    def reset(self, consumer: Any) -> None:
        self.consumer = consumer
        self._since = time.monotonic()

    def stalled(self) -> bool:
        coordinator = getattr(self.consumer, "_coordinator", None)
        stable = getattr(coordinator, "stable", None)
        if stable is None or stable():
            self._since = time.monotonic()
            return False
        return time.monotonic() - self._since > self.limit_s


class GroupMember(ABC):
    """What the worker and the sink share as consumer-group members: the consumer's lifecycle on one thread.

    Subclasses set ``settings``, ``component`` (metric label), ``topic``, ``consumer`` and ``tracker``, call
    ``_init_member()``, and implement ``_new_consumer``, ``_on_assigned``, ``_on_revoked`` and
    ``_forget_uncommitted`` (what to drop when a stuck consumer is replaced).
    """

    settings: Any
    component: str
    topic: str
    consumer: Any
    tracker: OffsetTracker

    def _init_member(self, session_timeout_ms: int) -> None:
        self._watchdog = GroupWatchdog(self.consumer, max(30.0, 3 * session_timeout_ms / 1000))
        self._rebalance = RebalanceEvents()
        self._stop = threading.Event()
        self._last_lag = 0.0

    @abstractmethod
    def _new_consumer(self) -> Any:
        """A fresh consumer for this member's group (not yet subscribed)."""

    @abstractmethod
    def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        """Partitions this member now owns (applied on the consumer's own thread)."""

    @abstractmethod
    def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        """Partitions taken away: forget their uncommitted work (no commit: the group is already rebalancing)."""

    @abstractmethod
    def _forget_uncommitted(self) -> None:
        """Drop work not yet committed; called when the consumer is replaced (it is consumed again)."""

    # -- lifecycle
    def stop(self, *_: Any) -> None:
        """Stop taking new work; ``run`` finishes what is in flight and returns (signal-handler safe)."""
        self._stop.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def _subscribe(self) -> None:
        self.consumer.subscribe([self.topic], listener=self._rebalance)

    def _replace_consumer(self) -> None:
        """A new group member for one stuck in a rebalance (see GroupWatchdog); uncommitted work is redone."""
        logger.warning("%s: not a stable group member for %.0fs; replacing the consumer", self.component,
                       self._watchdog.limit_s)
        self.tracker.revoke(self.tracker.partitions())
        self._forget_uncommitted()
        try:
            self.consumer.close(autocommit=False, timeout_ms=5000)
        except Exception as exc:  # noqa: BLE001 - it is being replaced because it misbehaves
            logger.warning("%s: closing the stuck consumer failed: %s", self.component, exc)
        self.consumer = self._new_consumer()
        self._rebalance = RebalanceEvents()
        self._subscribe()
        self._watchdog.reset(self.consumer)

    # -- the loop's helpers
    def _check_watchdog(self) -> None:
        if self._watchdog.stalled():
            self._replace_consumer()

    def _set_paused(self, paused: bool) -> None:
        assigned = self.consumer.assignment()
        if not assigned:
            return
        if paused:
            self.consumer.pause(*assigned)
        elif self.consumer.paused():
            self.consumer.resume(*assigned)

    def _apply_rebalance(self) -> None:
        """Apply the assignment changes the listener queued (before handling the records of the next poll)."""
        for kind, partitions in self._rebalance.drain():
            if kind == "assigned":
                logger.info("%s: partitions assigned: %s", self.component, describe(partitions))
                self.tracker.assign(partitions)
                self._on_assigned(partitions)
            else:
                logger.info("%s: partitions revoked: %s", self.component, describe(partitions))
                self.tracker.revoke(partitions)
                self._on_revoked(partitions)

    def _report_lag(self) -> None:
        now = time.monotonic()
        if now - self._last_lag < LAG_INTERVAL_S:
            return
        self._last_lag = now
        for tp in self.consumer.assignment():
            high = self.consumer.highwater(tp)
            if high is None:
                continue
            try:
                position = self.consumer.position(tp, timeout_ms=100)
            except Exception:  # noqa: BLE001 - a metric is not worth failing for
                continue
            if position is not None:
                CONSUMER_LAG.labels(self.component, tp.topic, str(tp.partition)).set(max(0, high - position))
