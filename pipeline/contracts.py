"""The contract both sides share: settings, errors, message schemas, the media store and shared constants.

Detectors, the worker, the sink, the crawl and the DAGs' tasks all speak in these terms; other packages import
them from here, never from ``pipeline``'s private modules. Importing this module loads no Kafka or Elasticsearch
client and nothing of ``detectors``.
"""
from __future__ import annotations

from ._exceptions import (
    AuthenticationFailed,
    ConfigError,
    MessageError,
    ServiceError,
    ServiceUnavailable,
    SetupMissing,
    VigilError,
)
from ._media_store import MediaStore, open_media, sha256_file
from ._messages import (
    DLQ_SCHEMA,
    FLAG_THRESHOLD,
    JOB_SCHEMA,
    RANKS,
    RESULT_SCHEMA,
    VERDICTS,
    DeadLetter,
    DetectorOutput,
    FusedScore,
    JobMessage,
    ResultMessage,
    Segment,
    SourceMetadata,
    TimelineWindow,
    decode,
    encode,
)
from ._settings import Settings, get_settings, load_settings

__all__ = [
    "Settings", "get_settings", "load_settings",
    "VigilError", "ConfigError", "ServiceError", "ServiceUnavailable", "AuthenticationFailed", "SetupMissing",
    "MessageError",
    "MediaStore", "open_media", "sha256_file",
    "JOB_SCHEMA", "RESULT_SCHEMA", "DLQ_SCHEMA", "VERDICTS", "FLAG_THRESHOLD", "RANKS", "SourceMetadata", "JobMessage",
    "TimelineWindow", "DetectorOutput", "FusedScore", "Segment", "ResultMessage", "DeadLetter", "encode", "decode",
]
