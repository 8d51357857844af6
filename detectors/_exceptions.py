"""Errors of the detector side. Media errors are poison input: a worker sends the job to the dead-letter topic::

    VigilError (pipeline)
    ├── MediaError                the file cannot be analysed (carries ``source=``)
    │   ├── NotAVideo             no video stream: a text file, an image, an audio-only file
    │   ├── CorruptMedia          the container or streams cannot be decoded (zero bytes, truncated, garbage)
    │   └── MediaTooLarge         over a limit on duration, frame count or size
    ├── ModelError                a detector's model cannot be loaded (missing checkpoint, bad config)
    └── DetectorUnavailable       a detector failed in a way that may clear: device out of memory, CUDA or driver
                                  error, a timeout, a model server away. Never a result: the batch is retried,
                                  the job goes back or, after the retries, to the dead-letter topic.

``is_transient(exc)`` tells a failure that may clear from one that is this clip's (a permanent error: that
detector's result is ``failed``, the other detectors' results stand).
"""
from __future__ import annotations

from pipeline import VigilError

__all__ = ["MediaError", "NotAVideo", "CorruptMedia", "MediaTooLarge", "ModelError", "DetectorUnavailable",
           "is_transient"]


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


class DetectorUnavailable(VigilError):
    """A detector failed in a way that may clear (device out of memory, CUDA/driver error, timeout); ``detector``
    names it, ``__cause__`` is the original error."""

    def __init__(self, message: str, *, detector: str, batch_size: int = 1) -> None:
        super().__init__(message)
        self.detector = detector
        self.batch_size = batch_size


# words of CUDA, cuDNN, cuBLAS, NCCL and driver errors (torch raises them as RuntimeError or AcceleratorError)
_DEVICE_WORDS = ("out of memory", "cuda error", "cudnn", "cublas", "cufft", "cusolver", "nccl", "cuda driver",
                 "driver shutting down", "device-side assert", "no cuda gpus are available", "hip error",
                 "mps backend out of memory", "accelerator")


def is_transient(exc: BaseException) -> bool:
    """True for failures that may clear on a retry: device out of memory, CUDA/driver errors, timeouts, a model
    server that is away. Bad input (a clip the detector cannot handle) is permanent."""
    import torch

    from pipeline import ServiceUnavailable

    if isinstance(exc, DetectorUnavailable | ServiceUnavailable | TimeoutError | ConnectionError):
        return True
    oom = tuple(t for t in (getattr(torch, "OutOfMemoryError", None), getattr(torch.cuda, "OutOfMemoryError", None),
                            getattr(torch, "AcceleratorError", None)) if isinstance(t, type))
    if oom and isinstance(exc, oom):
        return True
    if isinstance(exc, RuntimeError | MemoryError):
        text = str(exc).lower()
        return isinstance(exc, MemoryError) or any(word in text for word in _DEVICE_WORDS)
    return False
