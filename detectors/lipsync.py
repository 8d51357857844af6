"""``lipsync``: does the speaker's mouth move with the speech, and how far apart are they?

The speaker's mouth opening (face mesh inner-lip gap / mouth width) at each sampled frame is compared with the
speech loudness envelope of the audio (log energy at 100 Hz, smoothed like a jaw, slow drift removed) evaluated at
the frame times shifted by every lag in ±1 s (20 ms steps). Because the envelope is read at the shifted frame times,
the lag resolution is the envelope's, not the frame interval's: 5 fps sampling still locates an offset to tens of
milliseconds. The device step computes weighted Pearson correlations for all lags in all windows (4 s, 1 s hop)
of all clips of a batch at once.

``offset_ms`` > 0 means the audio comes later than the mouth. The score is high when a clear correlation peak sits
at a large offset, or when the face is visibly talking and its mouth is unrelated to the speech (a dub).
Not applicable: no face, no audio or no speech, too short, a still face.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ._base import Detector, DetectorResult, NotApplicable, Window
from ._clip import Clip
from ._registry import register

__all__ = ["LipSync", "speech_envelope"]

logger = logging.getLogger(__name__)

ENVELOPE_RATE = 100.0  # Hz


def _moving_average(values: np.ndarray, width: int) -> np.ndarray:
    if width <= 1:
        return values
    kernel = np.ones(width) / width
    padded = np.pad(values, (width // 2, width - 1 - width // 2), mode="edge")
    return np.convolve(padded, kernel, mode="valid")


def speech_envelope(audio: np.ndarray, rate: int, *, floor_db: float = 40.0) -> tuple[np.ndarray, np.ndarray]:
    """Log-energy envelope at 100 Hz (20 ms windows), clipped ``floor_db`` below its peak; returns (dB, levels)."""
    hop = int(rate / ENVELOPE_RATE)
    n = audio.size // hop
    if n == 0:
        return np.zeros(0), np.zeros(0)
    frames = audio[: n * hop].astype(np.float64).reshape(n, hop)
    power = frames.var(axis=1) + frames.mean(axis=1) ** 2
    power = 0.5 * (power + np.concatenate([power[1:], power[-1:]]))  # 20 ms windows at a 10 ms hop
    level = 10 * np.log10(power + 1e-12)
    top = float(np.percentile(level, 99.5))
    return np.maximum(level, top - floor_db), level


@dataclass
class LipSyncInputs:
    """One clip's prepared signals: mouth samples and the envelope read at every (frame, lag)."""

    mouth: torch.Tensor  # (N,) band-passed mouth opening at the speaker's frames
    envelope: torch.Tensor  # (N, L) band-passed envelope at t_i + lag_l
    valid: torch.Tensor  # (N, L) 1 where t_i + lag_l lies inside the audio
    windows: torch.Tensor  # (W, N) 1 where frame i belongs to window w
    times: np.ndarray  # (N,) frame times
    window_starts: np.ndarray  # (W,)
    mouth_activity: float
    speech_share: float


