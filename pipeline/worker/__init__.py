"""Detector workers on Kafka (worker side: imports ``detectors``; never imported by ``pipeline/__init__``).

    consume vigil.jobs → Prepare (fetch, sha256, decode; threads) → Analyse (batched across videos; device thread;
    transient failures split, backed off, requeued) → Keyframes (face crops, result message) → ProduceResult
    (vigil.result/1, acks=all) → Commit (contiguous done prefix per partition), commit last.
    Poison input and exhausted retries → DeadLetters (original bytes, error in headers) → Commit.
"""
from __future__ import annotations

from ._batching import BatchPolicy
from ._exceptions import (
    AnalysisFailed,
    ChecksumMismatch,
    MediaMissing,
    MediaOverCap,
    MediaUnavailable,
    PoisonJob,
    is_poison,
)
from ._keyframes import face_crops, keyframe_times, store_face_crops
from ._media import fetch_media, local_path, sha256_file
from ._steps import Analyse, Keyframes, Prepare, SuiteLike, Work, result_message
from ._worker import Worker, load_suite, run_worker

__all__ = [
    "Worker", "run_worker", "load_suite", "SuiteLike", "BatchPolicy",
    "Prepare", "Analyse", "Keyframes", "Work", "result_message",
    "keyframe_times", "face_crops", "store_face_crops",
    "fetch_media", "local_path", "sha256_file",
    "PoisonJob", "MediaMissing", "ChecksumMismatch", "MediaOverCap", "AnalysisFailed", "MediaUnavailable",
    "is_poison",
]
