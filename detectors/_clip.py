"""A ``Clip``: one video decoded once and shared by every detector.

Frames are sampled at ``fps`` with their presentation timestamps; audio is 16 kHz mono float32 in [-1, 1];
face tracks (filled in by the face tracker) hold per-frame boxes, landmarks and a mouth-opening measure.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Clip", "FaceTrack", "AUDIO_RATE"]

AUDIO_RATE = 16_000


@dataclass
class FaceTrack:
    """One face followed across sampled frames.

    ``frame_index[i]`` is the index into ``Clip.frames`` of observation i; ``boxes[i]`` is (x0, y0, x1, y1) in
    pixels of the sampled frame; ``landmarks[i]`` is (K, 2) in pixels (K = 478 for the face mesh);
    ``mouth_open[i]`` is the inner-lip gap divided by the mouth width (scale-free; NaN where unmeasured).
    """

    track_id: int
    frame_index: np.ndarray  # (N,) int
    boxes: np.ndarray  # (N, 4) float32
    landmarks: np.ndarray | None  # (N, K, 2) float32
    mouth_open: np.ndarray  # (N,) float32
    score: float = 1.0  # how likely this track is the main speaker: size x centrality x duration

    def __len__(self) -> int:
        return int(self.frame_index.shape[0])


@dataclass
class Clip:
    """A decoded video: sampled RGB frames with timestamps, 16 kHz mono audio, and face tracks."""

    source: str
    duration_s: float
    fps: float
    frames: np.ndarray  # (N, H, W, 3) uint8 RGB
    timestamps: np.ndarray  # (N,) float64 seconds
    audio: np.ndarray | None  # (M,) float32 at AUDIO_RATE, None when the file has no audio stream
    sample_rate: int = AUDIO_RATE
    faces: list[FaceTrack] = field(default_factory=list)  # main speaker first
    media_sha256: str | None = None
    width: int = 0  # of the original video stream
    height: int = 0
    # what detectors read from the file itself while it was at hand (``probe`` hooks, e.g. provenance)
    probes: dict[str, Any] = field(default_factory=dict)

    @property
    def has_audio(self) -> bool:
        return self.audio is not None and self.audio.size > 0

    @property
    def speaker(self) -> FaceTrack | None:
        """The most likely speaker's track (largest, most central, longest), if any face was found."""
        return self.faces[0] if self.faces else None

    def __repr__(self) -> str:
        return (f"Clip({self.source!r}, {self.duration_s:.1f}s, {len(self.frames)} frames @ {self.fps:g} fps, "
                f"audio={'yes' if self.has_audio else 'no'}, faces={len(self.faces)})")
