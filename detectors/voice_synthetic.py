"""``voice_synthetic``: an audio classifier of speech (bona fide vs spoofed: TTS, voice conversion, cloning).

    preprocess   speech segments from a voice-activity detector; fixed-length windows slid over each segment
                 (a short segment gets one window centred on it); through the checkpoint's feature extractor
    forward      windows of every clip in the batch, grouped by length, classified ``voice_synthetic_batch_size``
                 at a time (half precision on CUDA), split back per clip
    postprocess  P(synthetic) per window → clip score (top-quarter mean, so a spliced-in sentence counts) and
                 a timeline per window

Which output means synthetic is read from the checkpoint's ``id2label`` (spoof, fake, synthetic …;
``VIGIL_VOICE_SYNTHETIC_FAKE_LABEL`` when ambiguous). Not applicable without speech.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ._base import DetectorResult, NotApplicable, Window
from ._clip import Clip
from ._models import LoadedModel, ModelDetector, chunks, fake_label_indices, fake_probability, \
    top_k_mean
from ._registry import register
from .configs import VoiceSyntheticConfig
from ._vad import SpeechSegment, speech_segments

__all__ = ["VoiceSynthetic", "speech_windows"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Speech:
    input_values: torch.Tensor  # (n, samples), all windows of a clip have one length
    starts: np.ndarray  # (n,) seconds
    ends: np.ndarray
    speech_s: float


def speech_windows(segments: list[SpeechSegment], duration_s: float, *, window_s: float,
                   hop_s: float) -> list[tuple[float, float]]:
    """(start, end) windows of ``window_s`` covering the speech: slid by ``hop_s`` over long segments, centred on
    short ones, kept inside the audio; duplicates dropped. The whole audio when it is shorter than a window."""
    if duration_s <= window_s:
        return [(0.0, duration_s)] if segments else []
    windows: set[tuple[float, float]] = set()
    for seg in segments:
        if seg.duration_s <= window_s:
            starts = [seg.start_s + seg.duration_s / 2 - window_s / 2]
        else:
            starts = list(np.arange(seg.start_s, seg.end_s - window_s + 1e-9, hop_s))
            if seg.end_s - window_s > starts[-1] + hop_s / 2:
                starts.append(seg.end_s - window_s)
        for start in starts:
            start = float(np.clip(start, 0.0, duration_s - window_s))
            windows.add((round(start, 3), round(start + window_s, 3)))
    return sorted(windows)


@register
class VoiceSynthetic(ModelDetector[_Speech, dict[str, Any]]):
    """Speech classifier: probability that the voice was synthesised or converted."""

    name = "voice_synthetic"
    code_version = "1.1"  # 1.1: speech found by silero-vad
    task = "audio-classification"
    config_type = VoiceSyntheticConfig
    config: VoiceSyntheticConfig

    def __init__(self, config: VoiceSyntheticConfig | None = None, *, hop_s: float | None = None,
                 min_speech_s: float = 0.5, top_fraction: float = 0.25, load: bool = True, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.fake_label = self.config.fake_label
        self.window_batch_size = self.config.batch_size
        self.window_s = self.config.window_s
        self.hop_s = hop_s or self.window_s / 2
        self.min_speech_s = min_speech_s
        self.top_fraction = top_fraction
        self.fake_indices: list[int] = []
        if load:
            self.load()

    def meaning(self, id2label: Mapping[int, str]) -> dict[int, str]:
        indices = fake_label_indices(id2label, self.fake_label, setting=self.config_type.env_name("fake_label"),
                                     checkpoint=self.checkpoint or "")
        return {i: str(id2label[i]) for i in indices}

    def _on_load(self, loaded: LoadedModel) -> None:
        self.fake_indices = sorted(self.meaning(loaded.id2label))
        logger.info("voice_synthetic: synthetic = %s", [loaded.id2label[i] for i in self.fake_indices])

    def preprocess(self, clip: Clip) -> _Speech | NotApplicable:
        if not clip.has_audio:
            return NotApplicable("no audio")
        audio = np.asarray(clip.audio, dtype=np.float32)
        rate = clip.sample_rate
        segments = speech_segments(audio, rate)
        speech_s = sum(s.duration_s for s in segments)
        if speech_s < self.min_speech_s:
            return NotApplicable("no speech")
        windows = speech_windows(segments, audio.size / rate, window_s=self.window_s, hop_s=self.hop_s)
        length = int(round(min(self.window_s, audio.size / rate) * rate))
        pieces = [audio[int(round(s * rate)):][:length] for s, _ in windows]
        pieces = [np.pad(p, (0, length - p.size)) for p in pieces]
        features = self.loaded.processor(pieces, sampling_rate=rate, return_tensors="pt")
        return _Speech(input_values=features["input_values"], starts=np.asarray([s for s, _ in windows]),
                       ends=np.asarray([e for _, e in windows]), speech_s=speech_s)

    def _forward(self, batch: list[_Speech]) -> list[dict[str, Any]]:
        # clips shorter than a window have shorter windows: run each length on its own
        results: list[torch.Tensor | None] = [None] * len(batch)
        for length in sorted({item.input_values.shape[-1] for item in batch}):
            members = [i for i, item in enumerate(batch) if item.input_values.shape[-1] == length]
            values = torch.cat([batch[i].input_values for i in members])
            probs = torch.cat([fake_probability(self.run_model({"input_values": values[part]}), self.fake_indices)
                               for part in chunks(len(values), self.window_batch_size)])
            for i, p in zip(members, torch.split(probs, [len(batch[i].input_values) for i in members])):
                results[i] = p
        return [{"probs": p, "starts": item.starts, "ends": item.ends, "speech_s": item.speech_s}
                for p, item in zip(results, batch)]

    def postprocess(self, raw: dict[str, Any], clip: Clip) -> DetectorResult:
        probs = raw["probs"].numpy().astype(np.float64)
        starts, ends = raw["starts"], raw["ends"]
        score = top_k_mean(probs, self.top_fraction)
        order = np.argsort(-probs)[:3]
        evidence = {
            **self.checkpoint_evidence(),
            "speech_s": round(float(raw["speech_s"]), 3),
            "n_windows": int(probs.size),
            "most_synthetic_s": [[round(float(starts[i]), 3), round(float(ends[i]), 3)] for i in order],
            "most_synthetic_scores": [round(float(probs[i]), 4) for i in order],
            "reasons": [f"the voice sounds {'synthetic' if score >= 0.5 else 'natural'} (P(synthetic) {score:.2f}; "
                        f"highest at {float(starts[order[0]]):.1f}–{float(ends[order[0]]):.1f} s)"],
        }
        timeline = [Window(float(s), float(e), float(p)) for s, e, p in zip(starts, ends, probs)]
        return self.result(applicable=True, score=score, timeline=timeline, evidence=evidence)
