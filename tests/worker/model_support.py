"""Generated test media and tiny models for the model-based detectors.

Real signals, made offline: espeak-ng speech, a synthesised cough (a broadband burst with a sharp attack and a
decaying, band-passed tail), the astronaut photo from scikit-image as a face. Tiny transformers models are built
from the real config classes, saved with ``save_pretrained`` and loaded back through the product's loader.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import signal

from detectors import AUDIO_RATE, Clip, FaceTrack

# the astronaut's face in the 512 x 512 photo (x0, y0, x1, y1)
ASTRONAUT_FACE = (165.0, 40.0, 265.0, 170.0)


@lru_cache(maxsize=16)
def espeak(text: str, *, speed: int = 160, voice: str = "en") -> np.ndarray:
    """``text`` spoken by espeak-ng, 16 kHz mono float32."""
    from scipy.io import wavfile

    if shutil.which("espeak-ng") is None:
        import pytest

        pytest.skip("espeak-ng is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text], check=True,
                       capture_output=True)
        rate, data = wavfile.read(path)
    audio = data.astype(np.float32) / 32768.0
    audio = signal.resample_poly(audio, AUDIO_RATE, rate).astype(np.float32)
    return (0.5 * audio / (np.abs(audio).max() + 1e-9)).astype(np.float32)


def cough(rng: np.random.Generator, *, duration_s: float = 0.35, level: float = 0.6) -> np.ndarray:
    """A cough-like burst: noise through a vocal-tract-like band-pass, a 10 ms attack and an exponential decay,
    with a short voiced component at the start."""
    n = int(duration_s * AUDIO_RATE)
    t = np.arange(n) / AUDIO_RATE
    low, high = rng.uniform(250, 450), rng.uniform(2500, 4000)
    sos = signal.butter(4, [low, high], btype="band", fs=AUDIO_RATE, output="sos")
    noise = signal.sosfilt(sos, rng.standard_normal(n))
    envelope = np.minimum(1.0, t / 0.01) * np.exp(-t / rng.uniform(0.06, 0.1))
    voiced = np.sin(2 * np.pi * rng.uniform(120, 220) * t) * np.exp(-t / 0.04)
    burst = envelope * noise / (np.abs(noise).max() + 1e-9) + 0.3 * voiced
    return (level * burst / (np.abs(burst).max() + 1e-9)).astype(np.float32)


def place(track: np.ndarray, sound: np.ndarray, at_s: float) -> None:
    """Add ``sound`` into ``track`` starting at ``at_s`` seconds (clipped at the end)."""
    start = int(at_s * AUDIO_RATE)
    end = min(track.size, start + sound.size)
    track[start:end] += sound[: end - start]


@lru_cache(maxsize=1)
def astronaut(size: int = 256) -> np.ndarray:
    from skimage import data
    from skimage.transform import resize

    image = data.astronaut()
    return (resize(image, (size, size), anti_aliasing=True) * 255).astype(np.uint8)


def talking_clip(
    name: str,
    *,
    duration_s: float = 5.0,
    fps: float = 5.0,
    audio: np.ndarray | None = None,
    face: bool = True,
    motion_at_s: tuple[float, float] | None = None,
    motion_px: int = 14,
    size: int = 256,
) -> Clip:
    """A Clip of the astronaut photo (a face) with ``audio``; with ``motion_at_s`` = (start, end) the head jerks
    down by ``motion_px`` pixels during that interval and comes back (the face box follows).
    Without ``face`` the frames are a grey background and the clip has no face track."""
    n = int(round(duration_s * fps))
    times = np.arange(n) / fps
    base = astronaut(size) if face else np.full((size, size, 3), 128, np.uint8)
    scale = size / 512
    box = np.asarray(ASTRONAUT_FACE) * scale
    frames = np.empty((n, size, size, 3), np.uint8)
    boxes = np.empty((n, 4), np.float32)
    for i, t in enumerate(times):
        shift = motion_px if motion_at_s and motion_at_s[0] <= t < motion_at_s[1] else 0
        frames[i] = np.roll(base, shift, axis=0)
        boxes[i] = box + np.array([0, shift, 0, shift])
    faces = []
    if face:
        faces = [FaceTrack(track_id=0, frame_index=np.arange(n), boxes=boxes, landmarks=None,
                           mouth_open=np.full(n, np.nan, np.float32))]
    if audio is None:
        audio = np.zeros(int(duration_s * AUDIO_RATE), np.float32)
    return Clip(source=name, duration_s=duration_s, fps=fps, frames=frames, timestamps=times, audio=audio,
                faces=faces, width=size, height=size)


def speech_track(duration_s: float, text: str = "The election results will be announced tomorrow morning",
                 at_s: float = 0.3) -> np.ndarray:
    """``duration_s`` of audio with espeak speech starting at ``at_s`` and a little background noise."""
    rng = np.random.default_rng(0)
    track = (0.002 * rng.standard_normal(int(duration_s * AUDIO_RATE))).astype(np.float32)
    place(track, espeak(text), at_s)
    return track


# -- tiny models ---------------------------------------------------------------------------------------------------

def tiny_vit(path: Path, *, id2label: dict[int, str] | None = None, image_size: int = 64) -> Path:
    """A randomly initialised ViT image classifier (+ image processor) saved to ``path``."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    id2label = id2label or {0: "real", 1: "fake"}
    torch.manual_seed(0)
    config = ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                       image_size=image_size, patch_size=16, num_labels=len(id2label), id2label=id2label,
                       label2id={v: k for k, v in id2label.items()})
    ViTForImageClassification(config).save_pretrained(path)
    ViTImageProcessor(size={"height": image_size, "width": image_size}).save_pretrained(path)
    return path


