"""A consumer-group member: the consumer's lifecycle on one thread, shared by the worker and the sink.

    poll ─▶ apply rebalance ─▶ offer records to the first step ─▶ poll every step ─▶ (commit is the last step)
      ▲                                 │ MessageRejected: hold the record, pause the partitions
      └─────────────────────────────────┘

The main thread never stops calling ``poll``: while a step is full the assigned partitions are paused instead, so a
long device batch or an Elasticsearch outage never exceeds ``max.poll.interval.ms``. SIGTERM (or SIGINT) stops
taking new messages; the steps are joined in chain order within the shutdown timeout, what did not finish is
terminated (uncommitted, so it is redelivered) and what is durable is committed.
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from typing import Any

from kafka import TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener

from .._kafka import subscribe
from .._observe import CONSUMER_LAG
from ._offsets import Commit, OffsetTracker, describe
from ._steps import Envelope, MessageRejected, ProcessingStep, Record

__all__ = ["RebalanceEvents", "GroupWatchdog", "GroupMember", "LAG_INTERVAL_S"]

LAG_INTERVAL_S = 5.0  # how often a group member refreshes its consumer-lag gauges

logger = logging.getLogger(__name__)


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
    before the first join, and under load in the second join every new member made before ``subscribe`` waited for
    the topic's metadata first): the member stops heartbeating, the broker drops it, and it never joins again. The
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
    """A consumer-group member running a chain of steps. Subclasses set ``component`` and, in their ``__init__``,
    call ``_init_member`` and then ``_set_chain(entry, steps, commit)`` with the steps in chain order (the dead
    letters just before the commit); they implement ``_new_consumer`` and ``_envelope``."""

    component: str
    settings: Any
    topic: str
    consumer: Any
    producer: Any

    def _init_member(self, *, topic: str, consumer: Any, session_timeout_ms: int,
                     shutdown_timeout_s: float) -> None:
        self.topic = topic
        self.tracker = OffsetTracker()
        self.consumer = consumer if consumer is not None else self._new_consumer()
        self.shutdown_timeout_s = shutdown_timeout_s
        self._watchdog = GroupWatchdog(self.consumer, max(30.0, 3 * session_timeout_ms / 1000))
        self._rebalance = RebalanceEvents()
        self._stop = threading.Event()
        self._last_lag = 0.0
        self._held: deque[Record] = deque()
        self.entry: ProcessingStep[Any] | None = None
        self.steps: tuple[ProcessingStep[Any], ...] = ()
        self.commit: Commit | None = None

    def _set_chain(self, entry: ProcessingStep[Any], steps: tuple[ProcessingStep[Any], ...], commit: Commit) -> None:
        if not steps or steps[-1] is not commit:
            raise ValueError("the commit must be the last step")
        self.entry, self.steps, self.commit = entry, steps, commit

    @abstractmethod
    def _new_consumer(self) -> Any:
        """A fresh consumer for this member's group (not yet subscribed)."""

    @abstractmethod
    def _envelope(self, record: Record) -> Envelope:
        """The envelope the first step takes for one record."""

    def _close_resources(self) -> None:
        """Close what the subclass holds besides the consumer and producer (called last at shutdown)."""

    # -- lifecycle
    def stop(self, *_: Any) -> None:
        """Stop taking new work; ``run`` finishes what is in flight and returns (signal-handler safe)."""
        self._stop.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def run(self, *, max_seconds: float | None = None) -> None:
        """Consume until ``stop`` (or ``max_seconds``), then shut down cleanly."""
        self._subscribe()
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        try:
            while not self._stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                self._tick()
        finally:
            self._shutdown()

    def busy(self) -> int:
        """Messages inside the chain (submitted, not yet committed)."""
        return sum(step.pending() for step in self.steps[:-1])

    def _subscribe(self) -> None:
        subscribe(self.consumer, [self.topic], listener=self._rebalance,
                  timeout_ms=self.settings.kafka_request_timeout_ms)

    # -- the loop
    def _tick(self) -> None:
        self._check_watchdog()
        self._set_paused(bool(self._held))
        timeout_ms = 20 if (self.busy() or self._held) else 200
        got = self.consumer.poll(timeout_ms=timeout_ms)
        self._apply_rebalance()  # before the records: they may belong to the new assignment
        for records in got.values():
            self._held.extend(Record.from_consumer(r) for r in records)
        self._offer()
        for step in self.steps:
            step.poll()
        self._offer()
        self._report_lag()

    def _offer(self) -> None:
        assert self.entry is not None
        while self._held:
            record = self._held[0]
            if not record.generation:
                generation = self.tracker.add(record.tp, record.offset)
                if generation is None:  # redelivered after a rebalance; this assignment has it already
                    self._held.popleft()
                    continue
                record.generation = generation
            try:
                self.entry.submit(self._envelope(record))
            except MessageRejected:
                self._set_paused(True)
                return
            self._held.popleft()

    def _shutdown(self) -> None:
        logger.info("%s: stopping; %d in flight, %d not started (handed back)", self.component, self.busy(),
                    len(self._held))
        self._held.clear()
        deadline = time.monotonic() + self.shutdown_timeout_s
        try:
            # every step is joined a slice at a time, in chain order, while the consumer keeps heartbeating on
            # paused partitions: a step waiting on a full downstream step is never stuck behind it
            while True:
                for step in self.steps:
                    step.join(0)
                if not self.busy() or time.monotonic() >= deadline:
                    break
                self._set_paused(True)
                self.consumer.poll(timeout_ms=20)  # nothing is returned from paused partitions
                self._apply_rebalance()
            left = self.busy()
            if left:
                logger.warning("%s: %d unfinished at shutdown; not committed, they will be redone", self.component,
                               left)
                for step in self.steps[:-1]:
                    if step.pending():
                        step.terminate()
            assert self.commit is not None
            self.commit.commit_now()
        finally:
            for step in self.steps:
                step.close()
            try:
                self.consumer.close(autocommit=False)
            finally:
                try:
                    self.producer.close(timeout=10)
                finally:
                    self._close_resources()
        logger.info("%s: closed", self.component)

    def _replace_consumer(self) -> None:
        """A new group member for one stuck in a rebalance (see GroupWatchdog); uncommitted work is redone."""
        logger.warning("%s: not a stable group member for %.0fs; replacing the consumer", self.component,
                       self._watchdog.limit_s)
        self._forget_lag(self.tracker.partitions())
        self.tracker.revoke(self.tracker.partitions())
        self._held.clear()
        try:
            self.consumer.close(autocommit=False, timeout_ms=5000)
        except Exception as exc:  # noqa: BLE001 - it is being replaced because it misbehaves
            logger.warning("%s: closing the stuck consumer failed: %s", self.component, exc)
        self.consumer = self._new_consumer()
        if self.commit is not None:
            self.commit.consumer = self.consumer
        self._rebalance = RebalanceEvents()
        self._subscribe()
        self._watchdog.reset(self.consumer)

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
        """Apply the assignment changes the listener queued (before handling the records of the next poll).
        Work of a revoked partition still in the steps finishes, but its offsets are no longer committed here:
        the next owner redoes it, harmlessly (results and documents are idempotent)."""
        for kind, partitions in self._rebalance.drain():
            if kind == "assigned":
                logger.info("%s: partitions assigned: %s", self.component, describe(partitions))
                self.tracker.assign(partitions)
                if self._held or self._stop.is_set():
                    self.consumer.pause(*partitions)
            else:
                logger.info("%s: partitions revoked: %s", self.component, describe(partitions))
                self.tracker.revoke(partitions)
                self._held = deque(r for r in self._held if r.tp not in partitions)
                self._forget_lag(partitions)

    def _forget_lag(self, partitions: Any) -> None:
        for tp in partitions:
            try:
                CONSUMER_LAG.remove(self.component, tp.topic, str(tp.partition))
            except KeyError:
                pass

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
