"""The worker's own processing steps; the generic ones (produce, dead letters, commit) come from pipeline.consume::

    Prepare ──▶ Analyse ──▶ Keyframes ──▶ ProduceResult ──▶ Commit
       │           │  └──▶ Requeue (job, attempt + 1) ──────▶ ▲
       └───────────┴──────────┴──▶ DeadLetters ──────────────┘   poison input / exhausted retries

Prepare parses the job, fetches and verifies the media and decodes it (``suite.prepare``) in a small thread pool.
Analyse batches decoded clips across videos and runs ``suite.analyse`` in one device thread. A failure that may
clear (``DetectorUnavailable``: out of memory, CUDA/driver error, timeout) is never turned into a result: the batch
is split in halves and retried after a backoff with jitter, down to one clip; a clip that still fails goes back to
``vigil.jobs`` as the same job with ``attempt + 1`` (Requeue), or, once ``attempt`` reached ``retry_attempts``, to
the dead-letter topic with ``stage=analyse``. Keyframes stores a few face crops beside the media (evidence as
data; plots are drawn where they are viewed) and builds the result message off the main loop. Every step is
bounded: a full step raises MessageRejected and the consumer pauses.
"""
from __future__ import annotations

import logging
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pipeline._exceptions import MessageError
from pipeline._messages import JobMessage, ResultMessage, decode, encode
from pipeline._observe import BATCH_SIZE, ERRORS, JOBS, STAGE_SECONDS, VIDEO_SECONDS, log_context
from pipeline.consume import Backoff, Envelope, Failure, MessageRejected, OutgoingMessage, ProcessingStep

from ._batching import BatchPolicy
from ._exceptions import AnalysisFailed, MediaUnavailable, PoisonJob, is_poison
from ._media import fetch_media

__all__ = ["SuiteLike", "Work", "Prepare", "Analyse", "Keyframes", "result_message", "result_out", "requeue_out",
           "COMPONENT"]

logger = logging.getLogger(__name__)

COMPONENT = "worker"


class SuiteLike(Protocol):
    """What the worker needs of a detector suite (``detectors.Suite``)."""

    version: str

    def prepare(self, source: Any, *, media_sha256: str | None = None) -> tuple[Any, dict[str, float]]: ...

    def analyse(self, clips: list[Any]) -> list[Any]: ...


@dataclass
class Work(Envelope):
    """One job on its way through the steps: the parsed job, the decoded clip, the suite's result."""

    job: JobMessage | None = None
    clip: Any = None
    result: Any = None
    message: ResultMessage | None = None
    transient_failures: int = 0
    last_error: BaseException | None = field(default=None, repr=False)

    @property
    def video_uid(self) -> str:
        if self.job is not None:
            return self.job.video_uid
        return super().video_uid

    def release(self) -> None:
        self.clip = None


