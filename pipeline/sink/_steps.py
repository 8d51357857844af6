"""The sink's own steps; produce-free, its output is Elasticsearch::

    Decode ──▶ Bulk ──▶ Commit
      │          └──▶ DeadLetters ──▶ Commit      (a result Elasticsearch rejects: mapping error, bad request)
      └──────────────▶ DeadLetters                (not a vigil.result/1)

Decode parses each result and builds its NDJSON bulk lines while the previous bulk request runs. Bulk keeps one
request at a time in a background thread (``Elasticsearch.bulk`` on pre-serialised lines; every item inspected):

    2xx                         done: on to the commit (and a submission's webhook called, see ``_webhook``)
    429, 5xx, no answer         retried with backoff and jitter (the items still outstanding only)
    other 4xx (mapping errors)  rejected: to the dead letters at once (non-blocking), the rest goes on

While Elasticsearch is down the buffer fills, Bulk rejects, the consumer pauses (and keeps polling, so it stays in
its group); nothing is lost and it resumes by itself.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import elastic_transport
import elasticsearch

from pipeline._exceptions import MessageError, VigilError
from pipeline._messages import ResultMessage, decode
from pipeline._observe import BATCH_SIZE, ERRORS, JOBS, STAGE_SECONDS, log_context
from pipeline._settings import Settings
from pipeline.consume import Backoff, Envelope, Failure, MessageRejected, ProcessingStep

from ._docs import BulkKey, bulk_lines

__all__ = ["SinkItem", "Decode", "Bulk", "BulkRejected", "RETRY_STATUS", "MAX_REQUEST_BYTES", "COMPONENT"]

logger = logging.getLogger(__name__)

COMPONENT = "sink"
RETRY_STATUS = (429, 500, 502, 503, 504)
MAX_REQUEST_BYTES = 16 << 20  # a bulk request larger than this is split


class BulkRejected(VigilError):
    """Elasticsearch refused a document of this result for good (mapping error, bad request)."""


@dataclass
class SinkItem(Envelope):
    """One result on its way to Elasticsearch: the decoded message and its outstanding bulk actions."""

    result: ResultMessage | None = None
    actions: dict[BulkKey, bytes] = field(default_factory=dict)  # outstanding: NDJSON lines by action
    error: BaseException | None = None
    webhook: str | None = None  # the video's submission.webhook, to call once everything is written

    @property
    def video_uid(self) -> str:
        return self.result.video_uid if self.result is not None else super().video_uid


def _decode_result(raw: bytes) -> ResultMessage:
    """pydantic's JSON parser first (fast); the shared ``decode`` for a precise MessageError when that fails."""
    try:
        return ResultMessage.model_validate_json(raw)
    except ValueError:
        return decode(raw, ResultMessage)  # raises MessageError naming the problem


class Decode(ProcessingStep[SinkItem]):
    """Parse one result and build its bulk lines; poison goes to the dead letters. Holds one decoded item while
    the next step is full."""

    def __init__(self, settings: Settings, next_step: ProcessingStep[SinkItem],
                 dead_letters: ProcessingStep[Failure]) -> None:
        self.settings = settings
        self.next_step = next_step
        self.dead_letters = dead_letters
        self._held: SinkItem | None = None

    def submit(self, item: SinkItem) -> None:
        if self._held is not None:
            raise MessageRejected
        try:
            item.result = _decode_result(item.record.value)
        except MessageError as exc:
            logger.warning("result at %s@%d is not a valid vigil.result/1: %s", item.record.tp, item.record.offset,
                           exc)
            self.dead_letters.submit(Failure(item, exc, "parse"))
            return
        item.actions = dict(bulk_lines(item.result, self.settings))
        try:
            self.next_step.submit(item)
        except MessageRejected:
            self._held = item  # accepted here: offered again on poll

    def poll(self) -> None:
        if self._held is not None:
            try:
                self.next_step.submit(self._held)
            except MessageRejected:
                return
            self._held = None

    def pending(self) -> int:
        return 1 if self._held is not None else 0

    def terminate(self) -> None:
        self._held = None


