"""Perceptual video hash: pHash (imagehash) of a few frames decoded with PyAV, and the distance between two videos.

A video's hash is a sequence of 64-bit frame pHashes taken at the middle of ``n`` equal slices of its duration, so
copies of the same video sample the same moments whatever their frame rate, size or encoding. pHash keeps the
low frequencies of a 32×32 grey thumbnail, which re-encoding and resizing barely move.

The distance of two sequences is the mean, over the frames of one, of the Hamming distance to the closest frame of
the other within one position either way (a trimmed or re-timed copy shifts by a little); symmetric by taking the
larger of the two directions. Copies are typically a few bits apart, unrelated videos near 32 (of 64).
`phash_distances` computes the same distance from one video to many at once with numpy (a matrix of uint64 frame
hashes, popcounts through a byte table, so it runs on numpy 1.26 as on 2.x).
Stored in ``vigil-videos`` as ``phash``: a list of 16-hex-digit strings.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from .._exceptions import VigilError

__all__ = ["video_phash", "phash_distance", "phash_distances", "hash_matrix", "hex_to_ints", "PhashError",
           "DEFAULT_FRAMES"]

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


def _popcount(x: Any) -> Any:
    """Set bits of each uint64 (numpy >= 2 has it built in; a SWAR count for numpy 1.26)."""
    import numpy as np

    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return ((x * np.uint64(0x0101010101010101)) >> np.uint64(56)).astype(np.uint8)


def hash_matrix(sequences: Sequence[Sequence[str] | Sequence[int]]) -> Any:
    """An (n, frames) uint64 matrix of frame-hash sequences that all have the same number of frames."""
    import numpy as np

    n = len(sequences)
    if n == 0:
        return np.zeros((0, 0), dtype=np.uint64)
    frames = len(sequences[0])
    if n and frames and isinstance(sequences[0][0], str):
        joined = "".join(map("".join, sequences))  # type: ignore[arg-type]
        if len(joined) == 16 * n * frames:  # every hash 16 hex digits: one pass in C, not one int() a hash
            try:
                raw = bytes.fromhex(joined)
            except ValueError:
                raw = b""
            if raw:
                return np.frombuffer(raw, dtype=">u8").astype(np.uint64).reshape(n, frames)
    rows = [hex_to_ints(s) if s and isinstance(s[0], str) else list(s) for s in sequences]  # type: ignore[arg-type]
    return np.array(rows, dtype=np.uint64).reshape(n, -1)


def _windows(n_from: int, n_to: int) -> list[list[int]]:
    """For each frame i of one sequence, the frames of the other within its window (as in `_directed`)."""
    out = []
    for i in range(n_from):
        j = round(i * (n_to - 1) / max(n_from - 1, 1)) if n_from != n_to else i
        out.append(list(range(max(j - 1, 0), min(j + 2, n_to))))
    return out


def phash_distances(a: Sequence[str] | Sequence[int], matrix: Any) -> Any:
    """`phash_distance` from ``a`` to every row of ``matrix`` (`hash_matrix`), as a float array.

    Only the frame pairs inside a window are compared (at most 3 per frame and direction)."""
    import numpy as np

    ia = np.array(hex_to_ints(a) if a and isinstance(a[0], str) else list(a), dtype=np.uint64)  # type: ignore[arg-type]
    n, fb = matrix.shape
    if n == 0:
        return np.zeros(0)
    if ia.size == 0 or fb == 0:
        return np.full(n, float(HASH_BITS))
    bits: dict[tuple[int, int], Any] = {}

    def pair(i: int, j: int) -> Any:
        if (i, j) not in bits:
            bits[(i, j)] = _popcount(matrix[:, j] ^ ia[i])
        return bits[(i, j)]

    forward = np.zeros(n)
    for i, window in enumerate(_windows(ia.size, fb)):
        forward += np.minimum.reduce([pair(i, j) for j in window])
    backward = np.zeros(n)
    for j, window in enumerate(_windows(fb, ia.size)):
        backward += np.minimum.reduce([pair(i, j) for i in window])
    return np.maximum(forward / ia.size, backward / fb)
