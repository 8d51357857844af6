"""Voice-activity detection without a model: short-time energy, spectral flatness and zero-crossing rate.

Good enough to find where someone speaks in broadcast-like audio, so the synthetic-voice classifier only looks at
speech: a frame is voiced when it is loud relative to the clip's own noise floor and to an absolute floor, and
its spectrum is not flat like broadband noise. Voiced frames are smoothed (short gaps closed, short blips dropped)
into segments.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SpeechSegment", "speech_segments"]


@dataclass(frozen=True)
class SpeechSegment:
    """A stretch of speech, in seconds from the start of the clip's audio."""

    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def _frames(audio: np.ndarray, frame: int, hop: int) -> np.ndarray:
    if audio.size < frame:
        audio = np.pad(audio, (0, frame - audio.size))
    count = 1 + (audio.size - frame) // hop
    index = np.arange(frame)[None, :] + hop * np.arange(count)[:, None]
    return audio[index]


def speech_segments(
    audio: np.ndarray | None,
    sample_rate: int,
    *,
    frame_ms: float = 30.0,
    hop_ms: float = 10.0,
    floor_dbfs: float = -50.0,
    above_noise_db: float = 12.0,
    below_peak_db: float = 45.0,
    max_flatness: float = 0.45,
    max_zcr: float = 0.35,
    min_speech_s: float = 0.25,
    max_gap_s: float = 0.3,
) -> list[SpeechSegment]:
    """Segments of speech in ``audio`` (mono float in [-1, 1]); empty for silence, noise or no audio."""
    if audio is None or audio.size == 0:
        return []
    audio = np.asarray(audio, dtype=np.float32)
    frame, hop = int(sample_rate * frame_ms / 1000), int(sample_rate * hop_ms / 1000)
    frames = _frames(audio, frame, hop)
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
    level = 20 * np.log10(rms + 1e-10)
    noise = np.percentile(level, 10)
    threshold = max(floor_dbfs, noise + above_noise_db, level.max() - below_peak_db)
    windowed = frames * np.hanning(frame)[None, :]
    power = np.abs(np.fft.rfft(windowed, axis=1)) ** 2 + 1e-12
    flatness = np.exp(np.mean(np.log(power), axis=1)) / np.mean(power, axis=1)
    signs = np.signbit(frames)
    zcr = np.mean(signs[:, 1:] != signs[:, :-1], axis=1)
    voiced = (level > threshold) & (flatness < max_flatness) & (zcr < max_zcr)

    segments: list[list[float]] = []
    frame_s, hop_s = frame / sample_rate, hop / sample_rate
    for i in np.flatnonzero(voiced):
        start, end = i * hop_s, i * hop_s + frame_s
        if segments and start - segments[-1][1] <= max_gap_s:
            segments[-1][1] = end
        else:
            segments.append([start, end])
    total = audio.size / sample_rate
    return [SpeechSegment(float(s), float(min(e, total))) for s, e in segments if e - s >= min_speech_s]
