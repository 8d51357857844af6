"""Speaker embeddings: Resemblyzer's GE2E speaker encoder, with its weights shipped inside the wheel.

    audio (float32 mono 16 kHz) ─ volume normalised ─ 40-band mel (25 ms / 10 ms) ─ 3-layer LSTM ─ (256,) L2-normed

``embed`` gives one embedding for a whole utterance (silences longer than ~0.2 s trimmed by WebRTC VAD, the
utterance cut into 1.6 s partials whose embeddings are averaged, as Resemblyzer does); ``embed_windows`` gives one
embedding per sliding window, batched through the LSTM in one call, for comparing stretches of a speech against
each other or against an enrolled voice; ``embed_windows_many`` does that for several audios (the face tracks of a
batch of clips) in one LSTM call. Cosine similarity of two embeddings is their dot product.

The encoder is shared: ``get_speaker_encoder(device)`` builds one per device, once, under a lock.
"""
from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.contracts import sha256_file

from ._base import resolve_device
from ._exceptions import ModelError

__all__ = ["SpeakerEncoder", "get_speaker_encoder", "EMBEDDING_SIZE"]

EMBEDDING_SIZE = 256
_INSTALL_HINT = "run `infra/install worker` (it installs resemblyzer==0.1.4 with librosa and webrtcvad-wheels)"


def _import_resemblyzer() -> Any:
    try:
        with warnings.catch_warnings():  # resemblyzer imports scipy.ndimage.morphology, deprecated in SciPy 1.x
            warnings.simplefilter("ignore", DeprecationWarning)
            import resemblyzer
    except ImportError as exc:
        raise ModelError(f"speaker embeddings need resemblyzer, which is not installed: {_INSTALL_HINT}") from exc
    return resemblyzer


