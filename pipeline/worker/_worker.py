"""``vigil worker``: a member of the workers' consumer group that turns jobs into results.

The main thread owns the consumer and never stops calling ``poll``: while a batch runs on the device (in its own
thread) or a step is full, the assigned partitions are paused instead, so a long batch never exceeds
``max.poll.interval.ms`` and never triggers a rebalance. SIGTERM (or SIGINT) stops taking new jobs, lets in-flight
work finish for up to ``worker_shutdown_timeout_s``, commits what is durable and hands the rest back uncommitted.
"""
from __future__ import annotations

import importlib
import logging
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from kafka import TopicPartition

from pipeline._consume import (
    ProcessingStep,
    Backoff,
    GroupWatchdog,
    MessageRejected,
    OffsetTracker,
    RebalanceEvents,
    Record,
    describe,
)
from pipeline._kafka import make_consumer, make_producer
from pipeline._media_store import MediaStore
from pipeline._observe import CONSUMER_LAG, start_metrics
from pipeline._settings import Settings

from ._batching import BatchPolicy
from ._steps import COMPONENT, Analyse, Commit, DeadLetters, Evidence, Prepare, ProduceResult, SuiteLike, Work

__all__ = ["Worker", "load_suite", "run_worker"]

logger = logging.getLogger(__name__)

LAG_INTERVAL_S = 5.0


def load_suite(settings: Settings) -> SuiteLike:
    """The detector suite this worker runs: ``settings.worker_suite`` ('module:callable' taking the settings) or
    ``detectors.Suite.from_settings``."""
    if settings.worker_suite:
        module_name, _, attr = settings.worker_suite.partition(":")
        factory: Callable[..., SuiteLike] = getattr(importlib.import_module(module_name), attr or "make_suite")
        return factory(settings)
    from detectors import Suite  # worker side only

    return Suite.from_settings(settings, names=settings.worker_detectors or None)


class Worker:
    """consume → prepare (decode) → batch → device step → produce (acks=all) → commit, commit last."""

    def __init__(self, settings: Settings, *, suite: SuiteLike | None = None, consumer: Any = None,
                 producer: Any = None) -> None:
        self.settings = settings
        self.suite = suite if suite is not None else load_suite(settings)
        self.tracker = OffsetTracker()
        self.consumer = consumer if consumer is not None else self._new_consumer()
        self._watchdog = GroupWatchdog(self.consumer, max(30.0, 3 * settings.worker_session_timeout_ms / 1000))
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
        self._rebalance = RebalanceEvents()
        self._stop = threading.Event()
        self._last_lag = 0.0

    def _new_consumer(self) -> Any:
        settings = self.settings
        return make_consumer(
            settings, settings.worker_group,
            max_poll_records=max(1, settings.worker_batch_size),
            max_poll_interval_ms=settings.worker_max_poll_interval_ms,
            session_timeout_ms=settings.worker_session_timeout_ms,
            heartbeat_interval_ms=max(1000, settings.worker_session_timeout_ms // 3),
            client_id=f"vigil-worker-{socket.gethostname()}")

    def _replace_consumer(self) -> None:
        """A new group member for one stuck in a rebalance (see GroupWatchdog); uncommitted work is redone."""
        logger.warning("worker: not a stable group member for %.0fs; replacing the consumer", self._watchdog.limit_s)
        self.tracker.revoke(self.tracker.partitions())
        self._held.clear()
        try:
            self.consumer.close(autocommit=False, timeout_ms=5000)
        except Exception as exc:  # noqa: BLE001 - it is being replaced because it misbehaves
            logger.warning("worker: closing the stuck consumer failed: %s", exc)
        self.consumer = self._new_consumer()
        self.commit.consumer = self.consumer
        self._rebalance = RebalanceEvents()
        self.consumer.subscribe([self.settings.topic_jobs], listener=self._rebalance)
        self._watchdog.reset(self.consumer)

    # -- lifecycle
    def stop(self, *_: Any) -> None:
        """Stop taking new jobs; ``run`` finishes in-flight work and returns (signal-handler safe)."""
        self._stop.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def run(self, *, max_seconds: float | None = None) -> None:
        """Consume until ``stop`` (or ``max_seconds``), then shut down cleanly."""
        logger.info("worker: group %s on %s, suite %s, batch %d / %.2fs, %d decode threads",
                    self.settings.worker_group, self.settings.topic_jobs, self.suite.version,
                    self.policy.max_size, self.policy.max_wait_s, self.settings.worker_decode_threads)
        self.consumer.subscribe([self.settings.topic_jobs], listener=self._rebalance)
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
        if self._watchdog.stalled():
            self._replace_consumer()
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

    def _set_paused(self, paused: bool) -> None:
        assigned = self.consumer.assignment()
        if not assigned:
            return
        if paused:
            self.consumer.pause(*assigned)
        elif self.consumer.paused():
            self.consumer.resume(*assigned)

    def _apply_rebalance(self) -> None:
        for kind, partitions in self._rebalance.drain():
            if kind == "revoked":
                self._on_revoked(partitions)
            else:
                self._on_assigned(partitions)

    def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        # no commit here: the group is already rebalancing; what is done but uncommitted is redone by the next
        # owner, harmlessly (results and documents are idempotent)
        logger.info("partitions revoked: %s", describe(revoked))
        self.tracker.revoke(revoked)
        self._held = deque(r for r in self._held if r.tp not in revoked)

    def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        logger.info("partitions assigned: %s", describe(assigned))
        self.tracker.assign(assigned)
        if self._held or self._stop.is_set():
            self.consumer.pause(*assigned)

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
                CONSUMER_LAG.labels(COMPONENT, tp.topic, str(tp.partition)).set(max(0, high - position))

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
