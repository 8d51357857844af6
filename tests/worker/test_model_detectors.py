"""face_forgery and voice_synthetic end to end through the real loader on tiny saved models; the loader's errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from detectors import AUDIO_RATE, FaceForgery, FaceForgeryConfig, ModelError, VoiceSynthetic, VoiceSyntheticConfig
from detectors._models import clear_model_cache, fake_label_indices, load_model, resolve_dtype, top_k_mean
from detectors import _vad
from detectors._vad import chunk_probabilities, speech_segments
from pipeline._settings import Settings

from model_support import espeak, speech_track, talking_clip, tiny_vit, tiny_wav2vec2


@pytest.fixture(scope="module")
def vit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_vit(tmp_path_factory.mktemp("vit"))


@pytest.fixture(scope="module")
def wav2vec2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_wav2vec2(tmp_path_factory.mktemp("wav2vec2"))


@pytest.fixture(autouse=True)
def _fresh_models() -> None:
    clear_model_cache()


def settings(**values: object) -> Settings:
    return Settings(device="cpu", **values)


class CallRecorder:
    """Wraps a model's forward and records the batch size of every call."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.sizes: list[int] = []
        self._forward = model.forward
        model.forward = self  # type: ignore[method-assign]

    def __call__(self, **inputs: torch.Tensor):  # noqa: ANN204
        first = next(iter(inputs.values()))
        self.sizes.append(int(first.shape[0]))
        return self._forward(**inputs)


# -- face_forgery ---------------------------------------------------------------------------------------------------

def test_face_forgery_batches_crops_of_two_clips_and_skips_a_faceless_one(vit_dir: Path) -> None:
    detector = FaceForgery.from_settings(settings(face_forgery_checkpoint=str(vit_dir), face_forgery_max_crops=5))
    clips = [talking_clip("a"), talking_clip("b", motion_at_s=(1.0, 2.0)), talking_clip("none", face=False)]
    calls = CallRecorder(detector.loaded.model)
    results = detector(clips)
    assert calls.sizes == [10]  # five crops of each clip with a face, in one model call
    assert [r.applicable for r in results] == [True, True, False]
    assert results[2].evidence["reason"] == "no face" and results[2].score is None
    for result in results[:2]:
        assert 0.0 <= result.score <= 1.0
        assert result.evidence["n_crops"] == 5 and result.evidence["worst_track"] == 0
        assert result.timeline and all(0.0 <= w.score <= 1.0 for w in result.timeline)
        assert result.to_output().applicable
    # batching does not change a clip's result
    alone = detector(clips[0])
    assert alone.score == pytest.approx(results[0].score, abs=1e-5)


def test_face_forgery_reads_the_fake_label_and_scores_from_it(vit_dir: Path, tmp_path: Path) -> None:
    swapped = tiny_vit(tmp_path / "swapped", id2label={0: "Deepfake", 1: "Realism"})
    clip = talking_clip("a")
    # same weights, the label order reversed: P(fake) becomes 1 - P(fake) crop by crop (plain mean: top_fraction=1)
    real_fake = FaceForgery(FaceForgeryConfig(checkpoint=str(vit_dir)), device="cpu", top_fraction=1.0)(clip)
    fake_real = FaceForgery(FaceForgeryConfig(checkpoint=str(swapped)), device="cpu", top_fraction=1.0)(clip)
    assert fake_real.score == pytest.approx(1.0 - real_fake.score, abs=1e-5)


def test_ambiguous_labels_name_the_override_setting(tmp_path: Path) -> None:
    vague = tiny_vit(tmp_path / "vague", id2label={0: "LABEL_0", 1: "LABEL_1"})
    with pytest.raises(ModelError, match="VIGIL_FACE_FORGERY_FAKE_LABEL"):
        FaceForgery.from_settings(settings(face_forgery_checkpoint=str(vague)))
    fixed = FaceForgery.from_settings(settings(face_forgery_checkpoint=str(vague), face_forgery_fake_label="LABEL_1"))
    assert fixed.load() and fixed.fake_indices == [1]
    with pytest.raises(ModelError, match="VIGIL_FACE_FORGERY_FAKE_LABEL='nope'"):
        FaceForgery.from_settings(settings(face_forgery_checkpoint=str(vague), face_forgery_fake_label="nope"))


@pytest.mark.parametrize(("labels", "fake"), [
    ({0: "real", 1: "fake"}, [1]),
    ({0: "Realism", 1: "Deepfake"}, [1]),
    ({0: "Deepfake", 1: "Real"}, [0]),
    ({0: "bonafide", 1: "spoof"}, [1]),
    ({0: "bona-fide", 1: "synthetic"}, [1]),
    ({0: "human", 1: "AI"}, [1]),
    ({0: "real", 1: "fake_swap", 2: "fake_reenact"}, [1, 2]),
])
def test_fake_labels_of_published_checkpoints_are_recognised(labels: dict[int, str], fake: list[int]) -> None:
    assert fake_label_indices(labels, None, setting="X") == fake


