"""``vigil worker``: a member of the workers' consumer group that turns jobs into results.

The main thread owns the consumer and never stops calling ``poll``: while a batch runs on the device (in its own
thread) or a step is full, the assigned partitions are paused instead, so a long batch never exceeds
``max.poll.interval.ms`` and never triggers a rebalance. SIGTERM (or SIGINT) stops taking new jobs, lets in-flight
work finish for up to ``worker_shutdown_timeout_s``, commits what is durable and hands the rest back uncommitted.
"""
from __future__ import annotations

import importlib
import logging
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from kafka import TopicPartition

from pipeline._consume import Backoff, GroupMember, MessageRejected, OffsetTracker, ProcessingStep, Record
from pipeline._kafka import make_consumer, make_producer
from pipeline._media_store import MediaStore
from pipeline._observe import start_metrics
from pipeline._settings import Settings

from ._batching import BatchPolicy
from ._steps import COMPONENT, Analyse, Commit, DeadLetters, Evidence, Prepare, ProduceResult, SuiteLike, Work

__all__ = ["Worker", "load_suite", "run_worker"]

logger = logging.getLogger(__name__)


def load_suite(settings: Settings) -> SuiteLike:
    """The detector suite this worker runs: ``settings.worker_suite`` ('module:callable' taking the settings) or
    ``detectors.Suite.from_settings``."""
    if settings.worker_suite:
        module_name, _, attr = settings.worker_suite.partition(":")
        factory: Callable[..., SuiteLike] = getattr(importlib.import_module(module_name), attr or "make_suite")
        return factory(settings)
    from detectors import Suite  # worker side only

    return Suite.from_settings(settings, names=settings.worker_detectors or None)


class Worker(GroupMember):
    """consume → prepare (decode) → batch → device step → produce (acks=all) → commit, commit last."""

    component = COMPONENT

    def __init__(self, settings: Settings, *, suite: SuiteLike | None = None, consumer: Any = None,
                 producer: Any = None) -> None:
        self.settings = settings
        self.topic = settings.topic_jobs
        self.suite = suite if suite is not None else load_suite(settings)
        self.tracker = OffsetTracker()
        self.consumer = consumer if consumer is not None else self._new_consumer()
        self._init_member(settings.worker_session_timeout_ms)
        self.producer = producer if producer is not None else make_producer(settings)
        backoff = Backoff(settings.retry_backoff_s, settings.retry_backoff_max_s)
        self.policy = BatchPolicy(settings.worker_batch_size, settings.worker_batch_wait_s)
        self.commit = Commit(self.consumer, self.tracker)
        self.dead_letters = DeadLetters(self.producer, settings.topic_dlq, self.commit, backoff=backoff)
        self.produce = ProduceResult(self.producer, settings.topic_results, self.commit, self.dead_letters,
                                     suite_version=self.suite.version, backoff=backoff)
        after_analyse: ProcessingStep[Work] = self.produce
        self.evidence: Evidence | None = None
        if settings.worker_evidence_plots:
            self.evidence = Evidence(MediaStore.from_settings(settings), self.produce, self.dead_letters,
                                     suite_version=self.suite.version)
            after_analyse = self.evidence
        self.analyse = Analyse(self.suite, after_analyse, self.dead_letters, policy=self.policy,
                               max_buffered_bytes=settings.worker_max_buffered_mb * 1024 * 1024)
        self.prepare = Prepare(self.suite, self.analyse, self.dead_letters, threads=settings.worker_decode_threads,
                               max_bytes=settings.max_download_mb * 1024 * 1024,
                               retry_attempts=settings.retry_attempts, backoff=backoff,
                               capacity=max(settings.worker_decode_threads * 2, settings.worker_batch_size))
        self._steps = tuple(step for step in (self.prepare, self.analyse, self.evidence, self.produce,
                                              self.dead_letters, self.commit) if step is not None)
        self._held: deque[Record] = deque()

    def _new_consumer(self) -> Any:
        settings = self.settings
        return make_consumer(
            settings, settings.worker_group,
            max_poll_records=max(1, settings.worker_batch_size),
            max_poll_interval_ms=settings.worker_max_poll_interval_ms,
            session_timeout_ms=settings.worker_session_timeout_ms,
            heartbeat_interval_ms=max(1000, settings.worker_session_timeout_ms // 3),
            client_id=f"vigil-worker-{socket.gethostname()}")

    def _forget_uncommitted(self) -> None:
        self._held.clear()

    def _replace_consumer(self) -> None:
        super()._replace_consumer()
        self.commit.consumer = self.consumer

    def run(self, *, max_seconds: float | None = None) -> None:
        """Consume until ``stop`` (or ``max_seconds``), then shut down cleanly."""
        logger.info("worker: group %s on %s, suite %s, batch %d / %.2fs, %d decode threads",
                    self.settings.worker_group, self.settings.topic_jobs, self.suite.version,
                    self.policy.max_size, self.policy.max_wait_s, self.settings.worker_decode_threads)
        self._subscribe()
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        try:
            while not self._stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                self._tick()
        finally:
            self._shutdown()

    # -- the loop
    def busy(self) -> int:
        """Jobs inside the pipeline (submitted, not yet committed or handed to the DLQ)."""
        return sum(step.pending() for step in self._steps[:-1])

    def _tick(self) -> None:
        self._check_watchdog()
        self._set_paused(bool(self._held))
        timeout_ms = 20 if (self.busy() or self._held) else 200
        got = self.consumer.poll(timeout_ms=timeout_ms)
        self._apply_rebalance()  # before the records: they may belong to the new assignment
        for records in got.values():
            self._held.extend(Record.from_consumer(r) for r in records)
        self._offer()
        for step in self._steps:
            step.poll()
        self._offer()
        self._report_lag()

    def _offer(self) -> None:
        while self._held:
            record = self._held[0]
            if not record.generation:
                generation = self.tracker.add(record.tp, record.offset)
                if generation is None:  # redelivered after a rebalance; this assignment has it already
                    self._held.popleft()
                    continue
                record.generation = generation
            try:
                self.prepare.submit(Work(record))
            except MessageRejected:
                self._set_paused(True)
                return
            self._held.popleft()

    def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        # what is done but uncommitted is redone by the next owner, harmlessly (results and documents are idempotent)
        self._held = deque(r for r in self._held if r.tp not in revoked)

    def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        if self._held or self._stop.is_set():
            self.consumer.pause(*assigned)

    def _shutdown(self) -> None:
        logger.info("worker: stopping; %d jobs in flight, %d not started (handed back)", self.busy(),
                    len(self._held))
        self._held.clear()
        deadline = time.monotonic() + self.settings.worker_shutdown_timeout_s
        self.analyse.flushing = True
        try:
            while self.busy() and time.monotonic() < deadline:
                self._set_paused(True)
                self.consumer.poll(timeout_ms=20)  # heartbeats; nothing is returned from paused partitions
                self._apply_rebalance()
                for step in self._steps:
                    step.poll()
            self.commit.commit_now()
            left = self.busy()
            if left:
                logger.warning("worker: %d jobs unfinished at shutdown; not committed, they will be redone", left)
        finally:
            for step in self._steps:
                step.close()
            try:
                self.consumer.close(autocommit=False)
            finally:
                self.producer.close(timeout=10)
        logger.info("worker: closed")


def run_worker(settings: Settings, *, suite: SuiteLike | None = None) -> None:
    """Run a worker in this process until SIGTERM/SIGINT (the `vigil worker` command)."""
    start_metrics(settings.metrics_port)
    worker = Worker(settings, suite=suite)
    worker.install_signal_handlers()
    worker.run()