class Bulk(ProcessingStep[SinkItem]):
    """Buffer up to ``bulk_size`` results or ``flush_interval_s``; one bulk request at a time in a thread."""

    def __init__(self, es: Any, next_step: ProcessingStep[SinkItem], dead_letters: ProcessingStep[Failure], *,
                 bulk_size: int, flush_interval_s: float, backoff: Backoff,
                 max_request_bytes: int = MAX_REQUEST_BYTES, webhooks: Any = None) -> None:
        self.es = es
        self.webhooks = webhooks  # SubmissionWebhooks, or None
        self.next_step = next_step
        self.dead_letters = dead_letters
        self.bulk_size = bulk_size
        self.flush_interval_s = flush_interval_s
        self.backoff = backoff
        self.max_request_bytes = max_request_bytes
        self.flushing = False
        self._buffer: list[SinkItem] = []  # decoded, waiting for the next bulk request
        self._inflight: list[SinkItem] = []  # in the running request, or waiting to be retried
        self._oldest: float | None = None
        self._future: Future[BaseException | None] | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vigil-bulk")
        self._attempt = 0
        self._retry_at: float | None = None
        self.flushes = 0

    def submit(self, item: SinkItem) -> None:
        if len(self._buffer) >= self.bulk_size:
            raise MessageRejected
        if self._oldest is None:
            self._oldest = time.monotonic()
        self._buffer.append(item)

    def poll(self) -> None:
        self._collect()
        if self._future is not None:
            return
        now = time.monotonic()
        if self._inflight:
            if self._retry_at is not None and now >= self._retry_at:
                self._launch()
        elif self._buffer and (self.flushing or len(self._buffer) >= self.bulk_size
                               or now - (self._oldest or now) >= self.flush_interval_s):
            self._inflight, self._buffer, self._oldest = self._buffer, [], None
            self._launch()

    def pending(self) -> int:
        return len(self._buffer) + len(self._inflight)

    def join(self, timeout: float | None = None) -> None:
        self.flushing = True
        super().join(timeout)

    def terminate(self) -> None:
        self._buffer, self._inflight = [], []
        self.close()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _launch(self) -> None:
        self.flushes += 1
        self._retry_at = None
        self._future = self._pool.submit(self._write, list(self._inflight))

    def _collect(self) -> None:
        """Settle a finished request: rejected → dead letters, acknowledged → commit; the rest backs off."""
        if self._future is None or not self._future.done():
            return
        transient = self._future.result()
        self._future = None
        keep: list[SinkItem] = []
        for item in self._inflight:
            if item.error is not None:
                self.dead_letters.submit(Failure(item, item.error, "index"))
            elif not item.actions:
                JOBS.labels(COMPONENT, "ok").inc()
                if item.webhook and self.webhooks is not None and item.result is not None:
                    self.webhooks.notify(item.webhook, {"video_uid": item.result.video_uid,
                                                        "fused": item.result.fused.model_dump(mode="json")})
                self.next_step.submit(item)
            else:
                keep.append(item)
        self._inflight = keep
        if not keep:
            if self._attempt:
                logger.info("sink: Elasticsearch is back; written after %d tries", self._attempt + 1)
            self._attempt = 0
            return
        self._attempt += 1
        delay = self.backoff.delay(self._attempt)
        self._retry_at = time.monotonic() + delay
        logger.warning("sink: %d results not yet written (%s); retry %d in %.1fs", len(keep), transient,
                       self._attempt, delay)

    def _write(self, batch: list[SinkItem]) -> BaseException | None:
        """One bulk round over the outstanding actions of ``batch`` (bulk thread); returns a transient error."""
        outstanding = [(key, item, lines) for item in batch if item.error is None
                       for key, lines in item.actions.items()]
        if not outstanding:
            return None
        BATCH_SIZE.labels(COMPONENT).observe(len(batch))
        transient: BaseException | None = None
        start = time.perf_counter()
        chunk: list[tuple[BulkKey, SinkItem, bytes]] = []
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

    def _request(self, chunk: list[tuple[BulkKey, SinkItem, bytes]]) -> BaseException | None:
        """One bulk request; settles each item: done, rejected (for the dead letters) or left for a retry."""
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
        for (key, item, _), answer in zip(chunk, response["items"], strict=True):
            op, info = next(iter(answer.items()))
            status = int(info.get("status") or 0)
            if 200 <= status < 300:
                item.actions.pop(key, None)
                if op == "update" and info.get("result") != "noop":  # a redelivered, unchanged result posts nothing
                    hook = ((info.get("get") or {}).get("_source") or {}).get("submission") or {}
                    if isinstance(hook, dict) and isinstance(hook.get("webhook"), str) and hook["webhook"]:
                        item.webhook = hook["webhook"]
            elif status in RETRY_STATUS or status == 0:
                ERRORS.labels(COMPONENT, f"http_{status}", "index").inc()
                transient = transient or BulkRejected(f"HTTP {status}: {info.get('error')}")
            else:
                error = info.get("error")
                reason = error.get("reason") if isinstance(error, dict) else error
                kind = error.get("type") if isinstance(error, dict) else "error"
                item.error = BulkRejected(f"{op} {key[1]}/{key[2]}: HTTP {status} {kind}: {reason}")
                item.actions.clear()
                with log_context(item.video_uid):
                    logger.warning("Elasticsearch rejected a document: %s", item.error)
        return transient
