"""The worker's processing steps, chained like arroyo strategies::

    Prepare ──▶ Analyse ──▶ Evidence ──▶ ProduceResult ──▶ Commit
       │           │          (plots)       (acks=all)     ▲
       └───────────┴──────────┴──▶ DeadLetters ────────────┘   poison input / exhausted retries

Prepare parses the job, fetches and verifies the media and decodes it (``suite.prepare``) in a small thread pool.
Analyse batches decoded clips across videos and runs ``suite.analyse`` in one device thread. Evidence (optional,
``worker_evidence_plots``) renders the result's plots beside the media on its own thread. ProduceResult and
DeadLetters send with acks=all and hand the work on only once the broker acknowledged it; Commit marks the offset
done and commits the contiguous done prefix of each partition. Every step is bounded: a full step raises
MessageRejected and the consumer pauses.
"""
from __future__ import annotations

import logging
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pipeline._consume import Backoff, MessageRejected, OffsetTracker, ProcessingStep, Record, commit_offsets
from pipeline._exceptions import MessageError
from pipeline._messages import DeadLetter, JobMessage, ResultMessage, decode, encode
from pipeline._observe import BATCH_SIZE, ERRORS, JOBS, STAGE_SECONDS, VIDEO_SECONDS, log_context, timed

from ._batching import BatchPolicy
from ._exceptions import AnalysisFailed, MediaUnavailable, PoisonJob, is_poison
from ._media import fetch_media

__all__ = ["SuiteLike", "Work", "Failure", "Prepare", "Analyse", "Evidence", "ProduceResult", "DeadLetters", "Commit",
           "result_message"]

logger = logging.getLogger(__name__)

COMPONENT = "worker"


class SuiteLike(Protocol):
    """What the worker needs of a detector suite (``detectors.Suite``)."""

    version: str

    def prepare(self, source: Any, *, media_sha256: str | None = None) -> tuple[Any, dict[str, float]]: ...

    def analyse(self, clips: list[Any]) -> list[Any]: ...


@dataclass
class Work:
    """One job on its way through the steps; the record (with its offset) travels with it to the commit."""

    record: Record
    job: JobMessage | None = None
    clip: Any = None
    result: Any = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    @property
    def video_uid(self) -> str:
        if self.job is not None:
            return self.job.video_uid
        return self.record.key.decode("utf-8", "replace") if self.record.key else "-"


@dataclass
class Failure:
    """Work that goes to the dead-letter topic, with why, where and after how many tries."""

    work: Work
    error: BaseException
    stage: str
    attempts: int = 1