class SpeakerEncoder:
    """Resemblyzer's GE2E speaker encoder (weights inside its wheel)."""

    sample_rate: int = 16000
    version: str

    def __init__(self, *, device: str | torch.device = "auto") -> None:
        resemblyzer = _import_resemblyzer()
        self._audio = resemblyzer.audio
        self._hparams = resemblyzer.hparams
        weights = Path(resemblyzer.__file__).resolve().parent / "pretrained.pt"
        if not weights.is_file():
            raise ModelError(f"resemblyzer's pretrained.pt is missing at {weights}: {_INSTALL_HINT}")
        self.device = resolve_device(device)
        try:
            self._model = resemblyzer.VoiceEncoder(device=self.device, verbose=False, weights_fpath=weights)
        except Exception as exc:  # torch.load / load_state_dict errors: a broken install
            raise ModelError(f"resemblyzer's speaker encoder cannot be loaded ({exc}): {_INSTALL_HINT}") from exc
        self._model.eval()
        try:
            package = metadata.version("resemblyzer")
        except metadata.PackageNotFoundError:  # pragma: no cover - imported from a source tree
            package = "unknown"
        self.version = f"resemblyzer-{package}-ge2e-{sha256_file(weights)[:12]}"
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SpeakerEncoder(version={self.version!r}, device={self.device})"

    def _prepare(self, audio: np.ndarray) -> np.ndarray:
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        if audio.size == 0:
            raise ValueError("no audio to embed")
        if not np.all(np.isfinite(audio)):
            audio = np.nan_to_num(audio, nan=0.0, posinf=0.0, neginf=0.0)
        if float(np.max(np.abs(audio))) < 1e-6:
            return audio  # silence: the volume normalisation would divide by zero
        return self._audio.normalize_volume(audio, self._hparams.audio_norm_target_dBFS,
                                            increase_only=True).astype(np.float32)

    def _mel(self, audio: np.ndarray) -> np.ndarray:
        return self._audio.wav_to_mel_spectrogram(audio)  # (frames, 40), 10 ms a frame

    def _run(self, mels: np.ndarray) -> np.ndarray:
        tensor = torch.from_numpy(np.ascontiguousarray(mels, dtype=np.float32)).to(self.device)
        with self._lock, torch.inference_mode(), _one_cpu_thread(self.device):
            embeds = self._model(tensor)
        # an all-silent window has a zero vector before normalisation (NaN after): give it zeros, similarity 0
        return np.nan_to_num(embeds.float().cpu().numpy(), nan=0.0)

    def embed(self, audio: np.ndarray) -> np.ndarray:
        """One (256,) L2-normalised embedding for an utterance (float32 mono at 16 kHz)."""
        audio = self._prepare(audio)
        trimmed = self._trim_silences(audio)
        if trimmed.size >= self.sample_rate // 4:
            audio = trimmed
        frames = self._hparams.partials_n_frames
        mel = self._mel(audio)
        if mel.shape[0] < frames:
            mel = np.pad(mel, ((0, frames - mel.shape[0]), (0, 0)))
        step = max(1, int(round(frames / 2)))  # partials overlap by half, ~1.3 per second as Resemblyzer does
        starts = list(range(0, max(1, mel.shape[0] - frames + 1), step))
        if mel.shape[0] - (starts[-1] + frames) > frames // 4:  # a tail worth a partial of its own
            starts.append(mel.shape[0] - frames)
        partials = np.stack([mel[s:s + frames] for s in starts])
        raw = self._run(partials).mean(axis=0)
        return _normalise(raw)

    def embed_windows(self, audio: np.ndarray, *, window_s: float = 1.6, hop_s: float = 0.4,
                      keep: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Sliding windows over ``audio``: ((n, 2) start/end seconds, (n, 256) L2-normalised embeddings).

        Audio shorter than one window gives one window over all of it; no audio gives n = 0. ``keep``: given the
        (n, 2) spans, a boolean mask of the windows wanted; the others are not run through the LSTM and their rows
        are NaN (the spans are all there).
        """
        return self.embed_windows_many([audio], window_s=window_s, hop_s=hop_s,
                                       keep=None if keep is None else [keep])[0]

    def embed_windows_many(self, audios: list[np.ndarray], *, window_s: float = 1.6, hop_s: float = 0.4,
                           keep: list[Callable[[np.ndarray], np.ndarray] | None] | None = None
                           ) -> list[tuple[np.ndarray, np.ndarray]]:
        """``embed_windows`` of several audios, every full-length window of all of them through the LSTM in one
        call (an audio shorter than one window is its own call: its window is shorter). ``keep``: per audio, as
        ``embed_windows``'s (None: every window)."""
        if keep is not None and len(keep) != len(audios):
            raise ValueError(f"keep has {len(keep)} entries for {len(audios)} audios")
        if window_s <= 0 or hop_s <= 0:
            raise ValueError(f"window_s and hop_s must be positive, got {window_s}, {hop_s}")
        frame_s = self._hparams.mel_window_step / 1000
        window = max(1, int(round(window_s / frame_s)))
        hop = max(1, int(round(hop_s / frame_s)))
        out: list[tuple[np.ndarray, np.ndarray]] = []
        full: list[np.ndarray] = []  # windows of `window` mel frames, of every audio, in order
        owners: list[tuple[int, np.ndarray]] = []  # (index into out, which of its windows are in `full`)
        for position, audio in enumerate(audios):
            audio = np.asarray(audio, dtype=np.float32).reshape(-1)
            if audio.size == 0:
                out.append((np.zeros((0, 2), dtype=np.float64), np.zeros((0, EMBEDDING_SIZE), dtype=np.float32)))
                continue
            wanted = keep[position] if keep is not None else None
            audio = self._prepare(audio)
            mel = self._mel(audio)
            duration = audio.size / self.sample_rate
            if mel.shape[0] <= window:
                spans = np.array([[0.0, duration]])
                if wanted is not None and not np.asarray(wanted(spans), dtype=bool).reshape(-1)[0]:
                    out.append((spans, np.full((1, EMBEDDING_SIZE), np.nan, dtype=np.float32)))
                else:
                    out.append((spans, self._run(mel[None])))
                continue
            starts = np.arange(0, mel.shape[0] - window + 1, hop)
            if mel.shape[0] - (starts[-1] + window) > hop // 2:
                starts = np.append(starts, mel.shape[0] - window)
            spans = np.stack([starts * frame_s, np.minimum((starts + window) * frame_s, duration)], axis=1)
            spans = spans.astype(np.float64)
            rows = (np.arange(len(starts)) if wanted is None
                    else np.flatnonzero(np.asarray(wanted(spans), dtype=bool).reshape(-1)))
            full.extend(mel[starts[r]:starts[r] + window] for r in rows)
            owners.append((len(out), rows))
            out.append((spans, np.full((len(starts), EMBEDDING_SIZE), np.nan, dtype=np.float32)))
        if full:
            embeds = self._run(np.stack(full))
            at = 0
            for index, rows in owners:
                out[index][1][rows] = embeds[at:at + rows.size]
                at += rows.size
        return out

    def _trim_silences(self, audio: np.ndarray) -> np.ndarray:
        if float(np.max(np.abs(audio))) > 1.0:
            audio = np.clip(audio, -1.0, 1.0)
        try:
            return self._audio.trim_long_silences(audio).astype(np.float32)
        except Exception:  # noqa: BLE001 - webrtcvad rejects odd lengths/rates; untrimmed audio still embeds
            return audio


@contextlib.contextmanager
def _one_cpu_thread(device: torch.device) -> Iterator[None]:
    """On the CPU, run the LSTM on one thread: its small per-step matrix products gain nothing from intra-op
    threads, and on busy cores those threads cost 20-35x (6 windows: 0.2 s on one thread, 4.7-7.4 s on two, measured
    on a shared 2-core machine). The torch setting is process-wide, so it is restored at once; the suite's device
    step runs in one thread."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _normalise(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return (vector / norm).astype(np.float32) if norm > 0 else vector.astype(np.float32)


_ENCODERS: dict[str, SpeakerEncoder] = {}
_ENCODERS_LOCK = threading.Lock()


def get_speaker_encoder(device: str | torch.device = "auto") -> SpeakerEncoder:
    """The process-wide encoder for ``device`` (built on first use; thread-safe)."""
    key = str(resolve_device(device))
    with _ENCODERS_LOCK:
        encoder = _ENCODERS.get(key)
        if encoder is None:
            encoder = _ENCODERS[key] = SpeakerEncoder(device=key)
        return encoder
