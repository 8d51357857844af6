"""Checkpoints as managed artefacts: twins of the recommended checkpoints load and map their labels, the checkpoint
is part of the detection's identity, ranks and who may decide, speech presence from silero-vad."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import signal

from detectors import AUDIO_RATE, DetectorResult, FaceForgery, FaceTrack, Fusion, ModelError, NonVerbal, \
    VoiceSynthetic, suite_version
from detectors._hub import resolve_checkpoint
from detectors._models import clear_model_cache
from detectors._vad import speech_segments
from pipeline import ResultMessage
from pipeline._settings import Settings
from pipeline.sink import detection_id

from support.checkpoint_twins import AST_MEAN, AST_STD, audioset_labels, saved_facts, twins
from hub_server import HubServer
from model_support import espeak, speech_track, talking_clip

DETECTORS = {"face_forgery": FaceForgery, "voice_synthetic": VoiceSynthetic, "nonverbal": NonVerbal}
FIELDS = {"face_forgery": "face_forgery_checkpoint", "voice_synthetic": "voice_synthetic_checkpoint",
          "nonverbal": "nonverbal_checkpoint"}


@pytest.fixture(scope="module")
def twin_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("twins")
    return {repo: twin.build(root / repo.replace("/", "--")) for repo, twin in twins().items()}


@pytest.fixture(autouse=True)
def _fresh_models() -> None:
    clear_model_cache()


def detector_for(repo: str, path: Path | str, **settings: object):
    twin = twins()[repo]
    values = {"device": "cpu", FIELDS[twin.detector]: str(path), **settings}
    return DETECTORS[twin.detector].from_settings(Settings(**values))


# -- twins of the recommended checkpoints ------------------------------------------------------------------------

def test_the_audioset_label_list_is_the_checkpoints_527_in_order() -> None:
    labels = audioset_labels()
    assert len(labels) == 527 and sorted(labels) == list(range(527)) and len(set(labels.values())) == 527
    assert (labels[0], labels[16], labels[47], labels[48], labels[49], labels[137], labels[500]) == \
        ("Speech", "Laughter", "Cough", "Throat clearing", "Sneeze", "Music", "Silence")


@pytest.mark.parametrize("repo", sorted(twins()))
def test_each_twin_has_its_checkpoints_published_facts(repo: str, twin_dirs: dict[str, Path]) -> None:
    twin = twins()[repo]
    config, preprocessor = saved_facts(twin_dirs[repo])
    assert config["architectures"] == [twin.architecture]
    assert {int(k): v for k, v in config["id2label"].items()} == twin.id2label
    for key, value in twin.preprocessor.items():
        assert preprocessor[key] == (pytest.approx(value) if isinstance(value, float) else value), key
    if twin.architecture == "ASTForAudioClassification":
        assert (config["num_mel_bins"], config["max_length"], config["frequency_stride"], config["time_stride"]) == \
            (128, 1024, 10, 10)
        assert (preprocessor["mean"], preprocessor["std"]) == (pytest.approx(AST_MEAN), pytest.approx(AST_STD))
    assert (twin_dirs[repo] / "model.safetensors").is_file()


@pytest.mark.parametrize("repo", sorted(twins()))
def test_each_twin_loads_through_the_detector_and_reads_the_right_outputs(repo: str,
                                                                         twin_dirs: dict[str, Path]) -> None:
    twin = twins()[repo]
    detector = detector_for(repo, twin_dirs[repo])
    assert detector.label_map()["meaning"] == twin.read
    assert detector.loaded.resolved.safetensors
    assert type(detector.loaded.model).__name__ == twin.architecture
    if twin.detector == "face_forgery":
        result = detector(talking_clip("face"))
    elif twin.detector == "voice_synthetic":
        result = detector(talking_clip("speech", audio=speech_track(5.0)))
    else:
        result = detector(talking_clip("speech", duration_s=3.0, audio=speech_track(3.0, text="Thank you")))
        assert result.error is None
        assert all(e["label"] in twin.read.values() for e in result.evidence.get("events", []))
        return
    assert result.applicable and 0.0 <= result.score <= 1.0, result
    assert result.version.endswith(detector.loaded.identity) and result.evidence["checkpoint_id"].startswith("local:")


def test_fake_at_index_0_and_fake_at_index_1_give_complementary_scores(tmp_path: Path) -> None:
    prithiv, dima = twins()["prithivMLmods/Deepfake-Detection-Exp-02-21"], twins()["dima806/deepfake_vs_real_image_detection"]
    # the same random weights under the two published label maps: P(fake) must flip crop by crop
    a = prithiv.build(tmp_path / "a", seed=3)
    b = dima.build(tmp_path / "b", seed=3)
    clip = talking_clip("face")
    fake_first = detector_for(prithiv.repo_id, a, face_forgery_max_crops=6)
    fake_second = detector_for(dima.repo_id, b, face_forgery_max_crops=6)
    fake_first.top_fraction = fake_second.top_fraction = 1.0
    assert fake_first(clip).score == pytest.approx(1.0 - fake_second(clip).score, abs=1e-5)


@pytest.mark.parametrize(("detector", "setting"), [("face_forgery", "VIGIL_FACE_FORGERY_FAKE_LABEL"),
                                                   ("voice_synthetic", "VIGIL_VOICE_SYNTHETIC_FAKE_LABEL")])
def test_a_relabelled_fine_tune_is_refused_with_the_setting_that_fixes_it(detector: str, setting: str,
                                                                          tmp_path: Path) -> None:
    repo = next(r for r, t in twins().items() if t.detector == detector)
    vague = twins()[repo].build(tmp_path / "vague", id2label={0: "LABEL_0", 1: "LABEL_1"})
    with pytest.raises(ModelError, match=f"set {setting}"):
        detector_for(repo, vague)
    fixed = detector_for(repo, vague, **{setting[len("VIGIL_"):].lower(): "LABEL_1"})
    assert fixed.label_map()["meaning"] == {1: "LABEL_1"}


def test_an_inverted_anti_spoofing_model_reads_spoof_at_index_0(tmp_path: Path) -> None:
    repo = "MattyB95/AST-ASVspoof2019-Synthetic-Voice-Detection"
    inverted = twins()[repo].build(tmp_path / "inverted", id2label={0: "spoof", 1: "bonafide"})
    assert detector_for(repo, inverted).label_map()["meaning"] == {0: "spoof"}


def test_audioset_without_the_event_labels_names_the_setting(tmp_path: Path) -> None:
    repo = "MIT/ast-finetuned-audioset-10-10-0.4593"
    generic = twins()[repo].build(tmp_path / "generic", id2label={i: f"LABEL_{i}" for i in range(4)})
    with pytest.raises(ModelError, match="VIGIL_NONVERBAL_EVENT_LABELS"):
        detector_for(repo, generic)


def test_a_checkpoint_that_needs_custom_code_is_refused(tmp_path: Path, twin_dirs: dict[str, Path]) -> None:
    import json

    custom = tmp_path / "custom"
    shutil.copytree(twin_dirs["dima806/deepfake_vs_real_image_detection"], custom)
    config = json.loads((custom / "config.json").read_text())
    config["auto_map"] = {"AutoModelForImageClassification": "modeling_custom.CustomClassifier"}
    (custom / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="trust_remote_code"):
        detector_for("dima806/deepfake_vs_real_image_detection", custom)


# -- the checkpoint in the detection's identity ------------------------------------------------------------------

def test_two_checkpoints_of_one_architecture_are_two_suites_and_two_detection_ids(twin_dirs: dict[str, Path]) -> None:
    a = detector_for("prithivMLmods/Deepfake-Detection-Exp-02-21", twin_dirs["prithivMLmods/Deepfake-Detection-Exp-02-21"])
    b = detector_for("dima806/deepfake_vs_real_image_detection", twin_dirs["dima806/deepfake_vs_real_image_detection"])
    assert type(a.loaded.model) is type(b.loaded.model)
    assert a.version != b.version and a.version.startswith("1.1+local:sha256-")
    versions = suite_version([a], "cal"), suite_version([b], "cal")
    media = "ab" * 32
    assert versions[0] != versions[1] and detection_id(media, versions[0]) != detection_id(media, versions[1])


def test_the_same_checkpoint_elsewhere_is_the_same_suite(tmp_path: Path, twin_dirs: dict[str, Path]) -> None:
    repo = "prithivMLmods/Deepfake-Detection-Exp-02-21"
    elsewhere = tmp_path / "other-machine" / "models" / "face"
    shutil.copytree(twin_dirs[repo], elsewhere)
    here, there = detector_for(repo, twin_dirs[repo]), detector_for(repo, elsewhere)
    assert here.version == there.version and suite_version([here]) == suite_version([there])
    # one changed weight is another checkpoint
    state = {k: v.clone() for k, v in there.loaded.model.state_dict().items()}
    key = next(iter(state))
    state[key].add_(1e-3)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(elsewhere / "model.safetensors"),
              metadata={"format": "pt"})
    clear_model_cache()
    assert detector_for(repo, elsewhere).version != here.version


@pytest.mark.elasticsearch
def test_two_checkpoints_write_two_detection_documents_for_one_video(stack_settings: Settings,
                                                                      twin_dirs: dict[str, Path]) -> None:
    from pipeline import make_es_client, run_setup
    from pipeline.sink import bulk_lines

    run_setup(stack_settings)
    clip = talking_clip("face")
    clip.media_sha256 = "cd" * 32
    messages = []
    for repo in ("prithivMLmods/Deepfake-Detection-Exp-02-21", "dima806/deepfake_vs_real_image_detection"):
        detector = detector_for(repo, twin_dirs[repo])
        version = suite_version([detector], Fusion().version)
        result = Fusion().calibrate(detector(clip))
        messages.append(ResultMessage(video_uid="local:same", media_sha256=clip.media_sha256, suite_version=version,
                                      duration_s=clip.duration_s, fused=Fusion().fuse({detector.name: result}),
                                      detectors={detector.name: result.to_output()}))
    es = make_es_client(stack_settings)
    for message in messages + messages:  # written twice: idempotent per suite
        body = b"".join(line for _, line in bulk_lines(message, stack_settings))
        assert not es.bulk(operations=body, refresh=True)["errors"]
    hits = es.search(index=stack_settings.index("detections"),
                     query={"term": {"media_sha256": clip.media_sha256}}, size=10)["hits"]["hits"]
    assert len(hits) == 2 and len({h["_source"]["suite_version"] for h in hits}) == 2
    versions = sorted(h["_source"]["detectors"]["face_forgery"]["version"] for h in hits)
    assert all("+local:sha256-" in v for v in versions) and versions[0] != versions[1]
    es.close()


def test_a_pinned_hub_checkpoint_has_the_same_identity_on_two_machines(tmp_path: Path, twin_dirs: dict[str, Path],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    repo = "MattyB95/AST-ASVspoof2019-Synthetic-Voice-Detection"
    with HubServer() as hub:
        commit = hub.publish(repo, twin_dirs[repo])
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        first = resolve_checkpoint(repo, revision=commit, setting="X", cache_dir=tmp_path / "machine-a")
        second = resolve_checkpoint(repo, revision=commit, setting="X", cache_dir=tmp_path / "machine-b")
    assert first.identity == second.identity == f"{repo}@{commit}" and first.path != second.path
    assert set(first.files) == {"config.json", "preprocessor_config.json", "model.safetensors"}


def test_hub_errors_name_the_settings(tmp_path: Path, twin_dirs: dict[str, Path],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    repo = "dima806/deepfake_vs_real_image_detection"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with HubServer() as hub:
        hub.publish(repo, twin_dirs[repo])
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        with pytest.raises(ModelError, match=r"VIGIL_FACE_FORGERY_REVISION='0{40}'.*no such revision"):
            detector_for(repo, repo, face_forgery_revision="0" * 40)
        with pytest.raises(ModelError, match=r"VIGIL_FACE_FORGERY_CHECKPOINT='nobody/nothing'.*no such repository"):
            detector_for(repo, "nobody/nothing")
        asked = len(hub.requests)
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        with pytest.raises(ModelError, match="HF_HUB_OFFLINE is set.*vigil models pull"):
            detector_for(repo, repo)
        assert len(hub.requests) == asked  # offline: not one request


# -- ranks and who may decide ------------------------------------------------------------------------------------

def crowd_clip(n_faces: int):
    clip = talking_clip("crowd")
    base = clip.faces[0]
    clip.faces = [FaceTrack(track_id=i, frame_index=base.frame_index, boxes=base.boxes, landmarks=None,
                            mouth_open=base.mouth_open) for i in range(n_faces)]
    return clip


def test_many_faces_keep_the_face_model_from_deciding_alone(twin_dirs: dict[str, Path]) -> None:
    repo = "dima806/deepfake_vs_real_image_detection"
    detector = detector_for(repo, twin_dirs[repo], face_forgery_max_faces=2)
    fusion = Fusion()
    single = fusion.calibrate(detector(crowd_clip(1)))
    crowd = fusion.calibrate(detector(crowd_clip(4)))
    assert single.evidence["faces_at_once"] == 1 and "decides_alone" not in single.evidence
    assert single.rank in ("high", "uncertain", "low")
    assert crowd.evidence["faces_at_once"] == 4 and crowd.evidence["decides_alone"] is False
    assert crowd.rank == "uncertain" and crowd.to_output().rank == "uncertain"
    # a confident flag from the face model alone on a crowd is at most suspicious, a low one clears nothing
    flagged = DetectorResult(**{**crowd.__dict__, "score": 0.97})
    fused = fusion.fuse({"face_forgery": flagged})
    assert fused.verdict == "suspicious" and any("cannot decide alone" in r for r in fused.reasons)
    cleared = DetectorResult(**{**crowd.__dict__, "score": 0.02})
    assert fusion.fuse({"face_forgery": cleared}).verdict == "inconclusive"


def test_moderate_scores_that_add_up_are_not_capped() -> None:
    fusion = Fusion()
    lipsync = DetectorResult(name="lipsync", version="1.0", applicable=True, score=0.45, evidence={})
    spectral = DetectorResult(name="spectral", version="1.0", applicable=True, score=0.45, evidence={})
    fused = fusion.fuse({"lipsync": fusion.calibrate(lipsync), "spectral": fusion.calibrate(spectral)})
    assert fused.verdict == "suspicious" and not any("cannot decide alone" in r for r in fused.reasons)


def face(score: float, checkpoint: str = "dima806/deepfake_vs_real_image_detection") -> DetectorResult:
    return DetectorResult(name="face_forgery", version="1.1+x", applicable=True, score=score,
                          evidence={"checkpoint": checkpoint, "checkpoint_id": f"{checkpoint}@{'0' * 40}"})


@pytest.mark.parametrize(("score", "rank"), [(0.95, "high"), (0.5, "uncertain"), (0.1, "low")])
def test_ranks_come_from_the_checkpoints_thresholds(score: float, rank: str) -> None:
    fusion = Fusion()
    band = fusion.calibration.for_detector("face_forgery").checkpoints["dima806/deepfake_vs_real_image_detection"]
    assert band.rank is not None and band.rank.low < 0.5 < band.rank.high
    assert fusion.calibrate(face(score)).rank == rank
    not_applicable = DetectorResult.not_applicable("face_forgery", "1.1+x", "no face")
    assert fusion.calibrate(not_applicable).to_output().rank == "not_applicable"


def test_nothing_that_could_rule_it_out_is_inconclusive_not_no_signal() -> None:
    fusion = Fusion()
    uncertain = fusion.calibrate(face(0.4))
    assert uncertain.rank == "uncertain"
    fused = fusion.fuse({"face_forgery": uncertain,
                         "voice_synthetic": DetectorResult.not_applicable("voice_synthetic", "1.1", "no speech")})
    assert fused.verdict == "inconclusive" and fused.score is not None
    assert "could rule out manipulation" in fused.reasons[0] and "face_forgery uncertain" in fused.reasons[0]
    low = fusion.calibrate(face(0.05))
    assert fusion.fuse({"face_forgery": low}).verdict == "no_signal"


def test_a_rank_band_must_be_ordered(tmp_path: Path) -> None:
    import json

    from detectors import load_calibration
    from pipeline import ConfigError

    path = tmp_path / "cal.json"
    path.write_text(json.dumps({"version": "v1", "detectors": {"face_forgery": {"rank": {"low": 0.9, "high": 0.1}}}}))
    with pytest.raises(ConfigError, match="rank.low must not be above rank.high"):
        load_calibration(path)


# -- speech presence from silero-vad -----------------------------------------------------------------------------

def music_bed(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Chords of harmonic tones with decaying notes over a kick drum: a music bed without a voice."""
    t = np.arange(int(seconds * AUDIO_RATE)) / AUDIO_RATE
    out = np.zeros_like(t)
    for i, start in enumerate(np.arange(0.0, seconds, 0.375)):
        f0 = rng.choice([196.0, 220.0, 262.0, 294.0, 330.0, 392.0])
        s, e = int(start * AUDIO_RATE), min(t.size, int((start + 0.6) * AUDIO_RATE))
        tt = t[s:e] - t[s]
        for ratio in (1.0, 1.25, 1.5):
            for h in range(1, 6):
                out[s:e] += np.exp(-4 * tt) * np.sin(2 * np.pi * f0 * ratio * h * tt) / h
    for beat in np.arange(0.0, seconds, 0.5):
        s = int(beat * AUDIO_RATE)
        tt = np.arange(min(int(0.15 * AUDIO_RATE), t.size - s)) / AUDIO_RATE
        out[s:s + tt.size] += 3 * np.sin(2 * np.pi * (60 + 80 * np.exp(-30 * tt)) * tt) * np.exp(-20 * tt)
    return (0.5 * out / np.abs(out).max()).astype(np.float32)


