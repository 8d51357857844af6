"""Voice-activity detection with silero-vad: where someone speaks, so the synthetic-voice classifier only hears speech.

silero-vad is a small recurrent network trained on speech against a wide range of noise, music and room sound; its
TorchScript model ships inside the wheel (nothing is downloaded). It scores 32 ms chunks of 16 kHz audio; chunks
above ``threshold`` are joined into segments with hysteresis, short gaps closed and short blips dropped
(``get_speech_timestamps``). Music beds, crowd noise, broadband noise and silence are not speech.

The model is loaded once per process and is stateful (its recurrent state runs across chunks), so calls are
serialised by a lock and the state is reset for every clip. It runs on the CPU with one intra-op thread for the call
(tiny per-chunk operations get slower, not faster, with more threads); importing ``silero_vad`` sets torch to one
thread for the whole process, which is undone here.

Only the recurrent cell needs the chunks one after another. At 16 kHz (``chunk_probabilities``) the model's own
STFT and convolutional encoder read every chunk (with the 64 samples before it, as the streaming model keeps them) in
one batched call, the LSTM cell then steps through the chunks, and the decoder reads all of them at once: about 5x
less time a clip than ``silero_vad.get_speech_timestamps``' loop of one model call per 32 ms chunk. The probabilities
agree with that loop's within a few parts in a million (the batched convolutions add in another order), and they go
through silero's own ``get_speech_timestamps_from_probs``, as the loop's do. A model without those parts (another
silero version) and 8 kHz audio take the loop.

A clip's speech is read once however many detectors ask: `clip_speech` keeps it in ``clip.probes[PROBE_KEY]``, so
``identity`` and ``voice_change`` share one pass over a clip.
"""
from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["SpeechSegment", "speech_segments", "chunk_probabilities", "clip_speech", "VAD_RATE", "PROBE_KEY"]

#: silero-vad's native rate (it also takes 8 kHz); other rates are resampled to it
VAD_RATE = 16_000
#: at 16 kHz, the model scores chunks of 512 samples, each read with the 64 samples before it
_CHUNK, _CONTEXT = 512, 64

_lock = threading.Lock()
_model: Any = None
PROBE_KEY = "speech"  # Clip.probes[PROBE_KEY]: the clip's speech segments (`clip_speech`)


@dataclass(frozen=True)
class SpeechSegment:
    """A stretch of speech, in seconds from the start of the clip's audio."""

    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _silero() -> Any:
    """The packaged silero-vad model (loaded at first use; the caller holds ``_lock``)."""
    global _model
    if _model is None:
        before = torch.get_num_threads()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated in favour of export
                warnings.simplefilter("ignore", DeprecationWarning)  # importlib.resources.path inside silero_vad
                from silero_vad import load_silero_vad

                _model = load_silero_vad()
        finally:
            torch.set_num_threads(before)  # silero_vad sets one thread for the process at import
    return _model


def clip_speech(clip: Any) -> list[SpeechSegment]:
    """A clip's speech segments (the default parameters), read once per clip: kept in ``clip.probes[PROBE_KEY]``
    for every detector that asks."""
    found = clip.probes.get(PROBE_KEY)
    if found is None:
        found = clip.probes[PROBE_KEY] = speech_segments(clip.audio, clip.sample_rate)
    return list(found)


def speech_segments(
    audio: np.ndarray | None,
    sample_rate: int,
    *,
    threshold: float = 0.5,
    min_speech_s: float = 0.25,
    min_silence_s: float = 0.3,
    speech_pad_s: float = 0.03,
) -> list[SpeechSegment]:
    """Segments of speech in ``audio`` (mono float in [-1, 1]); empty for silence, noise, music or no audio."""
    if audio is None or np.asarray(audio).size == 0:
        return []
    samples = np.asarray(audio, dtype=np.float32)
    rate = int(sample_rate)
    if rate not in (8_000, VAD_RATE):
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(VAD_RATE, rate)
        samples = resample_poly(samples, VAD_RATE // g, rate // g).astype(np.float32)
        rate = VAD_RATE
    samples = np.clip(np.nan_to_num(samples), -1.0, 1.0)
    from silero_vad import get_speech_timestamps
    from silero_vad.utils_vad import get_speech_timestamps_from_probs

    options = {"threshold": threshold, "sampling_rate": rate, "min_speech_duration_ms": int(min_speech_s * 1000),
               "min_silence_duration_ms": int(min_silence_s * 1000), "speech_pad_ms": int(speech_pad_s * 1000)}
    probabilities = chunk_probabilities(samples) if rate == VAD_RATE else None
    if probabilities is not None:
        stamps = get_speech_timestamps_from_probs(probabilities.tolist(), audio_length_samples=samples.size, **options)
    else:
        with _lock, _torch_threads(1), torch.inference_mode():
            model = _silero()
            model.reset_states()
            stamps = get_speech_timestamps(torch.from_numpy(samples), model, **options)
            model.reset_states()
    total = samples.size / rate
    return [SpeechSegment(float(s["start"]) / rate, min(float(s["end"]) / rate, total)) for s in stamps]


def chunk_probabilities(samples: np.ndarray) -> np.ndarray | None:
    """(chunks,) speech probability of each 512-sample chunk of 16 kHz ``samples`` (the last one zero-padded), read
    in batches (the module's docstring); None when the loaded model lacks the parts this reads."""
    count = -(-samples.size // _CHUNK)
    if count == 0:
        return np.zeros(0, dtype=np.float32)
    chunks = np.zeros((count, _CHUNK), dtype=np.float32)
    chunks.reshape(-1)[: samples.size] = samples
    contexts = np.zeros((count, _CONTEXT), dtype=np.float32)
    contexts[1:] = chunks[:-1, -_CONTEXT:]
    inputs = torch.from_numpy(np.concatenate([contexts, chunks], axis=1))
    with _lock, _torch_threads(1), torch.inference_mode():
        network = getattr(_silero(), "_model", None)
        decoder = getattr(network, "decoder", None)
        cell = getattr(decoder, "rnn", None)
        if not all(hasattr(part, name) for part, name in ((network, "stft"), (network, "encoder"),
                                                          (decoder, "decoder"), (cell, "weight_ih"))):
            return None
        features = network.encoder(network.stft(inputs)).squeeze(-1)  # (chunks, 128)
        weights = (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
        h = c = torch.zeros((1, features.shape[1]), dtype=features.dtype)
        states = []
        for at in range(count):
            h, c = torch.lstm_cell(features[at:at + 1], [h, c], *weights)
            states.append(h)
        out = decoder.decoder(torch.cat(states).unsqueeze(-1))  # (chunks, 1, 1)
        return out.squeeze(1).mean(dim=1).numpy()
