"""The shared speaker encoder (detectors/_speaker.py): shapes and norms, the same espeak voice closer than another,
sliding windows, short and empty audio, one encoder per device shared across threads."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from detectors._speaker import SpeakerEncoder, get_speaker_encoder
from detectors.synthetic import HELDOUT_SENTENCES, SENTENCES, speak


@pytest.fixture(scope="module")
def encoder() -> SpeakerEncoder:
    return get_speaker_encoder("cpu")


def test_version_names_package_and_weights(encoder: SpeakerEncoder) -> None:
    assert encoder.sample_rate == 16000
    name, version, model, digest = encoder.version.split("-")
    assert (name, version, model) == ("resemblyzer", "0.1.4", "ge2e") and len(digest) == 12


def test_same_voice_is_closer_than_another(encoder: SpeakerEncoder) -> None:
    enrolled = encoder.embed(speak(SENTENCES[0] + " " + SENTENCES[1]))
    same = encoder.embed(speak(HELDOUT_SENTENCES[0]))
    other = encoder.embed(speak(HELDOUT_SENTENCES[0], voice="en-us+f3"))
    for vector in (enrolled, same, other):
        assert vector.shape == (256,) and vector.dtype == np.float32
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    assert float(enrolled @ same) > 0.9 > 0.8 > float(enrolled @ other)


def test_windows_cover_the_audio(encoder: SpeakerEncoder) -> None:
    audio = speak(HELDOUT_SENTENCES[1])
    spans, embeds = encoder.embed_windows(audio, window_s=1.6, hop_s=0.4)
    assert spans.shape == (len(embeds), 2) and embeds.shape[1] == 256
    assert spans[0, 0] == 0.0 and np.allclose(spans[:, 1] - spans[:, 0], 1.6, atol=0.02)
    assert np.allclose(np.diff(spans[:-1, 0]), 0.4, atol=0.011)
    assert spans[-1, 1] == pytest.approx(audio.size / 16000, abs=0.1)
    assert np.allclose(np.linalg.norm(embeds, axis=1), 1.0, atol=1e-5)


def test_windows_left_out_are_not_embedded_and_the_kept_ones_are_unchanged(encoder: SpeakerEncoder) -> None:
    """``keep`` picks windows by their spans: the others' rows are NaN (no LSTM for them), the kept ones are the
    embeddings of a run over every window; several audios at once keep each its own."""
    audio = speak(HELDOUT_SENTENCES[1])
    spans, embeds = encoder.embed_windows(audio, window_s=1.6, hop_s=0.4)
    seen: list[np.ndarray] = []

    def odd(s: np.ndarray) -> np.ndarray:
        seen.append(s)
        return np.arange(len(s)) % 2 == 1

    kept_spans, kept = encoder.embed_windows(audio, window_s=1.6, hop_s=0.4, keep=odd)
    assert len(seen) == 1 and np.array_equal(seen[0], spans) and np.array_equal(kept_spans, spans)
    assert np.all(np.isnan(kept[0::2])) and np.allclose(kept[1::2], embeds[1::2], atol=1e-5)
    none_spans, none = encoder.embed_windows(audio, window_s=1.6, hop_s=0.4, keep=lambda s: np.zeros(len(s), bool))
    assert np.array_equal(none_spans, spans) and np.all(np.isnan(none))
    short = speak("Yes.")
    (_, short_none), (_, long_all) = encoder.embed_windows_many(
        [short, audio], window_s=1.6, hop_s=0.4, keep=[lambda s: np.zeros(len(s), bool), None])
    assert short_none.shape == (1, 256) and np.all(np.isnan(short_none))
    assert np.allclose(long_all, embeds, atol=1e-5)
    with pytest.raises(ValueError, match="keep"):
        encoder.embed_windows_many([audio], keep=[None, None])


def test_short_empty_and_silent_audio(encoder: SpeakerEncoder) -> None:
    spans, embeds = encoder.embed_windows(speak("Yes."))
    assert len(spans) == 1 and embeds.shape == (1, 256) and spans[0, 0] == 0.0
    spans, embeds = encoder.embed_windows(np.zeros(0, np.float32))
    assert spans.shape == (0, 2) and embeds.shape == (0, 256)
    assert np.all(np.isfinite(encoder.embed(np.zeros(16000, np.float32))))
    with pytest.raises(ValueError, match="no audio"):
        encoder.embed(np.zeros(0, np.float32))
    with pytest.raises(ValueError, match="positive"):
        encoder.embed_windows(np.zeros(100, np.float32), hop_s=0)


def test_one_encoder_per_device_across_threads(encoder: SpeakerEncoder) -> None:
    seen: list[SpeakerEncoder] = []
    threads = [threading.Thread(target=lambda: seen.append(get_speaker_encoder("cpu"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(e is encoder for e in seen)
