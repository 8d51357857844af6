"""Metrics and structured logs of the long-running consumers (worker, sink).

Metrics (Prometheus, one endpoint per process on ``metrics_port``; 0 = off), labelled by ``component``::

    vigil_jobs_total{component, outcome}           messages finished: ok, dead_letter
    vigil_video_seconds_total{component}           seconds of video analysed
    vigil_batch_size{component}                    items per device step / bulk request (histogram)
    vigil_stage_seconds{component, stage}          time per stage: fetch, decode, faces, analyse, produce, bulk …
    vigil_errors_total{component, error_class, stage}
    vigil_consumer_lag{component, topic, partition}  messages behind the end of the partition

Logs: every line carries the ``video_uid`` being worked on (``-`` when none), set with ``log_context``; the
context is a contextvar, so it follows the code into the thread that runs a job.
"""
from __future__ import annotations

import contextvars
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, start_http_server

__all__ = ["JOBS", "VIDEO_SECONDS", "BATCH_SIZE", "STAGE_SECONDS", "ERRORS", "WEBHOOKS", "CONSUMER_LAG", "start_metrics",
           "log_context", "configure_logging", "timed", "current_video_uid"]

JOBS = Counter("vigil_jobs", "Messages finished, by outcome", ["component", "outcome"])
VIDEO_SECONDS = Counter("vigil_video_seconds", "Seconds of video analysed", ["component"])
BATCH_SIZE = Histogram("vigil_batch_size", "Items per device step or bulk request", ["component"],
                       buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512))
STAGE_SECONDS = Histogram("vigil_stage_seconds", "Time spent per stage", ["component", "stage"],
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
ERRORS = Counter("vigil_errors", "Errors, by class and stage", ["component", "error_class", "stage"])
WEBHOOKS = Counter("vigil_webhooks", "Webhook posts (a submission's, once scored), by outcome",
                   ["component", "outcome"])
CONSUMER_LAG = Gauge("vigil_consumer_lag", "Messages behind the end of the partition",
                     ["component", "topic", "partition"])

_video_uid: contextvars.ContextVar[str] = contextvars.ContextVar("video_uid", default="-")
_metrics_started: set[int] = set()


def start_metrics(port: int) -> bool:
    """Serve /metrics on ``port`` (0 = off); safe to call twice in one process."""
    if port <= 0 or port in _metrics_started:
        return False
    start_http_server(port)
    _metrics_started.add(port)
    return True


def current_video_uid() -> str:
    return _video_uid.get()


@contextmanager
def log_context(video_uid: str | None) -> Iterator[None]:
    """Log lines inside carry ``video_uid``."""
    token = _video_uid.set(video_uid or "-")
    try:
        yield
    finally:
        _video_uid.reset(token)


@contextmanager
def timed(component: str, stage: str, timings_ms: dict[str, float] | None = None) -> Iterator[None]:
    """Observe the block's duration in ``vigil_stage_seconds`` (and in ``timings_ms[stage]`` when given)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - start
        STAGE_SECONDS.labels(component, stage).observe(elapsed)
        if timings_ms is not None:
            timings_ms[stage] = round(elapsed * 1000, 3)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "video_uid"):
            record.video_uid = _video_uid.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, video_uid, message (and the exception, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "@timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "video_uid": getattr(record, "video_uid", "-"),
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(video_uid)s] %(message)s"


def configure_logging(log_format: str = "text", level: int | None = None) -> None:
    """Put the video_uid filter and the chosen format on the root logger's handlers (adding one if none)."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    if level is not None:
        root.setLevel(level)
    for noisy in ("kafka", "elastic_transport"):  # their INFO lines are per connection, not per job
        if logging.getLogger(noisy).level == logging.NOTSET:
            logging.getLogger(noisy).setLevel(logging.WARNING)
    formatter: logging.Formatter = JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    for handler in root.handlers:
        if not any(isinstance(f, _ContextFilter) for f in handler.filters):
            handler.addFilter(_ContextFilter())
        handler.setFormatter(formatter)