class Prepare(ProcessingStep[Work]):
    """Parse the job, fetch and verify the media, decode it once (CPU threads)."""

    def __init__(self, suite: SuiteLike, next_step: ProcessingStep[Work], dead_letters: ProcessingStep[Failure], *,
                 threads: int, max_bytes: int, retry_attempts: int, backoff: Backoff,
                 scratch: str | Path | None = None, capacity: int | None = None) -> None:
        self.suite = suite
        self.next_step = next_step
        self.dead_letters = dead_letters
        self.max_bytes = max_bytes
        self.retry_attempts = retry_attempts
        self.backoff = backoff
        self.scratch = scratch
        self.capacity = capacity or threads * 2
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="vigil-decode")
        self._running: list[tuple[Work, Future[None]]] = []
        self._ready: deque[Work] = deque()

    def submit(self, item: Work) -> None:
        if len(self._running) + len(self._ready) >= self.capacity:
            raise MessageRejected
        with log_context(item.video_uid):
            try:
                item.job = decode(item.record.value, JobMessage)
            except MessageError as exc:
                logger.warning("job at %s/%d@%d is not a valid vigil.job/1: %s", item.record.topic,
                               item.record.partition, item.record.offset, exc)
                self.dead_letters.submit(Failure(item, exc, "parse"))
                return
        self._running.append((item, self._pool.submit(self._prepare, item)))

    def _prepare(self, work: Work) -> None:
        job = work.job
        assert job is not None
        with log_context(job.video_uid):
            work.timings_ms["queue"] = round((time.monotonic() - work.started) * 1000, 3)
            start = time.perf_counter()
            with fetch_media(job.media_uri, job.media_sha256, max_bytes=self.max_bytes, scratch=self.scratch,
                             attempts=self.retry_attempts, backoff_s=self.backoff.initial,
                             backoff_max_s=self.backoff.maximum) as path:
                fetched = time.perf_counter()
                work.timings_ms["fetch"] = round((fetched - start) * 1000, 3)
                STAGE_SECONDS.labels(COMPONENT, "fetch").observe(fetched - start)
                clip, timings = self.suite.prepare(str(path), media_sha256=job.media_sha256)
            for stage, ms in (timings or {}).items():
                STAGE_SECONDS.labels(COMPONENT, stage).observe(ms / 1000)
            work.timings_ms.update(timings or {})
            work.clip = clip
            logger.debug("prepared %s in %.0f ms", job.media_uri, (time.perf_counter() - start) * 1000)

    def poll(self) -> None:
        still: list[tuple[Work, Future[None]]] = []
        for work, future in self._running:
            if not future.done():
                still.append((work, future))
                continue
            exc = future.exception()
            if exc is None:
                self._ready.append(work)
            else:
                self._fail(work, exc)
        self._running = still
        while self._ready:
            try:
                self.next_step.submit(self._ready[0])
            except MessageRejected:
                break
            self._ready.popleft()

    def _fail(self, work: Work, exc: BaseException) -> None:
        with log_context(work.video_uid):
            if isinstance(exc, MediaUnavailable):
                logger.error("media store unavailable after %d tries: %s", self.retry_attempts, exc)
                self.dead_letters.submit(Failure(work, exc, "fetch", attempts=self.retry_attempts))
            elif is_poison(exc):
                stage = exc.stage if isinstance(exc, PoisonJob) else "decode"
                logger.warning("poison job (%s at %s): %s", type(exc).__name__, stage, exc)
                self.dead_letters.submit(Failure(work, exc, stage))
            else:
                logger.error("unexpected %s while preparing: %s", type(exc).__name__, exc, exc_info=exc)
                self.dead_letters.submit(Failure(work, exc, "decode"))

    def pending(self) -> int:
        return len(self._running) + len(self._ready)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class Analyse(ProcessingStep[Work]):
    """Batch decoded clips across videos and run the suite's device step in one thread."""

    def __init__(self, suite: SuiteLike, next_step: ProcessingStep[Work], dead_letters: ProcessingStep[Failure], *,
                 policy: BatchPolicy, max_buffered_bytes: int | None = None) -> None:
        self.suite = suite
        self.next_step = next_step
        self.dead_letters = dead_letters
        self.policy = policy
        self.max_buffered_bytes = max_buffered_bytes
        self.buffered_bytes = 0  # decoded frames and audio waiting or on the device
        self.flushing = False
        self._waiting: deque[tuple[float, Work]] = deque()
        self._device = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vigil-device")
        self._running: Future[list[tuple[Work, Any, BaseException | None]]] | None = None
        self._running_size = 0
        self._done: deque[Work] = deque()
        self.batches: list[int] = []  # sizes of the batches run, newest last (bounded)

    def submit(self, item: Work) -> None:
        if self.policy.full(len(self._waiting)):
            raise MessageRejected
        size = _clip_bytes(item.clip)
        if (self.max_buffered_bytes is not None and self.pending()
                and self.buffered_bytes + size > self.max_buffered_bytes):
            raise MessageRejected  # long videos: bound the memory, not only the count
        self.buffered_bytes += size
        self._waiting.append((time.monotonic(), item))

    def _run(self, works: list[Work]) -> list[tuple[Work, Any, BaseException | None]]:
        start = time.perf_counter()
        try:
            results = self.suite.analyse([w.clip for w in works])
            if len(results) != len(works):
                raise RuntimeError(f"suite returned {len(results)} results for {len(works)} clips")
            out: list[tuple[Work, Any, BaseException | None]] = [(w, r, None) for w, r in zip(works, results)]
        except Exception as batch_exc:  # noqa: BLE001 - find the clip that broke the batch
            logger.warning("batch of %d failed (%s: %s); running its clips one by one", len(works),
                           type(batch_exc).__name__, batch_exc)
            out = []
            for work in works:
                with log_context(work.video_uid):
                    try:
                        out.append((work, self.suite.analyse([work.clip])[0], None))
                    except Exception as exc:  # noqa: BLE001
                        logger.error("analysis failed: %s", exc, exc_info=exc)
                        out.append((work, None, exc))
        elapsed = time.perf_counter() - start
        STAGE_SECONDS.labels(COMPONENT, "analyse").observe(elapsed)
        for work, _, _ in out:
            work.timings_ms["analyse_batch"] = round(elapsed * 1000, 3)
        return out

    def poll(self) -> None:
        if self._running is not None and self._running.done():
            outcome = self._running.result()
            self._running = None
            self._running_size = 0
            for work, result, exc in outcome:
                self.buffered_bytes -= _clip_bytes(work.clip)
                if exc is not None:
                    self.dead_letters.submit(Failure(work, AnalysisFailed(f"{type(exc).__name__}: {exc}",
                                                                          stage="analyse"), "analyse"))
                    continue
                work.result = result
                duration = getattr(work.clip, "duration_s", 0.0) or 0.0
                VIDEO_SECONDS.labels(COMPONENT).inc(duration)
                self._done.append(work)
        while self._done:
            try:
                self.next_step.submit(self._done[0])
            except MessageRejected:
                break
            self._done.popleft()
        if self._running is None and not self._done and self._waiting:
            age = time.monotonic() - self._waiting[0][0]
            if self.policy.ready(len(self._waiting), age, flushing=self.flushing):
                batch = [self._waiting.popleft()[1] for _ in range(self.policy.take(len(self._waiting)))]
                BATCH_SIZE.labels(COMPONENT).observe(len(batch))
                self.batches = (self.batches + [len(batch)])[-1000:]
                self._running_size = len(batch)
                self._running = self._device.submit(self._run, batch)

    def pending(self) -> int:
        return len(self._waiting) + self._running_size + len(self._done)

    def join(self, timeout: float | None = None) -> None:
        self.flushing = True
        super().join(timeout)

    def close(self) -> None:
        self._device.shutdown(wait=False, cancel_futures=True)