def _transient(exc: BaseException) -> bool:
    try:
        from detectors import is_transient
    except ImportError:  # pragma: no cover - the worker environment always has detectors
        return False
    return is_transient(exc)


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
    """Batch decoded clips across videos and run the suite's device step in one thread; retry what may clear."""

    def __init__(self, suite: SuiteLike, next_step: ProcessingStep[Work], dead_letters: ProcessingStep[Failure],
                 requeue: ProcessingStep[Work], *, policy: BatchPolicy, retry_attempts: int, backoff: Backoff,
                 local_tries: int = 3, max_buffered_bytes: int | None = None) -> None:
        self.suite = suite
        self.next_step = next_step
        self.dead_letters = dead_letters
        self.requeue = requeue
        self.policy = policy
        self.retry_attempts = retry_attempts
        self.backoff = backoff
        self.local_tries = local_tries  # transient failures of one clip in this worker before it is requeued
        self.max_buffered_bytes = max_buffered_bytes
        self.buffered_bytes = 0  # decoded frames and audio waiting, retrying or on the device
        self.flushing = False
        self._waiting: deque[tuple[float, Work]] = deque()
        self._retries: list[tuple[float, list[Work]]] = []  # (not before, batch) after a transient failure
        self._device = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vigil-device")
        self._running: Future[tuple[list[tuple[Work, Any, BaseException | None]], BaseException | None]] | None = None
        self._running_size = 0
        self._running_batch: list[Work] = []
        self._done: deque[Work] = deque()
        self._leaving: deque[tuple[ProcessingStep[Any], Any]] = deque()  # to the requeue or dead-letter step
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

    def _run(self, works: list[Work]) -> tuple[list[tuple[Work, Any, BaseException | None]], BaseException | None]:
        """(per-work outcomes, None), or ([], error) when the whole batch failed in a way that may clear."""
        start = time.perf_counter()
        try:
            results = self.suite.analyse([w.clip for w in works])
            if len(results) != len(works):
                raise RuntimeError(f"suite returned {len(results)} results for {len(works)} clips")
            out: list[tuple[Work, Any, BaseException | None]] = [(w, r, None) for w, r in zip(works, results)]
        except Exception as batch_exc:  # noqa: BLE001 - transient: retried; anything else: find the clip
            if _transient(batch_exc):
                ERRORS.labels(COMPONENT, type(batch_exc).__name__, "analyse").inc()
                logger.warning("batch of %d failed in a way that may clear (%s); will split and retry", len(works),
                               batch_exc)
                return [], batch_exc
            logger.warning("batch of %d failed (%s: %s); running its clips one by one", len(works),
                           type(batch_exc).__name__, batch_exc)
            out = []
            for work in works:
                with log_context(work.video_uid):
                    try:
                        out.append((work, self.suite.analyse([work.clip])[0], None))
                    except Exception as exc:  # noqa: BLE001
                        logger.error("analysis failed: %s", exc, exc_info=not _transient(exc))
                        out.append((work, None, exc))
        elapsed = time.perf_counter() - start
        STAGE_SECONDS.labels(COMPONENT, "analyse").observe(elapsed)
        for work, _, _ in out:
            work.timings_ms["analyse_batch"] = round(elapsed * 1000, 3)
        return out, None

    def _settle(self, outcome: list[tuple[Work, Any, BaseException | None]], batch_error: BaseException | None,
                batch: list[Work]) -> None:
        if batch_error is not None:
            self._retry(batch, batch_error)
            return
        for work, result, exc in outcome:
            if exc is None:
                self.buffered_bytes -= _clip_bytes(work.clip)
                work.result = result
                VIDEO_SECONDS.labels(COMPONENT).inc(getattr(work.clip, "duration_s", 0.0) or 0.0)
                self._done.append(work)
            elif _transient(exc):
                self._retry([work], exc)
            else:
                self._leave(work, Failure(work, AnalysisFailed(f"{type(exc).__name__}: {exc}", stage="analyse"),
                                          "analyse"))

    def _retry(self, works: list[Work], error: BaseException) -> None:
        """Split a batch that failed in a way that may clear and try again after a backoff; one clip that keeps
        failing leaves this worker: requeued as attempt + 1, or dead-lettered once its attempts are spent."""
        for work in works:
            work.last_error = error
            if len(works) == 1:  # failures in a larger batch are what the split is for; they do not count
                work.transient_failures += 1
        tries = max(1, max(w.transient_failures for w in works)) + (len(works) > 1)
        not_before = time.monotonic() + self.backoff.delay(tries)
        if len(works) > 1:
            half = (len(works) + 1) // 2
            self._retries += [(not_before, works[:half]), (not_before, works[half:])]
            return
        work = works[0]
        if work.transient_failures < self.local_tries:
            self._retries.append((not_before, [work]))
            return
        attempt = work.job.attempt if work.job is not None else 1
        if attempt >= self.retry_attempts:
            logger.error("analysis kept failing (%s); attempt %d of %d: to the dead-letter topic", error, attempt,
                         self.retry_attempts)
            self._leave(work, Failure(work, error, "analyse", attempts=attempt))
        else:
            logger.warning("analysis kept failing (%s); handing the job back as attempt %d", error, attempt + 1)
            self._leave(work, work, to=self.requeue)

    def _leave(self, work: Work, item: Any, *, to: ProcessingStep[Any] | None = None) -> None:
        self.buffered_bytes -= _clip_bytes(work.clip)
        self._leaving.append((to or self.dead_letters, item))

    def poll(self) -> None:
        if self._running is not None and self._running.done():
            outcome, batch_error = self._running.result()
            batch, self._running, self._running_size = self._running_batch, None, 0
            self._settle(outcome, batch_error, batch)
        while self._leaving:
            step, item = self._leaving[0]
            try:
                step.submit(item)
            except MessageRejected:
                break
            self._leaving.popleft()
        while self._done:
            try:
                self.next_step.submit(self._done[0])
            except MessageRejected:
                break
            self._done.popleft()
        if self._running is not None or self._done:
            return
        now = time.monotonic()
        ready = [i for i, (not_before, _) in enumerate(self._retries) if not_before <= now]
        if ready:
            batch = self._retries.pop(ready[0])[1]
        elif self._waiting and self.policy.ready(len(self._waiting), now - self._waiting[0][0],
                                                 flushing=self.flushing):
            batch = [self._waiting.popleft()[1] for _ in range(self.policy.take(len(self._waiting)))]
        else:
            return
        BATCH_SIZE.labels(COMPONENT).observe(len(batch))
        self.batches = (self.batches + [len(batch)])[-1000:]
        self._running_size = len(batch)
        self._running_batch = batch
        self._running = self._device.submit(self._run, batch)

    def pending(self) -> int:
        return (len(self._waiting) + self._running_size + len(self._done) + len(self._leaving)
                + sum(len(batch) for _, batch in self._retries))

    def join(self, timeout: float | None = None) -> None:
        self.flushing = True
        super().join(timeout)

    def terminate(self) -> None:
        """Drop what waits or retries (uncommitted: redelivered); a batch on the device is left to finish."""
        self._waiting.clear()
        self._retries.clear()
        self._done.clear()
        self._leaving.clear()
        self.close()

    def close(self) -> None:
        self._device.shutdown(wait=False, cancel_futures=True)