@pytest.mark.parametrize("labels", [{0: "LABEL_0", 1: "LABEL_1"}, {0: "cat", 1: "fake"}, {0: "real", 1: "genuine"}])
def test_unrecognisable_labels_are_ambiguous(labels: dict[int, str]) -> None:
    with pytest.raises(ModelError, match="set X"):
        fake_label_indices(labels, None, setting="X")


# -- the loader ---------------------------------------------------------------------------------------------------

def test_missing_checkpoint_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="VIGIL_FACE_FORGERY_CHECKPOINT"):
        FaceForgery.from_settings(settings(face_forgery_checkpoint=None))
    with pytest.raises(ModelError, match="VIGIL_VOICE_SYNTHETIC_CHECKPOINT=.*no such directory"):
        VoiceSynthetic.from_settings(settings(voice_synthetic_checkpoint=str(tmp_path / "absent")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="VIGIL_VOICE_SYNTHETIC_CHECKPOINT=.*no config.json"):
        VoiceSynthetic.from_settings(settings(voice_synthetic_checkpoint=str(tmp_path / "empty")))
    # deferred to first use, the error stops the run instead of failing each clip
    deferred = FaceForgery(device="cpu", load=False)
    with pytest.raises(ModelError, match="VIGIL_FACE_FORGERY_CHECKPOINT"):
        deferred([talking_clip("a"), talking_clip("b")])


def test_offline_hub_id_not_in_cache_names_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelError, match=r"VIGIL_NONVERBAL_CHECKPOINT='MIT/ast-finetuned.*HF_HUB_OFFLINE"):
        load_model("audio-classification", "MIT/ast-finetuned-audioset-10-10-0.4593",
                   setting="VIGIL_NONVERBAL_CHECKPOINT", device=torch.device("cpu"))


