"""Detector workers on Kafka (worker side: imports ``detectors``; never imported by ``pipeline/__init__``).

    consume vigil.jobs → Prepare (fetch, sha256, decode; threads) → Analyse (batched across videos; device thread)
    → ProduceResult (vigil.result/1, acks=all) → Commit (contiguous done prefix per partition), commit last.
    Poison input → DeadLetters (vigil.dlq/1) → Commit.
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
from ._media import fetch_media, local_path, sha256_file
from ._steps import Analyse, Commit, DeadLetters, Evidence, Failure, Prepare, ProduceResult, SuiteLike, Work
from ._worker import Worker, load_suite, run_worker

__all__ = [
    "Worker", "run_worker", "load_suite", "SuiteLike", "BatchPolicy",
    "Prepare", "Analyse", "Evidence", "ProduceResult", "DeadLetters", "Commit", "Work", "Failure",
    "fetch_media", "local_path", "sha256_file",
    "PoisonJob", "MediaMissing", "ChecksumMismatch", "MediaOverCap", "AnalysisFailed", "MediaUnavailable",
    "is_poison",
]