@register
class LipSync(Detector[LipSyncInputs, dict[str, torch.Tensor]]):
    """Audio-visual synchronisation of the main speaker."""

    name = "lipsync"
    version = "1.0"

    def __init__(self, *, device: str | torch.device = "auto", batch_size: int = 16, max_lag_s: float = 1.0,
                 lag_step_s: float = 0.02, window_s: float = 4.0, hop_s: float = 1.0, min_duration_s: float = 3.0,
                 min_face_share: float = 0.5, still_mouth_std: float = 0.012, talking_mouth_std: float = 0.03,
                 min_speech_share: float = 0.1, speech_floor_dbfs: float = -50.0, tolerance_ms: float = 150.0) -> None:
        super().__init__(device=device, batch_size=batch_size)
        self.lags = np.round(np.arange(-max_lag_s, max_lag_s + 1e-9, lag_step_s), 6)
        self.window_s, self.hop_s = window_s, hop_s
        self.min_duration_s = min_duration_s
        self.min_face_share = min_face_share
        self.still_mouth_std = still_mouth_std
        self.talking_mouth_std = talking_mouth_std
        self.min_speech_share = min_speech_share
        self.speech_floor_dbfs = speech_floor_dbfs
        self.tolerance_ms = tolerance_ms

    # -- preprocess (CPU, one clip)
    def preprocess(self, clip: Clip) -> LipSyncInputs | NotApplicable:
        speaker = clip.speaker
        if speaker is None:
            return NotApplicable("no face")
        if not clip.has_audio:
            return NotApplicable("no audio stream")
        if clip.duration_s < self.min_duration_s:
            return NotApplicable(f"too short ({clip.duration_s:.1f} s < {self.min_duration_s:g} s)")
        share = len(speaker) / max(1, len(clip.frames))
        if share < self.min_face_share:
            return NotApplicable(f"the speaker's face is visible in only {share:.0%} of the frames")
        assert clip.audio is not None
        env_db, level = speech_envelope(clip.audio, clip.sample_rate)
        floor = float(np.percentile(level, 10)) if level.size else -120.0
        active = level > max(self.speech_floor_dbfs, floor + 15.0)
        speech_share = float(np.mean(active)) if level.size else 0.0
        if speech_share < self.min_speech_share:
            loudest = float(level.max()) if level.size else -120.0
            return NotApplicable(f"no speech (silence: {speech_share:.0%} of the audio is above the floor, "
                                 f"loudest {loudest:.0f} dBFS)")

        ok = np.isfinite(speaker.mouth_open)
        times = clip.timestamps[speaker.frame_index[ok]]
        mouth = speaker.mouth_open[ok].astype(np.float64)
        if mouth.size < 8:
            return NotApplicable(f"too few frames with a measurable mouth ({mouth.size})")
        activity = float(np.std(mouth))
        if activity < self.still_mouth_std:
            return NotApplicable(f"still face: the mouth does not move (opening std {activity:.3f})")

        env = _moving_average(env_db, 7)  # ~70 ms: the jaw does not follow faster than that
        env = env - _moving_average(env, int(1.5 * ENVELOPE_RATE))
        fps = clip.fps if clip.fps > 0 else 5.0
        mouth_bp = mouth - _moving_average(mouth, max(3, int(round(1.5 * fps)) | 1))

        env_times = np.arange(env.size) / ENVELOPE_RATE
        query = times[:, None] + self.lags[None, :]
        valid = (query >= 0) & (query <= env_times[-1])
        shifted = np.interp(query.ravel(), env_times, env).reshape(query.shape)

        starts = self._window_starts(clip.duration_s)
        windows = np.stack([(times >= s) & (times < s + self.window_s) for s in starts]).astype(np.float32)
        return LipSyncInputs(
            mouth=torch.from_numpy(mouth_bp.astype(np.float32)),
            envelope=torch.from_numpy(shifted.astype(np.float32)),
            valid=torch.from_numpy(valid.astype(np.float32)),
            windows=torch.from_numpy(windows),
            times=times, window_starts=starts, mouth_activity=activity, speech_share=speech_share)

    def _window_starts(self, duration: float) -> np.ndarray:
        if duration <= self.window_s:
            return np.array([0.0])
        count = int(math.floor((duration - self.window_s) / self.hop_s)) + 1
        return np.arange(count) * self.hop_s

    # -- forward (device, many clips)
    def _forward(self, batch: list[LipSyncInputs]) -> list[dict[str, torch.Tensor]]:
        """Weighted Pearson correlation of mouth vs shifted envelope for every window (plus one window spanning the
        whole clip) and lag, all clips padded into one tensor."""
        n_max = max(int(item.mouth.shape[0]) for item in batch)
        w_max = max(int(item.windows.shape[0]) for item in batch) + 1
        lags = int(batch[0].envelope.shape[1])
        device = batch[0].mouth.device
        x = torch.zeros(len(batch), n_max, device=device)
        y = torch.zeros(len(batch), n_max, lags, device=device)
        m = torch.zeros(len(batch), n_max, lags, device=device)
        w = torch.zeros(len(batch), w_max, n_max, device=device)
        for b, item in enumerate(batch):
            n, nw = item.mouth.shape[0], item.windows.shape[0]
            x[b, :n], y[b, :n], m[b, :n] = item.mouth, item.envelope, item.valid
            w[b, :nw, :n] = item.windows
            w[b, nw, :n] = 1.0  # the whole clip
        weight = w[:, :, :, None] * m[:, None, :, :]  # (B, W, N, L)
        total = weight.sum(dim=2).clamp_min(1e-6)
        xb = x[:, None, :, None]
        yb = y[:, None, :, :]
        mean_x = (weight * xb).sum(dim=2) / total
        mean_y = (weight * yb).sum(dim=2) / total
        dx = xb - mean_x[:, :, None, :]
        dy = yb - mean_y[:, :, None, :]
        cov = (weight * dx * dy).sum(dim=2)
        var_x = (weight * dx * dx).sum(dim=2)
        var_y = (weight * dy * dy).sum(dim=2)
        corr = cov / torch.sqrt(var_x * var_y).clamp_min(1e-9)
        corr = torch.where(total >= 6, corr, torch.zeros_like(corr))  # too few samples: no evidence
        return [{"windows": corr[b, : batch[b].windows.shape[0]], "clip": corr[b, batch[b].windows.shape[0]],
                 "samples": total[b, : batch[b].windows.shape[0]].amax(dim=1)} for b in range(len(batch))]

    # -- postprocess (CPU, one clip)
    def _peak(self, curve: np.ndarray) -> tuple[float, float]:
        """(lag in ms, correlation) at the curve's maximum, refined by a parabola through its neighbours."""
        i = int(np.argmax(curve))
        lag = float(self.lags[i])
        if 0 < i < curve.size - 1:
            a, b, c = curve[i - 1], curve[i], curve[i + 1]
            denom = a - 2 * b + c
            if denom < 0:
                delta = 0.5 * (a - c) / denom
                lag += float(np.clip(delta, -0.5, 0.5)) * float(self.lags[1] - self.lags[0])
        return 1000.0 * lag, float(curve[i])

    def _score(self, offset_ms: float, peak: float, talking: bool) -> float:
        out_of_sync = 1.0 / (1.0 + math.exp(-(abs(offset_ms) - self.tolerance_ms) / 25.0))
        reliable = float(np.clip((peak - 0.3) / 0.25, 0.0, 1.0))
        unrelated = 0.8 * float(np.clip((0.3 - peak) / 0.15, 0.0, 1.0)) if talking else 0.0
        return float(np.clip(max(out_of_sync * reliable, unrelated), 0.0, 1.0))

    def postprocess(self, raw: dict[str, torch.Tensor], clip: Clip) -> DetectorResult:
        inputs_windows = raw["windows"].numpy().astype(np.float64)
        curve = raw["clip"].numpy().astype(np.float64)
        samples = raw["samples"].numpy()
        offset_ms, peak = self._peak(curve)
        talking = bool(np.std(clip.speaker.mouth_open[np.isfinite(clip.speaker.mouth_open)])  # type: ignore[union-attr]
                       >= self.talking_mouth_std)
        starts = self._window_starts(clip.duration_s)
        series = []
        timeline = []
        agree = 0
        counted = 0
        for start, row, count in zip(starts, inputs_windows, samples, strict=True):
            end = min(start + self.window_s, clip.duration_s)
            if count < 6:
                continue
            w_offset, w_peak = self._peak(row)
            counted += 1
            agree += int(abs(w_offset - offset_ms) <= 100.0)
            series.append({"t_s": round(float(start + (end - start) / 2), 3), "offset_ms": round(w_offset, 1),
                           "correlation": round(w_peak, 3)})
            timeline.append(Window(float(start), float(end), self._score(w_offset, w_peak, talking)))
        agreement = agree / counted if counted else 0.0
        confidence = float(np.clip(peak, 0.0, 1.0) * (0.5 + 0.5 * agreement))
        score = self._score(offset_ms, peak, talking)
        evidence: dict[str, Any] = {
            "offset_ms": round(offset_ms, 1),
            "confidence": round(confidence, 3),
            "peak_correlation": round(peak, 3),
            "window_agreement": round(agreement, 3),
            "talking": talking,
            "offsets": series,
            "lag_ms": [round(1000 * float(v), 1) for v in self.lags],
            "correlation": [round(float(v), 4) for v in curve],
            "speaker_track": int(clip.speaker.track_id) if clip.speaker else None,
        }
        return self.result(applicable=True, score=score, timeline=timeline, evidence=evidence)
