"""``nonverbal``: coughs, sneezes, laughs and throat-clearing in the audio, checked against visible motion.

A real cough moves the head and face; a voice clone or a dubbed track adds the sound without the motion, and
neural avatars rarely render one. Audio events are found with an AudioSet-style audio classifier (AST in
deployment) over short sliding windows; each event is then matched against the motion of the speaker's face
around that moment (box and landmark displacement relative to the face size, and the pixel change inside the face
region). Events without matching motion are evidence of manipulation and raise the score.

    preprocess   sliding windows of the audio (silent ones skipped) through the checkpoint's feature extractor
    forward      windows of every clip in the batch concatenated, classified ``nonverbal_batch_size`` at a time,
                 per-window probabilities of the event labels split back per clip
    postprocess  windows above the threshold merged into events; per event the face motion around it; score =
                 1 - Π(1 - confidence × missing motion) over the events a face was visible for

Not applicable without audio, without a face, or when no event is found.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from ._base import DetectorResult, NotApplicable, Window
from ._clip import Clip, FaceTrack
from ._models import LoadedModel, ModelDetector, chunks, event_label_indices, split_by_counts
from ._registry import register
from .configs import NonverbalConfig

__all__ = ["NonVerbal", "AudioEvent", "face_motion"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Windows:
    input_values: torch.Tensor  # (n, frames, mel bins)
    starts: np.ndarray  # (n,) seconds
    window_s: float


@dataclass
class AudioEvent:
    """A non-verbal sound: where, what, how sure, and whether the face moved with it."""

    start_s: float
    end_s: float
    label: str
    confidence: float
    peak_s: float
    motion: dict[str, float] = field(default_factory=dict)
    strength: float | None = None  # motion found / motion expected, capped at 1; None: no face visible then
    mismatch: float | None = None  # confidence × (1 - strength)

    def as_evidence(self) -> dict[str, Any]:
        return {"start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3), "label": self.label,
                "confidence": round(self.confidence, 4), "peak_s": round(self.peak_s, 3),
                "motion": {k: round(v, 4) for k, v in self.motion.items()},
                "matched": None if self.strength is None else bool(self.strength >= 1.0),
                "mismatch": None if self.mismatch is None else round(self.mismatch, 4)}


def face_motion(clip: Clip, track: FaceTrack) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Motion of a face between consecutive observations: (times, geometric, pixel).

    ``geometric`` is the displacement of the box (centre and size) or, when present, the mean landmark
    displacement, divided by the box diagonal; ``pixel`` is the mean absolute change of the grey face region
    (resampled to 32 x 32) in [0, 1]. Times are the midpoints between the two observations.
    """
    n = len(track)
    if n < 2:
        return np.empty(0), np.empty(0), np.empty(0)
    boxes = track.boxes.astype(np.float64)
    diag = np.hypot(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    scale = np.maximum((diag[1:] + diag[:-1]) / 2, 1.0)
    centre = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], axis=1)
    geometric = (np.linalg.norm(np.diff(centre, axis=0), axis=1) + np.abs(np.diff(diag))) / scale
    if track.landmarks is not None and len(track.landmarks) == n:
        moved = np.linalg.norm(np.diff(track.landmarks.astype(np.float64), axis=0), axis=2).mean(axis=1) / scale
        geometric = np.maximum(geometric, np.nan_to_num(moved))
    patches = np.stack([_grey_patch(clip.frames[int(f)], box) for f, box in zip(track.frame_index, boxes)])
    pixel = np.abs(np.diff(patches, axis=0)).mean(axis=(1, 2))
    times = clip.timestamps[track.frame_index.astype(int)]
    return (times[1:] + times[:-1]) / 2, geometric, pixel


def _grey_patch(frame: np.ndarray, box: np.ndarray, size: int = 32) -> np.ndarray:
    height, width = frame.shape[:2]
    x0, y0, x1, y1 = box
    xs = np.clip(np.linspace(x0, x1, size).round().astype(int), 0, width - 1)
    ys = np.clip(np.linspace(y0, y1, size).round().astype(int), 0, height - 1)
    patch = frame[ys][:, xs].astype(np.float32)
    return patch.mean(axis=2) / 255.0