def test_configuration_comes_from_the_environment(vit_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline._settings import load_settings

    monkeypatch.setenv("VIGIL_FACE_FORGERY_CHECKPOINT", str(vit_dir))
    monkeypatch.setenv("VIGIL_FACE_FORGERY_BATCH_SIZE", "3")
    monkeypatch.setenv("VIGIL_DEVICE", "cpu")
    detector = FaceForgery.from_settings(load_settings())
    assert detector.checkpoint == str(vit_dir) and detector.crop_batch_size == 3
    assert detector.device == torch.device("cpu")
    calls = CallRecorder(detector.loaded.model)
    detector(talking_clip("a"))
    assert max(calls.sizes) <= 3
    assert detector.loaded.dtype == torch.float32 and next(detector.loaded.model.parameters()).dtype == torch.float32


def test_dtype_is_half_on_cuda_and_float_on_cpu() -> None:
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("auto", torch.device("cuda")) == torch.float16
    assert resolve_dtype("float16", torch.device("cpu")) == torch.float32  # refused on a CPU
    with pytest.raises(ModelError, match="VIGIL_MODEL_DTYPE"):
        resolve_dtype("int8", torch.device("cpu"))


def test_the_loader_keeps_one_copy(vit_dir: Path) -> None:
    first = load_model("image-classification", str(vit_dir), setting="X", device=torch.device("cpu"))
    again = load_model("image-classification", str(vit_dir), setting="X", device=torch.device("cpu"))
    assert first is again and not first.model.training


def test_top_k_mean() -> None:
    assert top_k_mean([0.1, 0.9, 0.2, 0.8], 0.5) == pytest.approx(0.85)
    assert top_k_mean([0.3], 0.25) == pytest.approx(0.3)


# -- voice_synthetic ----------------------------------------------------------------------------------------------

def test_vad_finds_speech_not_silence_or_noise() -> None:
    rng = np.random.default_rng(0)
    segments = speech_segments(speech_track(5.0), AUDIO_RATE)
    assert segments and 0.2 <= segments[0].start_s <= 0.5
    spoken = espeak("The election results will be announced tomorrow morning").size / AUDIO_RATE
    assert sum(s.duration_s for s in segments) == pytest.approx(spoken, rel=0.35)
    assert speech_segments(np.zeros(3 * AUDIO_RATE, np.float32), AUDIO_RATE) == []
    noise = (0.1 * rng.standard_normal(3 * AUDIO_RATE)).astype(np.float32)
    assert speech_segments(noise, AUDIO_RATE) == []


def _streaming_probabilities(samples: np.ndarray) -> np.ndarray:
    """silero's own reading (``audio_forward``): one model call per 512-sample chunk, the state carried by the model."""
    model = _vad._silero()
    with torch.inference_mode():
        found = model.audio_forward(torch.from_numpy(samples).unsqueeze(0), AUDIO_RATE)
    model.reset_states()
    return found.reshape(-1).numpy()


def test_the_batched_vad_reads_what_the_streaming_model_reads() -> None:
    rng = np.random.default_rng(1)
    speech = np.concatenate([speech_track(4.0), (0.05 * rng.standard_normal(AUDIO_RATE)).astype(np.float32),
                             speech_track(3.0, text="We counted every single vote in this county")[:-77]])
    batched = chunk_probabilities(speech)
    streaming = _streaming_probabilities(speech)
    assert batched.shape == streaming.shape == (-(-speech.size // 512),)  # the last chunk zero-padded
    assert np.abs(batched - streaming).max() < 1e-5  # the batched convolutions only add in another order
    assert streaming.max() > 0.9 and streaming.min() < 0.1
    assert chunk_probabilities(np.zeros(0, np.float32)).shape == (0,)


class _StreamingOnly:
    """The packaged model seen through its streaming interface alone (as another silero version might offer)."""

    def __init__(self, model: object) -> None:
        self.model = model

    def __call__(self, chunk: torch.Tensor, rate: int) -> torch.Tensor:
        return self.model(chunk, rate)

    def reset_states(self) -> None:
        self.model.reset_states()


def test_a_model_without_the_batched_parts_is_read_chunk_by_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    speech = speech_track(5.0)
    batched = speech_segments(speech, AUDIO_RATE)
    monkeypatch.setattr(_vad, "_model", _StreamingOnly(_vad._silero()))
    assert chunk_probabilities(speech) is None
    assert speech_segments(speech, AUDIO_RATE) == batched
    eight_k = speech[::2].copy()  # 8 kHz audio is always read chunk by chunk, by the 8 kHz model
    monkeypatch.undo()
    assert speech_segments(eight_k, 8_000)


def test_voice_synthetic_batches_two_clips_and_skips_silence(wav2vec2_dir: Path) -> None:
    detector = VoiceSynthetic(VoiceSyntheticConfig(checkpoint=str(wav2vec2_dir), window_s=2.0), device="cpu")
    speech_a = talking_clip("a", audio=speech_track(5.0))
    speech_b = talking_clip("b", audio=speech_track(4.0, text="We counted every single vote in this county"))
    short = talking_clip("short", duration_s=1.5, audio=speech_track(1.5, text="Yes we can"))
    silent = talking_clip("silent")
    no_audio = talking_clip("no audio")
    no_audio.audio = None
    calls = CallRecorder(detector.loaded.model)
    results = detector([speech_a, speech_b, silent, short, no_audio])
    assert [r.applicable for r in results] == [True, True, False, True, False]
    assert results[2].evidence["reason"] == "no speech" and results[4].evidence["reason"] == "no audio"
    n_a, n_b = results[0].evidence["n_windows"], results[1].evidence["n_windows"]
    assert n_a >= 2 and n_b >= 2
    # the two clips' 2 s windows go through in one call; the short clip's 1.5 s window in its own
    assert sorted(calls.sizes) == sorted([n_a + n_b, 1])
    for result in (results[0], results[1], results[3]):
        assert 0.0 <= result.score <= 1.0
        assert all(0.0 <= w.start_s < w.end_s <= 5.0 for w in result.timeline)
    assert results[0].score == pytest.approx(detector(speech_a).score, abs=1e-5)


# -- in the suite -------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_the_suite_runs_configured_model_detectors_and_leaves_unconfigured_ones_out(
        vit_dir: Path, wav2vec2_dir: Path, tmp_path: Path) -> None:
    from detectors import Suite
    from detectors.synthetic import SENTENCES, make_talking_clip

    model_based = {"face_forgery", "voice_synthetic", "nonverbal"}
    assert not model_based & set(Suite.from_settings(settings()).names)
    with pytest.raises(ModelError, match="VIGIL_NONVERBAL_CHECKPOINT"):
        Suite.from_settings(settings(), names=["lipsync", "nonverbal"])

    suite = Suite.from_settings(settings(face_forgery_checkpoint=str(vit_dir),
                                         voice_synthetic_checkpoint=str(wav2vec2_dir)))
    assert {"face_forgery", "voice_synthetic"} <= set(suite.names) and "nonverbal" not in suite.names
    video = make_talking_clip(tmp_path / "a.mp4", SENTENCES[0])
    result = suite.scan(video.path)  # real decoding and face tracking
    face, voice = result.results["face_forgery"], result.results["voice_synthetic"]
    assert face.applicable and voice.applicable, (face, voice)
    assert face.evidence["n_crops"] >= 4 and voice.evidence["speech_s"] > 1.0
    message = result.to_message(video_uid="local:a", suite_version=suite.version)
    assert message.detectors["face_forgery"].score == pytest.approx(face.score)
    assert any("face crops look" in reason or "voice sounds" in reason for reason in message.fused.reasons) or \
        message.fused.verdict == "no_signal"