def _clip_bytes(clip: Any) -> int:
    """Memory held by a decoded clip's frames and audio (0 for anything without them)."""
    total = 0
    for name in ("frames", "audio"):
        array = getattr(clip, name, None)
        total += int(getattr(array, "nbytes", 0) or 0)
    return total


class _Send(ProcessingStep[Any]):
    """Send one message per item with acks=all; hand the work to ``next_step`` once the broker acknowledged it.

    A failed send is retried with exponential backoff for as long as it takes: the offset is not committed until
    it succeeds, so a broker outage delays work but loses none.
    """

    stage = "produce"

    def __init__(self, producer: Any, topic: str, next_step: ProcessingStep[Work], *, backoff: Backoff) -> None:
        self.producer = producer
        self.topic = topic
        self.next_step = next_step
        self.backoff = backoff
        # [item, work, key, value, future | None, attempt, retry_at]
        self._inflight: deque[list[Any]] = deque()

    def _payload(self, item: Any) -> tuple[Work, bytes | None, bytes]:
        raise NotImplementedError

    def _acked(self, item: Any, work: Work) -> None:
        """Called once the broker acknowledged the message of ``item``."""

    def submit(self, item: Any) -> None:
        work, key, value = self._payload(item)
        entry = [item, work, key, value, None, 0, 0.0]
        self._send(entry)
        self._inflight.append(entry)

    def _send(self, entry: list[Any]) -> None:
        entry[5] += 1
        try:
            entry[4] = self.producer.send(self.topic, key=entry[2], value=entry[3])
        except Exception as exc:  # noqa: BLE001 - KafkaTimeoutError and friends: retry later
            entry[4] = None
            entry[6] = time.monotonic() + self.backoff.delay(entry[5])
            ERRORS.labels(COMPONENT, type(exc).__name__, self.stage).inc()
            logger.warning("send to %s failed (try %d): %s", self.topic, entry[5], exc)

    def poll(self) -> None:
        now = time.monotonic()
        for entry in list(self._inflight):
            future = entry[4]
            if future is None:
                if now >= entry[6]:
                    self._send(entry)
                continue
            if not future.is_done:
                continue
            if future.failed():
                ERRORS.labels(COMPONENT, type(future.exception).__name__, self.stage).inc()
                logger.warning("broker did not acknowledge a message to %s (try %d): %s", self.topic, entry[5],
                               future.exception)
                entry[4] = None
                entry[6] = now + self.backoff.delay(entry[5])
                continue
            self._inflight.remove(entry)
            with log_context(entry[1].video_uid):
                self._acked(entry[0], entry[1])
            self.next_step.submit(entry[1])

    def pending(self) -> int:
        return len(self._inflight)


def result_message(item: Work, suite_version: str) -> ResultMessage:
    """The ``vigil.result/1`` of an analysed job."""
    job = item.job
    assert job is not None
    return item.result.to_message(video_uid=job.video_uid, suite_version=suite_version, source=job.source,
                                  extra_timings=dict(item.timings_ms))


