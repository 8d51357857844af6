"""``vigil sink``: results from Kafka into Elasticsearch, committed only after Elasticsearch acknowledged them.

Results are buffered up to ``sink_bulk_size`` or ``sink_flush_interval_s`` and written with the bulk API
(``Elasticsearch.bulk`` on NDJSON built while decoding; errors are not raised per item: every item is inspected).
Per item:

    2xx                         done
    429, 5xx, no answer         retried with backoff (the items still outstanding only)
    other 4xx (mapping errors)  the result is rejected: sent to the dead-letter topic, then done

The consumer's offsets are committed once every result of the buffer is done. While Elasticsearch is down the sink
pauses its partitions, keeps polling (so it stays in its group), backs off and retries: nothing is lost and it
resumes by itself.
"""
from __future__ import annotations

import logging
import socket
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import elastic_transport
import elasticsearch
from kafka import TopicPartition

from pipeline._consume import Backoff, GroupMember, OffsetTracker, Record, commit_offsets
from pipeline._elasticsearch import make_es_client
from pipeline._exceptions import MessageError, VigilError
from pipeline._kafka import make_consumer, make_producer
from pipeline._messages import DeadLetter, ResultMessage, decode, encode
from pipeline._observe import BATCH_SIZE, ERRORS, JOBS, STAGE_SECONDS, log_context, start_metrics, timed
from pipeline._settings import Settings

from ._docs import BulkKey, bulk_lines

__all__ = ["Sink", "run_sink", "BulkRejected", "RETRY_STATUS"]

logger = logging.getLogger(__name__)

COMPONENT = "sink"
RETRY_STATUS = (429, 500, 502, 503, 504)
MAX_REQUEST_BYTES = 16 << 20  # a bulk request larger than this is split


class BulkRejected(VigilError):
    """Elasticsearch refused a document of this result for good (mapping error, bad request)."""


@dataclass
class _Pending:
    record: Record
    result: ResultMessage | None
    actions: dict[BulkKey, bytes] = field(default_factory=dict)  # outstanding: NDJSON lines by action
    error: BaseException | None = None
    stage: str = "index"

    @property
    def resolved(self) -> bool:
        return not self.actions


def _decode_result(raw: bytes) -> ResultMessage:
    """pydantic's JSON parser first (fast); the shared ``decode`` for a precise MessageError when that fails."""
    try:
        return ResultMessage.model_validate_json(raw)
    except ValueError:
        return decode(raw, ResultMessage)  # raises MessageError naming the problem


def _key(op: str, info: dict[str, Any]) -> tuple[str, str, str]:
    return (op, str(info.get("_index")), str(info.get("_id")))


