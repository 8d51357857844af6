"""Producing steps: a message per envelope with acks=all, handed on only once the broker acknowledged it.

``Produce`` sends what ``message_for(item)`` returns and passes the envelope to ``next_step`` on acknowledgement;
``DeadLetters`` is a Produce whose message is the original record (key and value bytes unchanged) with the error
in headers (see ``_dead_letters``). A failed send is retried with backoff for as long as it takes: the offset is not
committed until it succeeds, so a broker outage delays work but loses none.
"""
from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._observe import ERRORS, JOBS, log_context
from ._backoff import Backoff
from ._dead_letters import dead_letter_headers
from ._steps import Envelope, Failure, MessageRejected, ProcessingStep

__all__ = ["OutgoingMessage", "Produce", "DeadLetters"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutgoingMessage:
    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass
class _InFlight:
    item: Any
    envelope: Envelope
    message: OutgoingMessage
    future: Any = None
    attempt: int = 0
    retry_at: float = 0.0


class Produce(ProcessingStep[Any]):
    """Send one message per item with acks=all (the producer's setting); ``next_step`` gets the envelope once the
    broker acknowledged it. ``capacity`` bounds the messages in flight (then MessageRejected)."""

    def __init__(self, producer: Any, message_for: Callable[[Any], OutgoingMessage],
                 next_step: ProcessingStep[Envelope], *, component: str, stage: str = "produce",
                 backoff: Backoff | None = None, capacity: int = 1000,
                 on_acked: Callable[[Any, Envelope], None] | None = None) -> None:
        self.producer = producer
        self.message_for = message_for
        self.next_step = next_step
        self.component = component
        self.stage = stage
        self.backoff = backoff or Backoff(0.5, 30.0, jitter=0.2)
        self.capacity = capacity
        self.on_acked = on_acked
        self._inflight: deque[_InFlight] = deque()

    def _envelope_of(self, item: Any) -> Envelope:
        return item

    def submit(self, item: Any) -> None:
        if len(self._inflight) >= self.capacity:
            raise MessageRejected
        entry = _InFlight(item, self._envelope_of(item), self.message_for(item))
        self._send(entry)
        self._inflight.append(entry)

    def _send(self, entry: _InFlight) -> None:
        entry.attempt += 1
        m = entry.message
        try:
            entry.future = self.producer.send(m.topic, key=m.key, value=m.value, headers=list(m.headers) or None)
        except Exception as exc:  # noqa: BLE001 - KafkaTimeoutError and friends: retry later
            entry.future = None
            entry.retry_at = time.monotonic() + self.backoff.delay(entry.attempt)
            ERRORS.labels(self.component, type(exc).__name__, self.stage).inc()
            logger.warning("send to %s failed (try %d): %s", m.topic, entry.attempt, exc)

    def poll(self) -> None:
        now = time.monotonic()
        for entry in list(self._inflight):
            future = entry.future
            if future is None:
                if now >= entry.retry_at:
                    self._send(entry)
                continue
            if not future.is_done:
                continue
            if future.failed():
                ERRORS.labels(self.component, type(future.exception).__name__, self.stage).inc()
                logger.warning("broker did not acknowledge a message to %s (try %d): %s", entry.message.topic,
                               entry.attempt, future.exception)
                entry.future = None
                entry.retry_at = now + self.backoff.delay(entry.attempt)
                continue
            self._inflight.remove(entry)
            with log_context(entry.envelope.video_uid):
                if self.on_acked is not None:
                    self.on_acked(entry.item, entry.envelope)
            self.next_step.submit(entry.envelope)

    def pending(self) -> int:
        return len(self._inflight)

    def terminate(self) -> None:
        self._inflight.clear()


class DeadLetters(Produce):
    """The original record (key and value unchanged) to the dead-letter topic, with error class, message, stage,
    attempts and origin in ``__connect.errors.*`` headers; the envelope goes on to the commit once acknowledged."""

    def __init__(self, producer: Any, topic: str, next_step: ProcessingStep[Envelope], *, component: str,
                 backoff: Backoff | None = None) -> None:
        super().__init__(producer, self._letter, next_step, component=component, stage="dead_letter",
                         backoff=backoff, capacity=1 << 30, on_acked=self._counted)
        self.topic = topic

    def _envelope_of(self, item: Failure) -> Envelope:
        return item.envelope

    def _letter(self, failure: Failure) -> OutgoingMessage:
        record = failure.envelope.record
        headers = dead_letter_headers(record, failure.error, stage=failure.stage, attempts=failure.attempts,
                                      component=self.component)
        return OutgoingMessage(self.topic, record.key, record.value, tuple(headers))

    def submit(self, item: Failure) -> None:
        ERRORS.labels(self.component, type(item.error).__name__, item.stage).inc()
        item.envelope.release()
        super().submit(item)  # never rejects: poison must not stall the consumer

    def _counted(self, item: Failure, envelope: Envelope) -> None:
        JOBS.labels(self.component, "dead_letter").inc()
        logger.info("sent to %s: %s at %s", self.topic, type(item.error).__name__, item.stage)