class Evidence(ProcessingStep[Work]):
    """Render the evidence plots of each result into the media store, beside the media, on CPU threads so the main
    loop and the device never wait for matplotlib; their URIs go into ``evidence_uris``. A plot that cannot be
    written costs the job nothing but the link (``attach_evidence`` logs it)."""

    def __init__(self, store: Any, next_step: ProcessingStep[Work], dead_letters: ProcessingStep[Failure], *,
                 suite_version: str, threads: int = 1, capacity: int = 16) -> None:
        self.store = store
        self.next_step = next_step
        self.dead_letters = dead_letters
        self.suite_version = suite_version
        self.capacity = capacity
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="vigil-evidence")
        self._running: deque[tuple[Work, Future[ResultMessage]]] = deque()

    def submit(self, item: Work) -> None:
        if len(self._running) >= self.capacity:
            raise MessageRejected
        self._running.append((item, self._pool.submit(self._render, item)))

    def _render(self, item: Work) -> ResultMessage:
        from .._evidence import attach_evidence

        with log_context(item.video_uid):
            start = time.perf_counter()
            message = attach_evidence(result_message(item, self.suite_version), self.store)
            STAGE_SECONDS.labels(COMPONENT, "evidence").observe(time.perf_counter() - start)
            return message

    def poll(self) -> None:
        # in order, so results leave in the order their jobs arrived
        while self._running and self._running[0][1].done():
            item, future = self._running[0]
            exc = future.exception()
            if exc is None:
                item.result = future.result()
            else:
                # the result itself could not be built: the same failure ProduceResult would report
                logger.error("result of %s cannot be written as vigil.result/1: %s", item.video_uid, exc)
                self._running.popleft()
                self.dead_letters.submit(Failure(item, exc, "result"))
                continue
            try:
                self.next_step.submit(item)
            except MessageRejected:
                break
            self._running.popleft()

    def pending(self) -> int:
        return len(self._running)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class ProduceResult(_Send):
    """``vigil.result/1`` per analysed job, keyed by video_uid."""

    stage = "produce"

    def __init__(self, producer: Any, topic: str, next_step: ProcessingStep[Work],
                 dead_letters: ProcessingStep[Failure], *, suite_version: str, backoff: Backoff) -> None:
        super().__init__(producer, topic, next_step, backoff=backoff)
        self.suite_version = suite_version
        self.dead_letters = dead_letters

    def submit(self, item: Work) -> None:
        if not isinstance(item.result, ResultMessage):  # the Evidence step may have built it already
            try:
                item.result = result_message(item, self.suite_version)
            except Exception as exc:  # noqa: BLE001 - a result that cannot be expressed is this job's problem
                logger.error("result of %s cannot be written as vigil.result/1: %s", item.video_uid, exc)
                self.dead_letters.submit(Failure(item, exc, "result"))
                return
        item.clip = None  # frames are no longer needed
        super().submit(item)

    def _payload(self, item: Work) -> tuple[Work, bytes | None, bytes]:
        return item, item.job.video_uid.encode(), encode(item.result)  # type: ignore[union-attr]

    def _acked(self, item: Work, work: Work) -> None:
        JOBS.labels(COMPONENT, "ok").inc()
        STAGE_SECONDS.labels(COMPONENT, "total").observe(time.monotonic() - work.started)
        fused = work.result.fused if isinstance(work.result, ResultMessage) else None
        logger.info("scored: %s (%s)", fused.score if fused else None, fused.verdict if fused else "?")


class DeadLetters(_Send):
    """``vigil.dlq/1`` with the original message, error class and message, stage and attempts."""

    stage = "dead_letter"

    def _payload(self, item: Failure) -> tuple[Work, bytes | None, bytes]:
        record = item.work.record
        letter = DeadLetter.wrap(record.value, topic=record.topic, error=item.error, stage=item.stage,
                                 attempts=item.attempts, partition=record.partition, offset=record.offset,
                                 key=record.key)
        return item.work, record.key, encode(letter)

    def submit(self, item: Failure) -> None:
        ERRORS.labels(COMPONENT, type(item.error).__name__, item.stage).inc()
        item.work.clip = None
        super().submit(item)

    def _acked(self, item: Failure, work: Work) -> None:
        JOBS.labels(COMPONENT, "dead_letter").inc()
        logger.info("sent to %s: %s at %s", self.topic, type(item.error).__name__, item.stage)


class Commit(ProcessingStep[Work]):
    """The last step: mark the offset done; commit each partition's contiguous done prefix."""

    def __init__(self, consumer: Any, tracker: OffsetTracker, *, interval_s: float = 0.2) -> None:
        self.consumer = consumer
        self.tracker = tracker
        self.interval_s = interval_s
        self._last = 0.0
        self._dirty = False

    def submit(self, item: Work) -> None:
        record = item.record
        if self.tracker.done(record.tp, record.offset, record.generation):
            self._dirty = True
        else:
            logger.info("not committing %s@%d: the partition was reassigned", record.tp, record.offset)

    def poll(self) -> None:
        if self._dirty and time.monotonic() - self._last >= self.interval_s:
            self.commit_now()

    def commit_now(self) -> None:
        with timed(COMPONENT, "commit"):
            commit_offsets(self.consumer, self.tracker)
        self._dirty = False
        self._last = time.monotonic()

    def pending(self) -> int:
        return 1 if self._dirty else 0

    def join(self, timeout: float | None = None) -> None:
        if self._dirty:
            self.commit_now()