class Sink(GroupMember):
    """consume vigil.results → bulk into vigil-detections / vigil-videos → commit, commit last.

    One bulk request runs at a time in a background thread while the main thread keeps polling and decoding the
    next batch (bounded: at most ``sink_bulk_size`` results wait; beyond that the partitions are paused).
    """

    component = COMPONENT

    def __init__(self, settings: Settings, *, es: Any = None, consumer: Any = None, producer: Any = None,
                 max_request_bytes: int = MAX_REQUEST_BYTES) -> None:
        self.settings = settings
        self.es = es if es is not None else make_es_client(settings, max_retries=0)
        self.topic = settings.topic_results
        self.consumer = consumer if consumer is not None else self._new_consumer()
        self.producer = producer if producer is not None else make_producer(settings)
        self.max_request_bytes = max_request_bytes
        self.tracker = OffsetTracker()
        self.backoff = Backoff(settings.retry_backoff_s, settings.retry_backoff_max_s)
        self._buffer: list[_Pending] = []  # decoded, waiting for the next bulk request
        self._inflight: list[_Pending] = []  # in the running bulk request, or waiting to be retried
        self._future: Future[BaseException | None] | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vigil-bulk")
        self._oldest: float | None = None
        self._attempt = 0
        self._retry_at: float | None = None
        self.flushes = 0
        self._init_member(settings.worker_session_timeout_ms)

    def _new_consumer(self) -> Any:
        settings = self.settings
        return make_consumer(
            settings, settings.sink_group, max_poll_records=settings.sink_bulk_size,
            max_partition_fetch_bytes=8 << 20, fetch_max_bytes=64 << 20,
            session_timeout_ms=settings.worker_session_timeout_ms,
            heartbeat_interval_ms=max(1000, settings.worker_session_timeout_ms // 3),
            client_id=f"vigil-sink-{socket.gethostname()}")

    def _forget_uncommitted(self) -> None:
        self._buffer, self._oldest = [], None

    def run(self, *, max_seconds: float | None = None) -> None:
        logger.info("sink: group %s on %s → %s, %s", self.settings.sink_group, self.settings.topic_results,
                    self.settings.index("detections"), self.settings.index("videos"))
        self._subscribe()
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        try:
            while not self._stop.is_set() and (deadline is None or time.monotonic() < deadline):
                self._tick()
            # finish the running request; one last try for the rest. What is not acknowledged stays uncommitted.
            self._collect(wait=True)
            if self._retry_at is None and self._buffer:
                self._inflight, self._buffer = self._buffer, []
                self._launch()
                self._collect(wait=True)
        finally:
            self._pool.shutdown(wait=False, cancel_futures=True)
            try:
                self.consumer.close(autocommit=False)
            finally:
                self.producer.close(timeout=10)
                self.es.close()
        logger.info("sink: closed")

    # -- the loop
    def _tick(self) -> None:
        self._check_watchdog()
        self._set_paused(len(self._buffer) >= self.settings.sink_bulk_size)
        got = self.consumer.poll(timeout_ms=100 if not (self._buffer or self._inflight) else 10)
        self._apply_rebalance()  # before the records: they may belong to the new assignment
        for records in got.values():
            for message in records:
                self._add(Record.from_consumer(message))
        self._collect()
        if self._future is None:
            now = time.monotonic()
            if self._inflight:
                if self._retry_at is not None and now >= self._retry_at:
                    self._launch()
            elif self._buffer and (len(self._buffer) >= self.settings.sink_bulk_size
                                   or now - (self._oldest or now) >= self.settings.sink_flush_interval_s):
                self._inflight, self._buffer, self._oldest = self._buffer, [], None
                self._launch()
        self._report_lag()

    def _add(self, record: Record) -> None:
        generation = self.tracker.add(record.tp, record.offset)
        if generation is None:  # redelivered after a rebalance; this assignment has it already
            return
        record.generation = generation
        if self._oldest is None:
            self._oldest = time.monotonic()
        try:
            result = _decode_result(record.value)
        except MessageError as exc:
            pending = _Pending(record, None, error=exc, stage="parse")
            logger.warning("result at %s@%d is not a valid vigil.result/1: %s", record.tp, record.offset, exc)
        else:
            pending = _Pending(record, result, dict(bulk_lines(result, self.settings)))
        self._buffer.append(pending)

    def _launch(self) -> None:
        self.flushes += 1
        self._retry_at = None
        self._future = self._pool.submit(self._write, list(self._inflight))

    def _collect(self, *, wait: bool = False) -> None:
        """Settle the finished bulk request: DLQ the rejected, mark the acknowledged done, commit; or back off."""
        if self._future is None or not (wait or self._future.done()):
            return
        transient = self._future.result()
        self._future = None
        self._dead_letter_rejected()
        keep: list[_Pending] = []
        for pending in self._inflight:
            if (pending.error is None and pending.resolved) or pending.stage == "dead_lettered":
                if pending.error is None:
                    JOBS.labels(COMPONENT, "ok").inc()
                self.tracker.done(pending.record.tp, pending.record.offset, pending.record.generation)
            else:
                keep.append(pending)
        self._inflight = keep
        with timed(COMPONENT, "commit"):
            commit_offsets(self.consumer, self.tracker)
        if not keep:
            if self._attempt:
                logger.info("sink: Elasticsearch is back; written after %d tries", self._attempt + 1)
            self._attempt = 0
            return
        self._attempt += 1
        delay = self.backoff.delay(self._attempt)
        self._retry_at = time.monotonic() + delay
        logger.warning("sink: %d results not yet written (%s); retry %d in %.1fs", len(keep),
                       transient or "dead-letter pending", self._attempt, delay)

    def flush(self) -> bool:
        """Write everything decoded so far, now, in this thread; True when all of it was settled and committed."""
        self._collect(wait=True)
        self._inflight, self._buffer, self._oldest = self._inflight + self._buffer, [], None
        if self._inflight:
            self._launch()
            self._collect(wait=True)
        return not self._inflight

    def _write(self, batch: list[_Pending]) -> BaseException | None:
        """One bulk round over the outstanding actions of ``batch`` (bulk thread); returns a transient error."""
        outstanding = [(key, pending, lines) for pending in batch if pending.error is None
                       for key, lines in pending.actions.items()]
        if not outstanding:
            return None
        BATCH_SIZE.labels(COMPONENT).observe(len(batch))
        transient: BaseException | None = None
        start = time.perf_counter()
        chunk: list[tuple[BulkKey, _Pending, bytes]] = []
        size = 0
        for entry in outstanding + [None]:  # type: ignore[list-item]
            if entry is not None and (not chunk or size + len(entry[2]) <= self.max_request_bytes):
                chunk.append(entry)
                size += len(entry[2])
                continue
            transient = self._request(chunk) or transient
            if entry is not None:
                chunk, size = [entry], len(entry[2])
        STAGE_SECONDS.labels(COMPONENT, "bulk").observe(time.perf_counter() - start)
        return transient

    def _request(self, chunk: list[tuple[BulkKey, _Pending, bytes]]) -> BaseException | None:
        """One bulk request; settles each item: done, rejected (kept for the DLQ) or left for a retry."""
        try:
            response = self.es.bulk(operations=b"".join(lines for _, _, lines in chunk))
        except elasticsearch.ApiError as exc:  # the whole request refused: 429, 5xx (a 4xx here is logged loudly)
            ERRORS.labels(COMPONENT, f"http_{exc.status_code}", "index").inc()
            if exc.status_code not in RETRY_STATUS:
                logger.error("sink: bulk request refused as a whole (HTTP %s): %s", exc.status_code, exc)
            return exc
        except (elastic_transport.TransportError, OSError) as exc:
            ERRORS.labels(COMPONENT, type(exc).__name__, "index").inc()
            return exc
        transient: BaseException | None = None
        for (key, pending, _), item in zip(chunk, response["items"], strict=True):
            op, info = next(iter(item.items()))
            status = int(info.get("status") or 0)
            if 200 <= status < 300:
                pending.actions.pop(key, None)
            elif status in RETRY_STATUS or status == 0:
                ERRORS.labels(COMPONENT, f"http_{status}", "index").inc()
                transient = transient or BulkRejected(f"HTTP {status}: {info.get('error')}")
            else:
                error = info.get("error")
                reason = error.get("reason") if isinstance(error, dict) else error
                kind = error.get("type") if isinstance(error, dict) else "error"
                pending.error = BulkRejected(f"{op} {key[1]}/{key[2]}: HTTP {status} {kind}: {reason}")
                with log_context(pending.result.video_uid if pending.result else None):
                    logger.warning("Elasticsearch rejected a document: %s", pending.error)
        return transient

    def _dead_letter_rejected(self) -> None:
        for pending in self._inflight:
            if pending.error is None or pending.stage == "dead_lettered":
                continue
            record = pending.record
            letter = DeadLetter.wrap(record.value, topic=record.topic, error=pending.error, stage=pending.stage,
                                     partition=record.partition, offset=record.offset, key=record.key)
            try:
                self.producer.send(self.settings.topic_dlq, key=record.key, value=encode(letter)).get(
                    timeout=self.settings.kafka_request_timeout_ms / 1000)
            except Exception as exc:  # noqa: BLE001 - retried on the next round
                logger.warning("sink: dead-letter send failed, will retry: %s", exc)
                continue
            ERRORS.labels(COMPONENT, type(pending.error).__name__, pending.stage).inc()
            JOBS.labels(COMPONENT, "dead_letter").inc()
            pending.stage = "dead_lettered"
            pending.actions.clear()

    def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        pass

    def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        # the next owner rewrites what is uncommitted, and a bulk request still running writes its documents
        # again, harmlessly (same ids)
        self._buffer = [p for p in self._buffer if p.record.tp not in revoked]


def run_sink(settings: Settings) -> None:
    """Run the sink in this process until SIGTERM/SIGINT (the `vigil sink` command)."""
    start_metrics(settings.metrics_port)
    sink = Sink(settings)
    sink.install_signal_handlers()
    sink.run()
