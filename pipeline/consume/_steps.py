"""Processing steps in the arroyo style, and the envelope they carry.

A step has five methods: ``submit`` (take one item; raise MessageRejected when full), ``poll`` (move finished work
on, never blocks), ``join(timeout)`` (finish what was submitted), ``close`` and ``terminate``. Steps chain through
``next_step``. The Kafka record (with its offset) travels inside the envelope to the last step, the commit.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from kafka import TopicPartition

__all__ = ["MessageRejected", "ProcessingStep", "Record", "Envelope", "Failure"]

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
        self.poll()
        while self.pending() and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.005)
            self.poll()

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
    headers: list[tuple[str, bytes]] = field(default_factory=list)

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)

    @classmethod
    def from_consumer(cls, message: Any) -> Record:
        return cls(topic=message.topic, partition=message.partition, offset=message.offset, key=message.key,
                   value=message.value if message.value is not None else b"", timestamp_ms=message.timestamp,
                   headers=list(getattr(message, "headers", None) or []))


@dataclass
class Envelope:
    """One consumed message on its way through the steps. Consumers subclass it for what they add (the worker's
    job, clip and result; the sink's bulk lines); the record, and with it the offset, travels to the commit."""

    record: Record
    timings_ms: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    @property
    def video_uid(self) -> str:
        return self.record.key.decode("utf-8", "replace") if self.record.key else "-"

    def release(self) -> None:
        """Drop what is heavy (decoded frames) once it is no longer needed."""


@dataclass
class Failure:
    """An envelope that goes to the dead-letter topic, with why, where and after how many tries."""

    envelope: Envelope
    error: BaseException
    stage: str
    attempts: int = 1
