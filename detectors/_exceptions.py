"""Errors of the detector side. Media errors are poison input: a worker sends the job to the dead-letter topic::

    VigilError (pipeline)
    ├── MediaError                the file cannot be analysed (carries ``source=``)
    │   ├── NotAVideo             no video stream: a text file, an image, an audio-only file
    │   ├── CorruptMedia          the container or streams cannot be decoded (zero bytes, truncated, garbage)
    │   └── MediaTooLarge         over a limit on duration, frame count or size
    └── ModelError                a detector's model cannot be loaded (missing checkpoint, bad config)
"""
from __future__ import annotations

from pipeline import VigilError

__all__ = ["MediaError", "NotAVideo", "CorruptMedia", "MediaTooLarge", "ModelError"]


class MediaError(VigilError):
    """The file cannot be analysed; ``source`` names it."""

    def __init__(self, message: str, *, source: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source


class NotAVideo(MediaError):
    """The file has no video stream (text, image, audio only)."""


class CorruptMedia(MediaError):
    """The container or its streams cannot be decoded: zero bytes, truncated, or not media at all."""


class MediaTooLarge(MediaError):
    """The file is over a configured limit (duration, frames, bytes)."""


class ModelError(VigilError):
    """A detector's model cannot be loaded; the message names the setting to fix."""
