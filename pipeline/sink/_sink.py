"""``vigil sink``: results from Kafka into Elasticsearch, committed only after Elasticsearch acknowledged them.

A chain of the consume kit's steps (see ``_steps``): Decode → Bulk → Commit, rejected documents and poison to
DeadLetters → Commit. The GroupMember loop polls, offers records to Decode, pauses the partitions while Bulk is full
(Elasticsearch slow or down) and on SIGTERM joins the steps, terminates what did not finish (uncommitted, so it is
written again by the next owner: same ids) and commits the rest.
"""
from __future__ import annotations

import logging
import socket
from typing import Any

from pipeline._elasticsearch import make_es_client
from pipeline._kafka import make_consumer, make_producer
from pipeline._observe import start_metrics
from pipeline._settings import Settings
from pipeline.consume import Backoff, Commit, DeadLetters, GroupMember, Record

from ._steps import COMPONENT, MAX_REQUEST_BYTES, Bulk, Decode, SinkItem
from ._webhook import SubmissionWebhooks

__all__ = ["Sink", "run_sink"]

logger = logging.getLogger(__name__)


class Sink(GroupMember):
    """consume vigil.results → bulk into vigil-detections / vigil-videos → commit, commit last."""

    component = COMPONENT

    def __init__(self, settings: Settings, *, es: Any = None, consumer: Any = None, producer: Any = None,
                 max_request_bytes: int = MAX_REQUEST_BYTES, webhooks: SubmissionWebhooks | None = None) -> None:
        self.settings = settings
        self.webhooks = webhooks if webhooks is not None else SubmissionWebhooks(settings)
        self.es = es if es is not None else make_es_client(settings, max_retries=0)
        self._init_member(topic=settings.topic_results, consumer=consumer,
                          session_timeout_ms=settings.sink_session_timeout_ms,
                          shutdown_timeout_s=settings.worker_shutdown_timeout_s)
        self.producer = producer if producer is not None else make_producer(settings)
        backoff = Backoff(settings.retry_backoff_s, settings.retry_backoff_max_s, jitter=0.3)
        commit = Commit(self.consumer, self.tracker, component=COMPONENT)
        self.dead_letters = DeadLetters(self.producer, settings.topic_dlq, commit, component=COMPONENT,
                                        backoff=backoff)
        self.bulk = Bulk(self.es, commit, self.dead_letters, bulk_size=settings.sink_bulk_size,
                         flush_interval_s=settings.sink_flush_interval_s, backoff=backoff,
                         max_request_bytes=max_request_bytes, webhooks=self.webhooks)
        self.decode = Decode(settings, self.bulk, self.dead_letters)
        self._set_chain(self.decode, (self.decode, self.bulk, self.dead_letters, commit), commit)

    @property
    def flushes(self) -> int:
        return self.bulk.flushes

    def _new_consumer(self) -> Any:
        settings = self.settings
        return make_consumer(
            settings, settings.sink_group, max_poll_records=settings.sink_bulk_size,
            max_partition_fetch_bytes=8 << 20, fetch_max_bytes=64 << 20,
            session_timeout_ms=settings.sink_session_timeout_ms,
            heartbeat_interval_ms=max(1000, settings.sink_session_timeout_ms // 3),
            client_id=f"vigil-sink-{socket.gethostname()}")

    def _envelope(self, record: Record) -> SinkItem:
        return SinkItem(record)

    def run(self, *, max_seconds: float | None = None) -> None:
        logger.info("sink: group %s on %s → %s, %s", self.settings.sink_group, self.settings.topic_results,
                    self.settings.index("detections"), self.settings.index("videos"))
        try:
            super().run(max_seconds=max_seconds)
        finally:  # posts already waiting get a moment; the sink never waits longer for a receiver
            self.webhooks.join(timeout=min(5.0, self.settings.submission_webhook_timeout_s))
            self.webhooks.close()

    def flush(self, timeout: float = 60.0) -> bool:
        """Write everything taken so far, now, in this thread, and commit; True when all of it was settled."""
        try:
            for step in self.steps:
                step.join(timeout)
        finally:
            self.bulk.flushing = False
        assert self.commit is not None
        self.commit.commit_now()
        return self.busy() == 0

    def _close_resources(self) -> None:
        self.es.close()


def run_sink(settings: Settings) -> None:
    """Run the sink in this process until SIGTERM/SIGINT (the `vigil sink` command)."""
    start_metrics(settings.metrics_port)
    sink = Sink(settings)
    sink.install_signal_handlers()
    sink.run()
