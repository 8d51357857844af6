"""``voice_change``: does the voice change inside one speaker's speech while the same face keeps talking?

An inserted sentence in a cloned or borrowed voice leaves the mouth moving and the voice different. Speaker
embeddings (the shared GE2E encoder, ``detectors/_speaker.py``) of sliding 1.6 s windows (0.4 s hop) are compared
with the clip's main voice (the mean embedding of the windows, recomputed without the least similar quarter so an
inserted voice does not pull it); a window counts only where it is mostly speech and the main face is visible with
its mouth moving (an off-screen interviewer speaking while the face listens, a cutaway or a turned head give no
reading). A change is a run of >= ``min_windows`` consecutive counted windows whose similarity to the main voice
lies ``drop`` below the clip's median window; its score rises with how far below and how long.

    preprocess  CPU: audio, speech segments (energy VAD), main-face visibility and mouth movement; NotApplicable
                without speech or without one continuously visible talking face
    forward     device: the encoder's windows per clip (one batched LSTM call each)
    postprocess CPU: similarity timeline, change points, ``evidence["stretches"]`` and reasons that say where

Thresholds (``drop``, ``min_windows``, the window shares) were chosen on the tuning split of generated long clips
(``make_long_clip`` with TUNING_VOICES and SENTENCES, seeds below 1000); the real check split (real faces dubbed with
several real voices, ``bench/detector_accuracy.py``) only measures them.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ._base import Detector, DetectorResult, NotApplicable, Window
from ._clip import Clip
from ._registry import register
from ._vad import clip_speech
from .lipsync import main_face

__all__ = ["VoiceChange"]

logger = logging.getLogger(__name__)


@dataclass
class VoiceChangeInputs:
    audio: np.ndarray  # float32 16 kHz mono
    speech: list[tuple[float, float]]
    face_times: np.ndarray  # sampled frame times where the main face is visible
    mouth: np.ndarray  # its mouth opening there
    frame_times: np.ndarray  # every sampled frame's time


@register
class VoiceChange(Detector[VoiceChangeInputs, dict[str, Any]]):
    """Speaker change points inside the speech of one talking face."""

    name = "voice_change"
    version = "1.0"

    def __init__(self, *, device: str | torch.device = "auto", batch_size: int = 8, window_s: float = 1.6,
                 hop_s: float = 0.4, min_speech_s: float = 4.0, min_face_share: float = 0.6,
                 talking_mouth_std: float = 0.02, window_speech_share: float = 0.7, window_face_share: float = 0.7,
                 min_windows: int = 3, drop: float = 0.16) -> None:
        super().__init__(device=device, batch_size=batch_size)
        self.window_s, self.hop_s = window_s, hop_s
        self.min_speech_s = min_speech_s
        self.min_face_share = min_face_share
        self.talking_mouth_std = talking_mouth_std
        self.window_speech_share = window_speech_share
        self.window_face_share = window_face_share
        self.min_windows = min_windows
        self.drop = drop
        self._encoder: Any = None

    def load(self) -> None:
        """Build the shared speaker encoder now (ModelError when resemblyzer is missing); the version names it."""
        if self._encoder is None:
            from ._speaker import get_speaker_encoder

            self._encoder = get_speaker_encoder(self.device)
            self.version = f"{type(self).version}+{self._encoder.version}"  # type: ignore[misc]

    # -- preprocess (CPU, one clip)
    def preprocess(self, clip: Clip) -> VoiceChangeInputs | NotApplicable:
        if not clip.has_audio:
            return NotApplicable("no audio stream")
        assert clip.audio is not None
        speech = [(s.start_s, s.end_s) for s in clip_speech(clip)]
        total = sum(b - a for a, b in speech)
        if total < self.min_speech_s:
            return NotApplicable(f"no speech to follow ({total:.1f} s of speech < {self.min_speech_s:g} s)")
        if not clip.faces:
            return NotApplicable("no face: a voice change needs the face that keeps talking")
        index, mouth = main_face(clip)  # the main visible face per frame, as lipsync joins its tracks
        seen = np.isfinite(mouth)
        index, mouth = index[seen], mouth[seen]
        share = index.size / max(1, len(clip.frames))
        if share < self.min_face_share:
            return NotApplicable(f"no continuously visible face ({share:.0%} of the frames)")
        if mouth.size < 3 or float(np.std(mouth)) < self.talking_mouth_std:
            return NotApplicable("the face does not talk (its mouth hardly moves)")
        return VoiceChangeInputs(audio=np.asarray(clip.audio, dtype=np.float32), speech=speech,
                                 face_times=clip.timestamps[index], mouth=mouth,
                                 frame_times=np.asarray(clip.timestamps))

    # -- forward (device)
    def _forward(self, batch: list[VoiceChangeInputs]) -> list[dict[str, Any]]:
        self.load()
        out = []
        for item in batch:
            # only the windows postprocess counts go through the LSTM (none when too few count to judge): the
            # others' rows stay NaN and are never read
            spans, embeddings = self._encoder.embed_windows(
                item.audio, window_s=self.window_s, hop_s=self.hop_s,
                keep=lambda spans, item=item: self._counted_mask(spans, item))
            out.append({"spans": spans, "embeddings": embeddings, "inputs": item})
        return out

    def _counted_mask(self, spans: np.ndarray, inputs: VoiceChangeInputs) -> np.ndarray:
        """(n,) bool: the windows ``postprocess`` counts (all False when too few count for a judgement)."""
        counted = np.array([self._counted(span, inputs) for span in np.asarray(spans, dtype=np.float64)], dtype=bool)
        return counted if int(counted.sum()) >= 2 * self.min_windows + 2 else np.zeros_like(counted)

    # -- postprocess (CPU)
    def _counted(self, span: np.ndarray, inputs: VoiceChangeInputs) -> bool:
        start, end = float(span[0]), float(span[1])
        length = max(end - start, 1e-6)
        speech = sum(max(0.0, min(end, b) - max(start, a)) for a, b in inputs.speech) / length
        if speech < self.window_speech_share:
            return False
        frames = int(np.sum((inputs.frame_times >= start) & (inputs.frame_times < end)))
        inside = (inputs.face_times >= start) & (inputs.face_times < end)
        if frames == 0 or inside.sum() < max(2, self.window_face_share * frames):
            return False
        return float(np.ptp(inputs.mouth[inside])) >= 2 * self.talking_mouth_std

    def postprocess(self, raw: dict[str, Any], clip: Clip) -> DetectorResult:
        inputs: VoiceChangeInputs = raw["inputs"]  # type: ignore[assignment]
        spans = np.asarray(raw["spans"], dtype=np.float64)
        emb = np.asarray(raw["embeddings"], dtype=np.float64)
        counted = [i for i in range(len(spans)) if self._counted(spans[i], inputs)]
        if len(counted) < 2 * self.min_windows + 2:
            return DetectorResult.not_applicable(self.name, self.version,
                                                 f"too little speech under a talking face ({len(counted)} windows)")
        vectors = emb[counted]
        main = _unit(vectors.mean(axis=0))
        keep = vectors @ main >= np.quantile(vectors @ main, 0.25)
        main = _unit(vectors[keep].mean(axis=0))
        similarity = vectors @ main
        base = float(np.median(similarity))
        below = base - similarity  # > 0: less like the main voice than usual
        per_window = np.clip(0.5 + (below - self.drop) / 0.1, 0.0, 1.0)
        group_score = np.zeros(len(counted))
        k = self.min_windows
        for i in range(len(counted) - k + 1):
            if counted[i + k - 1] - counted[i] > k:  # not consecutive: a gap of more than one window
                continue
            score = float(np.clip(0.5 + (float(np.mean(below[i:i + k])) - self.drop) / 0.1, 0.0, 1.0))
            group_score[i:i + k] = np.maximum(group_score[i:i + k], score)
        flagged = [j for j in range(len(counted)) if group_score[j] >= 0.5 and per_window[j] >= 0.5]
        runs: list[list[int]] = []
        for j in flagged:
            if runs and counted[j] - counted[runs[-1][-1]] <= 2:
                runs[-1].append(j)
            else:
                runs.append([j])
        stretches = []
        for run in runs:
            start = float(spans[counted[run[0]]][0] + self.window_s / 4)
            end = float(spans[counted[run[-1]]][1] - self.window_s / 4)
            if end <= start:
                continue
            score = float(max(group_score[j] for j in run))
            stretches.append({"start_s": round(start, 2), "end_s": round(end, 2), "score": round(score, 3),
                              "similarity": round(float(np.mean(similarity[run])), 3),
                              "reason": f"another voice from {start:.1f} s to {end:.1f} s while the same face keeps "
                                        f"talking (similarity to the main voice {float(np.mean(similarity[run])):.2f}"
                                        f", usually {base:.2f})"})
        timeline = [Window(float(spans[i][0]), float(spans[i][1]), float(min(per_window[j], group_score[j])))
                    for j, i in enumerate(counted)]
        # no change found: a low score (half the best group's, at most 0.25), so near-misses do not add up in fusion
        score = max((s["score"] for s in stretches), default=float(np.clip(0.5 * group_score.max(), 0.0, 0.25)))
        reasons = [s["reason"] for s in sorted(stretches, key=lambda s: -s["score"])] or \
                  [f"one voice throughout the speech (similarity to the main voice {float(similarity.min()):.2f}"
                   f"-{float(similarity.max()):.2f})"]
        evidence: dict[str, Any] = {
            "changes": [{"t_s": s["start_s"], "back_s": s["end_s"]} for s in stretches],
            "stretches": stretches,
            "reasons": reasons,
            "main_voice_similarity": round(base, 3),
            "windows_counted": len(counted),
            "similarity": [{"t_s": round(float(spans[i].mean()), 2), "value": round(float(v), 3)}
                           for i, v in zip(counted, similarity, strict=True)],
            "encoder": getattr(self._encoder, "version", None),
            # generated and real voices can sit close in this embedding: a change corroborates lipsync, it does
            # not decide alone (fusion caps such a flag at "suspicious")
            "decides_alone": False,
        }
        return self.result(applicable=True, score=float(score), timeline=timeline, evidence=evidence)


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector
