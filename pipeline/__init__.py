"""Vigil's pipeline: settings, Kafka and Elasticsearch clients, message schemas, and the jobs built on them.

The Airflow side (DAGs, crawl, spread, alerts) and the worker side (worker, sink) both import from here. The names
below are loaded on first use (PEP 562), so ``import pipeline`` (every Airflow process does: the cluster policy) or
``from pipeline import Settings`` loads neither the Kafka nor the Elasticsearch client until something asks for one.
The contract both sides share is ``pipeline.contracts``; the face DAG files import is ``pipeline.airflow``. Nothing
the Airflow side imports reaches ``detectors`` (``.importlinter`` checks it, imports inside functions included).
"""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from .lazy import lazy_exports

try:
    __version__ = version("vigil")
except PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0.0.0+source"

#: public name -> the module that defines it (imported on first use)
_EXPORTS: dict[str, str] = {
    # settings
    **dict.fromkeys(("Settings", "get_settings", "load_settings"), "._settings"),
    # errors
    **dict.fromkeys(("VigilError", "ConfigError", "ServiceError", "ServiceUnavailable", "AuthenticationFailed",
                     "SetupMissing", "MessageError"), "._exceptions"),
    # clients
    **dict.fromkeys(("kafka_config", "make_producer", "make_consumer", "make_admin", "TopicChange", "ensure_topics",
                     "check_topics"), "._kafka"),
    **dict.fromkeys(("make_es_client", "es_errors", "IndexChange", "apply_templates", "check_templates"),
                    "._elasticsearch"),
    # setup and status
    **dict.fromkeys(("SetupReport", "run_setup", "Check", "run_status"), "._setup"),
    # messages
    **dict.fromkeys(("JOB_SCHEMA", "RESULT_SCHEMA", "DLQ_SCHEMA", "VERDICTS", "SourceMetadata", "JobMessage",
                     "TimelineWindow", "DetectorOutput", "FusedScore", "Segment", "RANKS", "ResultMessage",
                     "DeadLetter", "encode", "decode"), "._messages"),
}

__all__ = ["__version__", *_EXPORTS]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


if TYPE_CHECKING:  # what type checkers and IDEs see
    from ._elasticsearch import IndexChange, apply_templates, check_templates, es_errors, make_es_client
    from ._exceptions import (AuthenticationFailed, ConfigError, MessageError, ServiceError, ServiceUnavailable,
                              SetupMissing, VigilError)
    from ._kafka import (TopicChange, check_topics, ensure_topics, kafka_config, make_admin, make_consumer,
                         make_producer)
    from ._messages import (DLQ_SCHEMA, JOB_SCHEMA, RANKS, RESULT_SCHEMA, VERDICTS, DeadLetter, DetectorOutput,
                            FusedScore, JobMessage, ResultMessage, Segment, SourceMetadata, TimelineWindow, decode,
                            encode)
    from ._settings import Settings, get_settings, load_settings
    from ._setup import Check, SetupReport, run_setup, run_status