def crowd_noise(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Band-limited noise with a slow, irregular swell: the roar of a crowd, no words."""
    n = int(seconds * AUDIO_RATE)
    sos = signal.butter(4, [250, 3500], btype="band", fs=AUDIO_RATE, output="sos")
    roar = signal.sosfilt(sos, rng.standard_normal(n))
    swell = 1.0 + 0.6 * signal.sosfilt(signal.butter(2, 2.0, fs=AUDIO_RATE, output="sos"), rng.standard_normal(n))
    x = roar * np.clip(swell, 0.2, None)
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def melody(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A harmonic lead line with vibrato (pitch, harmonics and a 5 Hz wobble, like a voice) over a music bed."""
    t = np.arange(int(seconds * AUDIO_RATE)) / AUDIO_RATE
    per_note = int(np.ceil(t.size / 16))
    f = np.repeat(rng.choice([262.0, 294.0, 330.0, 392.0, 440.0], 16), per_note)[:t.size]
    phase = 2 * np.pi * np.cumsum(f * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))) / AUDIO_RATE
    lead = sum(np.sin(h * phase) / h ** 1.5 for h in range(1, 8))
    attack = np.tile(np.minimum(1.0, np.linspace(0, 8, per_note)), 16)[:t.size]
    return (0.3 * lead * attack / np.abs(lead).max() + 0.5 * music_bed(seconds, rng)).astype(np.float32)


