"""Vigil's pipeline: settings, Kafka and Elasticsearch clients, message schemas, and the jobs built on them.

The Airflow side (DAGs, crawl, spread, alerts) and the worker side (worker, sink) both import from here;
nothing in this package imports ``detectors`` at module level, so a DAG environment never needs torch models.
"""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from ._elasticsearch import IndexChange, apply_templates, check_templates, es_errors, make_es_client
from ._exceptions import (
    AuthenticationFailed,
    ConfigError,
    MessageError,
    ServiceError,
    ServiceUnavailable,
    SetupMissing,
    VigilError,
)
from ._kafka import TopicChange, check_topics, ensure_topics, kafka_config, make_admin, make_consumer, make_producer
from ._messages import (
    DLQ_SCHEMA,
    JOB_SCHEMA,
    RESULT_SCHEMA,
    VERDICTS,
    DeadLetter,
    DetectorOutput,
    FusedScore,
    JobMessage,
    RANKS,
    ResultMessage,
    Segment,
    SourceMetadata,
    TimelineWindow,
    decode,
    encode,
)
from ._settings import Settings, get_settings, load_settings
from ._setup import Check, SetupReport, run_setup, run_status

try:
    __version__ = version("vigil")
except PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0.0.0+source"

__all__ = [
    "__version__",
    # settings
    "Settings", "get_settings", "load_settings",
    # errors
    "VigilError", "ConfigError", "ServiceError", "ServiceUnavailable", "AuthenticationFailed", "SetupMissing",
    "MessageError",
    # clients
    "kafka_config", "make_producer", "make_consumer", "make_admin", "make_es_client", "es_errors",
    # setup and status
    "TopicChange", "ensure_topics", "check_topics", "IndexChange", "apply_templates", "check_templates",
    "SetupReport", "run_setup", "Check", "run_status",
    # messages
    "JOB_SCHEMA", "RESULT_SCHEMA", "DLQ_SCHEMA", "VERDICTS", "SourceMetadata", "JobMessage", "TimelineWindow",
    "DetectorOutput", "FusedScore", "Segment", "RANKS", "ResultMessage", "DeadLetter", "encode", "decode",
]
