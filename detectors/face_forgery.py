"""``face_forgery``: an image classifier of face crops (face swaps, reenactment, neural avatars).

    preprocess   face crops from the shared face tracks (speaker first), sampled evenly along each track,
                 squared with a margin, through the checkpoint's image processor → pixel_values
    forward      the crops of every clip in the batch concatenated, classified ``face_forgery_batch_size`` at a
                 time (half precision on CUDA), split back per clip
    postprocess  P(fake) per crop → per track top-k mean → clip score (the most suspicious track); a timeline of
                 per-window mean P(fake); keyframes of the most suspicious crops as evidence

Which output means fake is read from the checkpoint's ``id2label`` (``VIGIL_FACE_FORGERY_FAKE_LABEL`` when
ambiguous). Not applicable without a face. With more faces on screen at once than
``VIGIL_FACE_FORGERY_MAX_FACES`` (crowds, split screens, panels) the result is kept but marked
``decides_alone: false`` with rank ``uncertain``: a face classifier trained on single, frontal faces is not reliable
there, so fusion does not let it decide the verdict on its own.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ._base import DetectorResult, NotApplicable, Window
from ._clip import Clip, FaceTrack
from ._models import LoadedModel, ModelDetector, chunks, fake_label_indices, fake_probability, \
    split_by_counts, top_k_mean
from ._registry import register
from .configs import FaceForgeryConfig

__all__ = ["FaceForgery", "face_crops", "most_faces_at_once"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Crops:
    """Model inputs of one clip plus where each crop came from."""

    pixel_values: torch.Tensor  # (n, 3, H, W)
    times: np.ndarray  # (n,) seconds
    tracks: np.ndarray  # (n,) track index in clip.faces


def face_crops(clip: Clip, track: FaceTrack, *, max_crops: int, margin: float = 0.3,
               min_side: int = 16) -> tuple[list[np.ndarray], np.ndarray]:
    """Square crops around the track's boxes (``margin`` of the box size added), at most ``max_crops`` spread
    evenly along the track; boxes smaller than ``min_side`` pixels are skipped. Returns (crops, times)."""
    n = len(track)
    if n == 0:
        return [], np.empty(0)
    picks = np.unique(np.linspace(0, n - 1, num=min(n, max_crops)).round().astype(int))
    height, width = clip.frames.shape[1:3]
    crops: list[np.ndarray] = []
    times: list[float] = []
    for i in picks:
        x0, y0, x1, y1 = (float(v) for v in track.boxes[i])
        side = max(x1 - x0, y1 - y0) * (1.0 + margin)
        if side < min_side or not np.isfinite(side):
            continue
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
        right, bottom = int(round(cx + side / 2)), int(round(cy + side / 2))
        left, top, right, bottom = max(0, left), max(0, top), min(width, right), min(height, bottom)
        if right - left < min_side or bottom - top < min_side:
            continue
        frame_index = int(track.frame_index[i])
        crops.append(np.ascontiguousarray(clip.frames[frame_index, top:bottom, left:right]))
        times.append(float(clip.timestamps[frame_index]))
    return crops, np.asarray(times, dtype=np.float64)


@register
class FaceForgery(ModelDetector[_Crops, dict[str, Any]]):
    """Face-crop classifier: probability that the faces on screen were synthesised or swapped."""

    name = "face_forgery"
    code_version = "1.1"
    task = "image-classification"
    config_type = FaceForgeryConfig
    config: FaceForgeryConfig

    def __init__(self, config: FaceForgeryConfig | None = None, *, max_tracks: int = 2, top_fraction: float = 0.25,
                 window_s: float = 2.0, load: bool = True, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.max_faces = self.config.max_faces
        self.fake_label = self.config.fake_label
        self.crop_batch_size = self.config.batch_size
        self.max_crops = self.config.max_crops
        self.max_tracks = max_tracks
        self.top_fraction = top_fraction
        self.window_s = window_s
        self.fake_indices: list[int] = []
        if load:
            self.load()

    def meaning(self, id2label: Mapping[int, str]) -> dict[int, str]:
        indices = fake_label_indices(id2label, self.fake_label, setting=self.config_type.env_name("fake_label"),
                                     checkpoint=self.checkpoint or "")
        return {i: str(id2label[i]) for i in indices}

    def _on_load(self, loaded: LoadedModel) -> None:
        self.fake_indices = sorted(self.meaning(loaded.id2label))
        logger.info("face_forgery: fake = %s", [loaded.id2label[i] for i in self.fake_indices])

    def preprocess(self, clip: Clip) -> _Crops | NotApplicable:
        if not clip.faces:
            return NotApplicable("no face")
        crops: list[np.ndarray] = []
        times: list[np.ndarray] = []
        tracks: list[np.ndarray] = []
        for index, track in enumerate(clip.faces[: self.max_tracks]):
            track_crops, track_times = face_crops(clip, track, max_crops=self.max_crops)
            crops.extend(track_crops)
            times.append(track_times)
            tracks.append(np.full(len(track_crops), index))
        if not crops:
            return NotApplicable("no face large enough to judge")
        pixel_values = self.loaded.processor(images=crops, return_tensors="pt")["pixel_values"]
        return _Crops(pixel_values=pixel_values, times=np.concatenate(times), tracks=np.concatenate(tracks))

    def _forward(self, batch: list[_Crops]) -> list[dict[str, Any]]:
        pixels = torch.cat([item.pixel_values for item in batch])
        probs = torch.cat([fake_probability(self.run_model({"pixel_values": pixels[part]}), self.fake_indices)
                           for part in chunks(len(pixels), self.crop_batch_size)])
        per_clip = split_by_counts(probs, [len(item.pixel_values) for item in batch])
        return [{"probs": p, "times": item.times, "tracks": item.tracks} for p, item in zip(per_clip, batch)]

    def postprocess(self, raw: dict[str, Any], clip: Clip) -> DetectorResult:
        probs = raw["probs"].numpy().astype(np.float64)
        times, tracks = raw["times"], raw["tracks"]
        per_track = {int(t): top_k_mean(probs[tracks == t], self.top_fraction) for t in np.unique(tracks)}
        worst = max(per_track, key=per_track.get)
        score = per_track[worst]
        timeline = _timeline(times, probs, clip.duration_s, self.window_s)
        order = np.argsort(-probs)[:3]
        faces_at_once = most_faces_at_once(clip)
        evidence: dict[str, Any] = {
            **self.checkpoint_evidence(),
            "n_crops": int(probs.size),
            "faces_at_once": faces_at_once,
            "track_scores": {str(clip.faces[t].track_id): round(s, 4) for t, s in per_track.items()},
            "worst_track": int(clip.faces[worst].track_id),
            "keyframes_s": [round(float(times[i]), 3) for i in order],
            "keyframe_scores": [round(float(probs[i]), 4) for i in order],
            "reasons": [f"face crops look {'synthesised or swapped' if score >= 0.5 else 'camera-made'} "
                        f"(P(fake) {score:.2f}; most suspicious at {float(times[order[0]]):.1f} s)"],
        }
        rank = None
        if faces_at_once > self.max_faces:
            # crowds, split screens: the classifier judges faces it was not trained on; it may inform, not decide
            evidence["decides_alone"] = False
            evidence["rank_reason"] = (f"{faces_at_once} faces on screen at once (more than {self.max_faces}): "
                                       "the face model does not decide alone")
            evidence["reasons"].append(evidence["rank_reason"])
            rank = "uncertain"
        return self.result(applicable=True, score=score, timeline=timeline, evidence=evidence, rank=rank)


def most_faces_at_once(clip: Clip) -> int:
    """The largest number of face tracks seen in one sampled frame."""
    counts: dict[int, int] = {}
    for track in clip.faces:
        for index in np.unique(np.asarray(track.frame_index, dtype=int)):
            counts[int(index)] = counts.get(int(index), 0) + 1
    return max(counts.values(), default=0)


def _timeline(times: np.ndarray, scores: np.ndarray, duration_s: float, window_s: float) -> list[Window]:
    """Mean score of the observations inside each window of ``window_s``; windows without one are left out."""
    end = max(float(duration_s), float(times.max()) + 1e-6 if times.size else 0.0)
    windows = []
    for start in np.arange(0.0, end, window_s):
        inside = (times >= start) & (times < start + window_s)
        if inside.any():
            windows.append(Window(float(start), float(min(start + window_s, end)), float(scores[inside].mean())))
    return windows