def test_music_beds_and_crowd_noise_are_not_speech() -> None:
    rng = np.random.default_rng(0)
    assert speech_segments(music_bed(6.0, rng), AUDIO_RATE) == []
    assert speech_segments(melody(6.0, rng), AUDIO_RATE) == []
    assert speech_segments(crowd_noise(6.0, rng), AUDIO_RATE) == []
    assert speech_segments((0.2 * rng.standard_normal(3 * AUDIO_RATE)).astype(np.float32), AUDIO_RATE) == []


def test_speech_over_a_music_bed_is_found_where_it_is() -> None:
    rng = np.random.default_rng(1)
    bed = 0.4 * music_bed(6.0, rng)
    words = espeak("We will count every vote in every county of this state")
    bed[int(1.5 * AUDIO_RATE):int(1.5 * AUDIO_RATE) + words.size] += words
    segments = speech_segments(bed, AUDIO_RATE)
    assert segments, "speech over music not found"
    assert 1.2 <= segments[0].start_s <= 1.9
    assert segments[-1].end_s == pytest.approx(1.5 + words.size / AUDIO_RATE, abs=0.6)


def test_the_vad_resamples_other_rates_and_leaves_torch_threads_alone() -> None:
    threads = torch.get_num_threads()
    track = speech_track(4.0)
    at_48k = signal.resample_poly(track, 3, 1).astype(np.float32)
    segments = speech_segments(at_48k, 48_000)
    assert segments and 0.1 <= segments[0].start_s <= 0.6
    assert torch.get_num_threads() == threads
