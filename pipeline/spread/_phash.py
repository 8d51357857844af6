"""Perceptual video hash: pHash (imagehash) of a few frames decoded with PyAV, and the distance between two videos.

A video's hash is a sequence of 64-bit frame pHashes taken at the middle of ``n`` equal slices of its duration, so
copies of the same video sample the same moments whatever their frame rate, size or encoding. pHash keeps the
low frequencies of a 32×32 grey thumbnail, which re-encoding and resizing barely move.

The distance of two sequences is the mean, over the frames of one, of the Hamming distance to the closest frame of
the other within one position either way (a trimmed or re-timed copy shifts by a little); symmetric by taking the
larger of the two directions. Copies are typically a few bits apart, unrelated videos near 32 (of 64).
Stored in ``vigil-videos`` as ``phash``: a list of 16-hex-digit strings.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from .._exceptions import VigilError

__all__ = ["video_phash", "phash_distance", "hex_to_ints", "PhashError", "DEFAULT_FRAMES"]

logger = logging.getLogger(__name__)

DEFAULT_FRAMES = 8
HASH_BITS = 64


class PhashError(VigilError):
    """A media file could not be decoded into frames for hashing."""


def _duration_s(container: Any, stream: Any) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return None


def video_phash(source: str | Path | IO[bytes], frames: int = DEFAULT_FRAMES) -> list[str]:
    """pHashes (16 hex digits each) of ``frames`` frames taken at the middles of equal slices of the video."""
    import av
    import imagehash

    try:
        with av.open(source if not isinstance(source, Path) else str(source), metadata_errors="ignore") as container:
            if not container.streams.video:
                raise PhashError("no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            duration = _duration_s(container, stream)
            if not duration or duration <= 0:
                images = [f.to_image() for f in container.decode(stream)]
                if not images:
                    raise PhashError("no frames")
                picks = [images[min(int((i + 0.5) * len(images) / frames), len(images) - 1)] for i in range(frames)]
                return [str(imagehash.phash(img)) for img in picks]
            targets = [(i + 0.5) * duration / frames for i in range(frames)]
            hashes: list[str] = []
            last_image = None
            target_iter = iter(targets)
            target = next(target_iter)
            for frame in container.decode(stream):
                if frame.time is None:
                    continue
                last_image = frame
                while target is not None and frame.time >= target:
                    hashes.append(str(imagehash.phash(frame.to_image())))
                    target = next(target_iter, None)
                if target is None:
                    break
            while len(hashes) < frames and last_image is not None:  # the stream ended early
                hashes.append(str(imagehash.phash(last_image.to_image())))
            if not hashes:
                raise PhashError("no frames")
            return hashes
    except PhashError:
        raise
    except Exception as exc:  # noqa: BLE001 - PyAV raises many types; all mean "cannot hash this file"
        raise PhashError(f"cannot decode for hashing: {exc}") from exc


def hex_to_ints(hashes: Sequence[str]) -> list[int]:
    return [int(h, 16) for h in hashes]


def _directed(a: Sequence[int], b: Sequence[int]) -> float:
    total = 0
    for i, ha in enumerate(a):
        j = round(i * (len(b) - 1) / max(len(a) - 1, 1)) if len(a) != len(b) else i
        window = b[max(j - 1, 0):j + 2]
        total += min((ha ^ hb).bit_count() for hb in window)
    return total / len(a)


def phash_distance(a: Sequence[str] | Sequence[int], b: Sequence[str] | Sequence[int]) -> float:
    """Distance (0–64 bits) of two frame-hash sequences; see the module docstring."""
    ia = hex_to_ints(a) if a and isinstance(a[0], str) else list(a)  # type: ignore[arg-type]
    ib = hex_to_ints(b) if b and isinstance(b[0], str) else list(b)  # type: ignore[arg-type]
    if not ia or not ib:
        return float(HASH_BITS)
    return max(_directed(ia, ib), _directed(ib, ia))