def _clip_bytes(clip: Any) -> int:
    """Memory held by a decoded clip's frames and audio (0 for anything without them)."""
    total = 0
    for name in ("frames", "audio"):
        array = getattr(clip, name, None)
        total += int(getattr(array, "nbytes", 0) or 0)
    return total


class Keyframes(ProcessingStep[Work]):
    """Build each result message and store a few face-crop keyframes beside the media (their URIs go into
    ``evidence_uris``) on a CPU thread, in order, so the main loop never waits. A keyframe that cannot be stored
    costs the job nothing but the link."""

    def __init__(self, store: Any, next_step: ProcessingStep[Work], dead_letters: ProcessingStep[Failure], *,
                 suite_version: str, crops: int, capacity: int = 16) -> None:
        self.store = store
        self.next_step = next_step
        self.dead_letters = dead_letters
        self.suite_version = suite_version
        self.crops = crops
        self.capacity = capacity
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vigil-keyframes")
        self._running: deque[tuple[Work, Future[ResultMessage]]] = deque()

    def submit(self, item: Work) -> None:
        if len(self._running) >= self.capacity:
            raise MessageRejected
        self._running.append((item, self._pool.submit(self._build, item)))

    def _build(self, item: Work) -> ResultMessage:
        with log_context(item.video_uid):
            message = result_message(item, self.suite_version)
            if self.crops <= 0 or self.store is None:
                return message
            from ._keyframes import store_face_crops

            start = time.perf_counter()
            try:
                uris = store_face_crops(self.store, item.clip, item.result, media_sha256=message.media_sha256,
                                        suite_version=self.suite_version, n=self.crops)
            except Exception as exc:  # noqa: BLE001 - keyframes are a convenience; the score must not be lost
                logger.warning("no face keyframes for %s: %s", item.video_uid, exc)
                return message
            STAGE_SECONDS.labels(COMPONENT, "keyframes").observe(time.perf_counter() - start)
            return message.model_copy(update={"evidence_uris": [*message.evidence_uris, *uris]}) if uris else message

    def poll(self) -> None:
        # in order, so results leave in the order their jobs arrived
        while self._running and self._running[0][1].done():
            item, future = self._running[0]
            exc = future.exception()
            if exc is not None:
                logger.error("result of %s cannot be written as vigil.result/1: %s", item.video_uid, exc)
                self._running.popleft()
                self.dead_letters.submit(Failure(item, exc, "result"))
                continue
            item.message = future.result()
            try:
                self.next_step.submit(item)
            except MessageRejected:
                break
            self._running.popleft()
            item.release()

    def pending(self) -> int:
        return len(self._running)

    def terminate(self) -> None:
        self._running.clear()
        self.close()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def result_message(item: Work, suite_version: str) -> ResultMessage:
    """The ``vigil.result/1`` of an analysed job."""
    job = item.job
    assert job is not None
    return item.result.to_message(video_uid=job.video_uid, suite_version=suite_version, source=job.source,
                                  extra_timings=dict(item.timings_ms))


def result_out(topic: str) -> Any:
    """What ProduceResult sends for a work item: its result, keyed by video_uid."""
    def message_for(item: Work) -> OutgoingMessage:
        assert item.message is not None and item.job is not None
        return OutgoingMessage(topic, item.job.video_uid.encode(), encode(item.message))
    return message_for


def requeue_out(topic: str) -> Any:
    """What Requeue sends: the same job with ``attempt + 1`` (its original record is committed once acknowledged)."""
    def message_for(item: Work) -> OutgoingMessage:
        assert item.job is not None
        again = item.job.model_copy(update={"attempt": item.job.attempt + 1})
        return OutgoingMessage(topic, item.record.key, encode(again),
                               (("__vigil.requeued_from", f"{item.record.topic}:{item.record.partition}:"
                                                          f"{item.record.offset}".encode()),))
    return message_for


def scored(item: Work, work: Work) -> None:
    """ProduceResult's acknowledgement: count and log the job."""
    JOBS.labels(COMPONENT, "ok").inc()
    STAGE_SECONDS.labels(COMPONENT, "total").observe(time.monotonic() - work.started)
    fused = work.message.fused if work.message is not None else None
    logger.info("scored: %s (%s)", fused.score if fused else None, fused.verdict if fused else "?")


def requeued(item: Work, work: Work) -> None:
    JOBS.labels(COMPONENT, "requeued").inc()
    work.release()