def tiny_wav2vec2(path: Path, *, id2label: dict[int, str] | None = None) -> Path:
    """A randomly initialised wav2vec2 sequence classifier (+ feature extractor) saved to ``path``."""
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification

    id2label = id2label or {0: "bonafide", 1: "spoof"}
    torch.manual_seed(0)
    config = Wav2Vec2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                            conv_dim=(32, 32, 32), conv_stride=(5, 4, 4), conv_kernel=(10, 4, 4),
                            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, classifier_proj_size=16,
                            num_labels=len(id2label), id2label=id2label, label2id={v: k for k, v in id2label.items()},
                            vocab_size=8)
    Wav2Vec2ForSequenceClassification(config).save_pretrained(path)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=AUDIO_RATE, padding_value=0.0, do_normalize=True,
                             return_attention_mask=False).save_pretrained(path)
    return path


AUDIOSET_LIKE = {0: "Speech", 1: "Cough", 2: "Sneeze", 3: "Laughter", 4: "Silence", 5: "Music"}
AST_FRAMES = 100  # 1.0 s of 10 ms frames
AST_MELS = 64


def tiny_ast(path: Path, *, id2label: dict[int, str] | None = None):
    """A randomly initialised AST audio classifier (+ feature extractor) with AudioSet-like labels, unsaved:
    returns (model, feature_extractor)."""
    import torch
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

    id2label = id2label or AUDIOSET_LIKE
    torch.manual_seed(0)
    config = ASTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=48,
                       patch_size=16, frequency_stride=12, time_stride=12, max_length=AST_FRAMES,
                       num_mel_bins=AST_MELS, num_labels=len(id2label), id2label=id2label,
                       label2id={v: k for k, v in id2label.items()}, problem_type="multi_label_classification")
    extractor = ASTFeatureExtractor(num_mel_bins=AST_MELS, max_length=AST_FRAMES, sampling_rate=AUDIO_RATE)
    return ASTForAudioClassification(config), extractor


def trained_cough_ast(path: Path, *, steps: int = 60, seed: int = 0) -> Path:
    """A tiny AST trained for a few dozen steps to tell 1 s windows holding a synthesised cough from speech,
    silence and noise, saved to ``path``. Deterministic for a seed."""
    import torch

    model, extractor = tiny_ast(path)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    speech = np.concatenate([espeak("Our candidate has a plan for jobs, schools and safer streets"),
                             espeak("Thank you all for coming tonight, we will win this state", speed=140)])
    n_win = AUDIO_RATE

    def window(kind: str) -> tuple[np.ndarray, np.ndarray]:
        target = np.zeros(len(AUDIOSET_LIKE), np.float32)
        x = (rng.uniform(0.0005, 0.004) * rng.standard_normal(n_win)).astype(np.float32)
        if kind in ("speech", "cough+speech"):
            start = rng.integers(0, speech.size - n_win)
            x += speech[start:start + n_win] * rng.uniform(0.3, 1.0)
            target[0] = 1
        if kind in ("cough", "cough+speech"):
            burst = cough(rng, duration_s=rng.uniform(0.25, 0.45), level=rng.uniform(0.3, 0.9))
            place(x, burst, rng.uniform(0.0, 0.65))
            target[1] = 1
        if kind == "silence":
            target[4] = 1
        return x, target

    kinds = ["cough", "cough", "cough+speech", "speech", "speech", "silence"]
    samples = [window(kinds[i % len(kinds)]) for i in range(192)]
    features = torch.from_numpy(np.stack(
        [extractor(x, sampling_rate=AUDIO_RATE, return_tensors="np")["input_values"][0] for x, _ in samples]))
    targets = torch.from_numpy(np.stack([t for _, t in samples]))
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        index = torch.from_numpy(rng.choice(len(samples), 32, replace=False))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(input_values=features[index]).logits,
                                                                     targets[index])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    model.save_pretrained(path)
    extractor.save_pretrained(path)
    return path
