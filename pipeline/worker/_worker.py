"""``vigil worker``: a member of the workers' consumer group that turns jobs into results.

Built from the consume kit (pipeline.consume): the GroupMember loop owns the consumer on the main thread and never
stops calling ``poll``; while a batch runs on the device (in its own thread) or a step is full, the assigned
partitions are paused instead, so a long batch never exceeds ``max.poll.interval.ms``. SIGTERM (or SIGINT) stops
taking new jobs, joins the steps for up to ``worker_shutdown_timeout_s``, commits what is durable and hands the rest
back uncommitted.
"""
from __future__ import annotations

import importlib
import logging
import socket
from collections.abc import Callable
from typing import Any

from pipeline._kafka import make_consumer, make_producer
from pipeline._media_store import MediaStore
from pipeline._observe import start_metrics
from pipeline._settings import Settings
from pipeline.consume import Backoff, Commit, DeadLetters, GroupMember, Produce, Record

from ._batching import BatchPolicy
from ._steps import (
    COMPONENT,
    Analyse,
    Keyframes,
    Prepare,
    SuiteLike,
    Work,
    requeue_out,
    requeued,
    result_out,
    scored,
)

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
    """consume → prepare (decode) → batch → device step → keyframes → produce (acks=all) → commit, commit last."""

    component = COMPONENT

    def __init__(self, settings: Settings, *, suite: SuiteLike | None = None, consumer: Any = None,
                 producer: Any = None) -> None:
        self.settings = settings
        self.suite = suite if suite is not None else load_suite(settings)
        self._init_member(topic=settings.topic_jobs, consumer=consumer,
                          session_timeout_ms=settings.worker_session_timeout_ms,
                          shutdown_timeout_s=settings.worker_shutdown_timeout_s)
        self.producer = producer if producer is not None else make_producer(settings)
        backoff = Backoff(settings.retry_backoff_s, settings.retry_backoff_max_s, jitter=0.3)
        self.policy = BatchPolicy(settings.worker_batch_size, settings.worker_batch_wait_s)
        commit = Commit(self.consumer, self.tracker, component=COMPONENT)
        self.dead_letters = DeadLetters(self.producer, settings.topic_dlq, commit, component=COMPONENT,
                                        backoff=backoff)
        self.produce = Produce(self.producer, result_out(settings.topic_results), commit, component=COMPONENT,
                               backoff=backoff, on_acked=scored)
        self.requeue = Produce(self.producer, requeue_out(settings.topic_jobs), commit, component=COMPONENT,
                               stage="requeue", backoff=backoff, on_acked=requeued)
        store = MediaStore.from_settings(settings) if settings.worker_face_crops > 0 else None
        self.keyframes = Keyframes(store, self.produce, self.dead_letters, suite_version=self.suite.version,
                                   crops=settings.worker_face_crops)
        self.analyse = Analyse(self.suite, self.keyframes, self.dead_letters, self.requeue, policy=self.policy,
                               retry_attempts=settings.retry_attempts, backoff=backoff,
                               local_tries=settings.worker_device_retries,
                               max_buffered_bytes=settings.worker_max_buffered_mb * 1024 * 1024)
        self.prepare = Prepare(self.suite, self.analyse, self.dead_letters, threads=settings.worker_decode_threads,
                               max_bytes=settings.max_download_mb * 1024 * 1024,
                               retry_attempts=settings.retry_attempts, backoff=backoff,
                               capacity=max(settings.worker_decode_threads * 2, settings.worker_batch_size))
        self._set_chain(self.prepare, (self.prepare, self.analyse, self.keyframes, self.produce, self.requeue,
                                       self.dead_letters, commit), commit)

    def _new_consumer(self) -> Any:
        settings = self.settings
        return make_consumer(
            settings, settings.worker_group,
            max_poll_records=max(1, settings.worker_batch_size),
            max_poll_interval_ms=settings.worker_max_poll_interval_ms,
            session_timeout_ms=settings.worker_session_timeout_ms,
            heartbeat_interval_ms=max(1000, settings.worker_session_timeout_ms // 3),
            client_id=f"vigil-worker-{socket.gethostname()}")

    def _envelope(self, record: Record) -> Work:
        return Work(record)

    def run(self, *, max_seconds: float | None = None) -> None:
        logger.info("worker: group %s on %s, suite %s, batch %d / %.2fs, %d decode threads",
                    self.settings.worker_group, self.settings.topic_jobs, self.suite.version,
                    self.policy.max_size, self.policy.max_wait_s, self.settings.worker_decode_threads)
        super().run(max_seconds=max_seconds)


def run_worker(settings: Settings, *, suite: SuiteLike | None = None) -> None:
    """Run a worker in this process until SIGTERM/SIGINT (the `vigil worker` command)."""
    start_metrics(settings.metrics_port)
    worker = Worker(settings, suite=suite)
    worker.install_signal_handlers()
    worker.run()
