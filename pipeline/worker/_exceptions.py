"""Errors of the worker. Poison input goes to the dead-letter topic at once; transient errors are retried::

    VigilError (pipeline)
    ├── PoisonJob                 this job can never succeed: send it to the DLQ now (carries ``stage=``)
    │   ├── MediaMissing          the media URI names nothing in the store
    │   ├── ChecksumMismatch      the file's sha256 differs from the job's media_sha256
    │   ├── MediaOverCap          the file is larger than max_download_mb
    │   └── AnalysisFailed        the detector suite failed on this clip alone
    └── ServiceUnavailable (pipeline)
        └── MediaUnavailable      the media store could not be reached: retry with backoff

``MessageError`` (pipeline) and ``MediaError`` (detectors: not a video, corrupt, over a cap) are poison too.
"""
from __future__ import annotations

from pipeline._exceptions import MessageError, ServiceUnavailable, VigilError

__all__ = ["PoisonJob", "MediaMissing", "ChecksumMismatch", "MediaOverCap", "AnalysisFailed", "MediaUnavailable",
           "is_poison"]


class PoisonJob(VigilError):
    """A job that can never succeed; ``stage`` says where it failed."""

    def __init__(self, message: str, *, stage: str = "fetch") -> None:
        super().__init__(message)
        self.stage = stage


class MediaMissing(PoisonJob):
    """The media URI names nothing in the store."""


class ChecksumMismatch(PoisonJob):
    """The file's sha256 differs from the job's ``media_sha256``."""


class MediaOverCap(PoisonJob):
    """The file is larger than ``max_download_mb``."""


class AnalysisFailed(PoisonJob):
    """The detector suite failed on this clip when run on its own."""


class MediaUnavailable(ServiceUnavailable):
    """The media store could not be reached (network, permissions of a remote store): worth retrying."""

    def __init__(self, message: str) -> None:
        super().__init__(message, service="media-store")


def is_poison(exc: BaseException) -> bool:
    """True for errors that no retry can fix: bad message, bad media, checksum, caps."""
    if isinstance(exc, (PoisonJob, MessageError)):
        return True
    try:
        from detectors import MediaError
    except ImportError:  # pragma: no cover - the worker environment always has detectors
        return False
    return isinstance(exc, MediaError)