@register
class NonVerbal(ModelDetector[_Windows, dict[str, Any]]):
    """Non-verbal sounds (cough, sneeze, laugh, throat-clearing) without the face motion that goes with them."""

    name = "nonverbal"
    code_version = "1.0"
    task = "audio-classification"
    config_type = NonverbalConfig
    config: NonverbalConfig

    def __init__(self, config: NonverbalConfig | None = None, *, window_s: float = 1.0, hop_s: float = 0.5,
                 activation: Literal["auto", "sigmoid", "softmax"] = "auto", silence_dbfs: float = -50.0,
                 motion_pad_s: float = 0.25, min_geometric: float = 0.03, min_pixel: float = 0.04,
                 baseline_ratio: float = 2.5, load: bool = True, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.event_labels = list(self.config.event_labels)
        self.threshold = self.config.event_threshold
        self.window_batch_size = self.config.batch_size
        self.window_s, self.hop_s = window_s, hop_s
        self.activation = activation
        self.silence_dbfs = silence_dbfs
        self.motion_pad_s = motion_pad_s
        self.min_geometric, self.min_pixel, self.baseline_ratio = min_geometric, min_pixel, baseline_ratio
        self.events: dict[int, str] = {}
        if load:
            self.load()

    def meaning(self, id2label: Mapping[int, str]) -> dict[int, str]:
        events = event_label_indices(id2label, self.event_labels, setting=self.config_type.env_name("event_labels"),
                                     checkpoint=self.checkpoint or "")
        return {i: str(id2label[i]) for i in sorted(events)}

    def _on_load(self, loaded: LoadedModel) -> None:
        self.events = self.meaning(loaded.id2label)
        if self.activation == "auto":
            # AudioSet classifiers are multi-label (trained with a sigmoid per class)
            single = getattr(loaded.model.config, "problem_type", None) == "single_label_classification"
            self.activation = "softmax" if single else "sigmoid"

    def preprocess(self, clip: Clip) -> _Windows | NotApplicable:
        if not clip.has_audio:
            return NotApplicable("no audio")
        if clip.speaker is None or len(clip.speaker) < 2:
            return NotApplicable("no face")
        audio = np.asarray(clip.audio, dtype=np.float32)
        rate = clip.sample_rate
        length, hop = int(self.window_s * rate), int(self.hop_s * rate)
        last = max(0, audio.size - length)
        starts = sorted(set(range(0, last + 1, hop)) | {last})
        windows, kept = [], []
        for start in starts:
            piece = audio[start:start + length]
            level = 10 * np.log10(np.mean(piece.astype(np.float64) ** 2) + 1e-12)
            if level > self.silence_dbfs:
                windows.append(piece)
                kept.append(start / rate)
        if not windows:
            return NotApplicable("silent audio")
        features = self.loaded.processor(windows, sampling_rate=rate, return_tensors="pt")
        return _Windows(input_values=features["input_values"], starts=np.asarray(kept), window_s=self.window_s)

    def _forward(self, batch: list[_Windows]) -> list[dict[str, Any]]:
        values = torch.cat([item.input_values for item in batch])
        columns = list(self.events)
        outputs = []
        for part in chunks(len(values), self.window_batch_size):
            logits = self.run_model({"input_values": values[part]})
            probs = torch.sigmoid(logits) if self.activation == "sigmoid" else torch.softmax(logits, dim=-1)
            outputs.append(probs[:, columns])
        per_clip = split_by_counts(torch.cat(outputs), [len(item.input_values) for item in batch])
        return [{"probs": p, "starts": item.starts, "window_s": item.window_s} for p, item in zip(per_clip, batch)]

    def postprocess(self, raw: dict[str, Any], clip: Clip) -> DetectorResult:
        probs = raw["probs"].numpy().astype(np.float64)  # (windows, event labels)
        events = self._events(probs, raw["starts"], raw["window_s"])
        if not events:
            return DetectorResult.not_applicable(self.name, self.version, "no non-verbal event",
                                                 max_event_probability=round(float(probs.max(initial=0.0)), 4))
        assert clip.speaker is not None
        times, geometric, pixel = face_motion(clip, clip.speaker)
        need_geo = max(self.min_geometric, self.baseline_ratio * float(np.median(geometric)))
        need_pix = max(self.min_pixel, self.baseline_ratio * float(np.median(pixel)))
        for event in events:
            near = (times >= event.start_s - self.motion_pad_s) & (times <= event.end_s + self.motion_pad_s)
            if not near.any():
                continue  # the face is not visible then: nothing to check
            geo, pix = float(geometric[near].max()), float(pixel[near].max())
            event.motion = {"geometric": geo, "pixel": pix, "geometric_needed": need_geo, "pixel_needed": need_pix}
            event.strength = float(min(1.0, max(geo / need_geo, pix / need_pix)))
            event.mismatch = event.confidence * (1.0 - event.strength)
        checked = [e for e in events if e.mismatch is not None]
        evidence: dict[str, Any] = {"events": [e.as_evidence() for e in events], **self.checkpoint_evidence()}
        if not checked:
            return DetectorResult.not_applicable(self.name, self.version, "no face visible during the events",
                                                 **evidence)
        score = 1.0 - float(np.prod([1.0 - e.mismatch for e in checked]))
        unmatched = [e for e in checked if (e.strength or 0.0) < 1.0]
        evidence["n_events"], evidence["n_unmatched"] = len(checked), len(unmatched)
        if unmatched:
            worst = max(unmatched, key=lambda e: e.mismatch or 0.0)
            evidence["top_reason"] = f"{worst.label.lower()} at {worst.peak_s:.1f} s without matching face motion"
        else:
            evidence["top_reason"] = f"{len(checked)} non-verbal sound(s), each with matching face motion"
        evidence["reasons"] = [evidence["top_reason"]]
        timeline = [Window(e.start_s, e.end_s, float(e.mismatch)) for e in checked]
        return self.result(applicable=True, score=float(np.clip(score, 0.0, 1.0)), timeline=timeline,
                           evidence=evidence)

    def _events(self, probs: np.ndarray, starts: np.ndarray, window_s: float) -> list[AudioEvent]:
        """Windows whose best event label passes the threshold, merged per label when they overlap or touch."""
        labels = list(self.events.values())
        events: list[AudioEvent] = []
        for row, start in zip(probs, starts):
            best = int(np.argmax(row))
            if row[best] < self.threshold:
                continue
            label, confidence, end = labels[best], float(row[best]), float(start) + window_s
            previous = events[-1] if events else None
            if previous is not None and previous.label == label and start <= previous.end_s + 1e-6:
                previous.end_s = end
                if confidence > previous.confidence:
                    previous.confidence, previous.peak_s = confidence, float(start) + window_s / 2
            else:
                events.append(AudioEvent(float(start), end, label, confidence, float(start) + window_s / 2))
        return events
