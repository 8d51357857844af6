"""Partial manipulations: a spliced stretch inside an authentic speech is flagged and located, not averaged away;
authentic long clips with pauses, a head turn, a cutaway, music and an off-screen second speaker stay calm.

The clips are short long clips (two or three sentences, ~12-18 s) from ``make_long_clip`` (tuning sentences,
voices and faces; the benchmark uses held-out ones), made once per session.
"""
from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest

from detectors import Clip, DetectorResult, FaceTracker, Fusion, LipSync, Suite, Window, decode_clip
from detectors._fusion import DetectorCalibration, load_calibration
from detectors._segments import detector_stretches, fused_timeline, locate, merge_stretches
from detectors.synthetic import LongClip, make_long_clip
from pipeline import FusedScore
from pipeline._evidence import render_timeline
from pipeline.worker.scan import segments_table

#: name: (kind, seed, splice length, events, sentences)
SPECS = {
    "voice_3s": ("voice", 11, 3.0, ("pause",), 2),
    "shift_3s": ("shift", 12, 3.0, ("music",), 2),
    "authentic": ("authentic", 13, None, ("pause", "turn", "cutaway", "second_speaker"), 3),
    "authentic_music": ("authentic", 14, None, ("music", "turn"), 2),
}
_CLIPS: dict[str, tuple[LongClip, Clip]] = {}


@pytest.fixture(scope="session")
def long_clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[LongClip, Clip]]:
    directory: Path = tmp_path_factory.getbasetemp() / "long-media"
    directory.mkdir(exist_ok=True)
    tracker = FaceTracker()
    for name, (kind, seed, length, events, sentences) in SPECS.items():
        if name not in _CLIPS:
            made = make_long_clip(directory / f"{name}.mp4", kind=kind, seed=seed, splice_s=length, events=events,
                                  n_sentences=sentences, fps=12.5,
                                  shift_ms=300.0 if kind == "shift" else None)
            clip = tracker(decode_clip(made.path, fps=5.0))
            LipSync(device="cpu").probe(clip, str(made.path))  # as Suite.prepare does
            _CLIPS[name] = (made, clip)
    return {name: (made, copy.deepcopy(clip)) for name, (made, clip) in _CLIPS.items()}


@pytest.fixture(scope="module")
def lipsync(long_clips: dict[str, tuple[LongClip, Clip]]) -> dict[str, DetectorResult]:
    names = list(long_clips)
    results = LipSync(device="cpu", batch_size=len(names))([long_clips[n][1] for n in names])
    return dict(zip(names, results, strict=True))


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def test_the_generator_says_what_it_made(long_clips: dict[str, tuple[LongClip, Clip]]) -> None:
    made, clip = long_clips["voice_3s"]
    assert made.manipulated and made.splice is not None
    assert made.splice[1] - made.splice[0] == pytest.approx(3.0, abs=0.05)
    assert clip.duration_s == pytest.approx(made.duration_s, abs=0.3)
    assert {e[0] for e in long_clips["authentic"][0].events} == {"pause", "turn", "cutaway", "second_speaker"}
    assert not long_clips["authentic"][0].manipulated and long_clips["authentic"][0].splice is None
    assert long_clips["shift_3s"][0].shift_ms == 300.0
    with pytest.raises(ValueError, match="unknown kind"):
        make_long_clip(Path("unused.mp4"), kind="swap")


@pytest.mark.parametrize("name", ["voice_3s", "shift_3s"])
def test_a_spliced_stretch_is_flagged_and_located(name: str, lipsync: dict[str, DetectorResult],
                                                  long_clips: dict[str, tuple[LongClip, Clip]]) -> None:
    made, _ = long_clips[name]
    result = lipsync[name]
    assert result.applicable and result.flagged, result.evidence["stretches"]
    assert result.evidence["whole_clip_score"] < 0.5  # the whole clip's reading alone would average it away
    stretch = max(result.evidence["stretches"], key=lambda s: s["score"])
    assert made.splice is not None
    assert _overlap((stretch["start_s"], stretch["end_s"]), made.splice) > 0.5 * (made.splice[1] - made.splice[0])
    assert result.evidence["manipulation"] in ("dub", "shift")
    reason = result.evidence["reasons"][0]
    assert f"from {stretch['start_s']:.1f} s to {stretch['end_s']:.1f} s" in reason
    assert any(w.score >= 0.5 and _overlap((w.start_s, w.end_s), made.splice) > 0 for w in result.timeline)


def test_an_inserted_voice_reads_as_a_dub(lipsync: dict[str, DetectorResult]) -> None:
    stretch = lipsync["voice_3s"].evidence["stretches"][0]
    assert stretch["kind"] == "dub" and "does not follow the speech" in stretch["reason"]


@pytest.mark.parametrize("name", ["authentic", "authentic_music"])
def test_authentic_long_clips_stay_calm(name: str, lipsync: dict[str, DetectorResult]) -> None:
    result = lipsync[name]
    assert result.applicable and not result.flagged and result.score < 0.2, result.evidence["stretches"]
    assert result.evidence["stretches"] == []
    assert result.evidence["windows_judged"] < result.evidence["windows"]  # the pauses and the cutaway: no reading
    assert all(w.score < 0.5 for w in result.timeline)


def test_the_suite_result_carries_segments_and_a_fused_timeline(
        long_clips: dict[str, tuple[LongClip, Clip]]) -> None:
    suite = Suite([LipSync(device="cpu")])
    spliced, calm = suite.analyse([long_clips["voice_3s"][1], long_clips["authentic"][1]])
    made = long_clips["voice_3s"][0]
    assert spliced.fused.verdict in ("likely_manipulated", "suspicious") and spliced.segments
    segment = spliced.segments[0]
    assert segment.detectors == ["lipsync"] and made.splice is not None
    assert _overlap((segment.start_s, segment.end_s), made.splice) > 0
    assert "from" in spliced.fused.reasons[0] and segment.reasons
    assert spliced.fused.timeline and max(w.score for w in spliced.fused.timeline) >= 0.5
    message = spliced.to_message(video_uid="file:spliced", suite_version=suite.version)
    assert message.segments == spliced.segments and message.fused.timeline
    assert calm.segments == [] and calm.fused.verdict == "no_signal"
    assert calm.fused.timeline and max(w.score for w in calm.fused.timeline) < 0.5
    # `vigil scan` lists the stretches below its table; the evidence plot shades them
    table = segments_table(message)
    assert table is not None and table.row_count == len(message.segments)
    assert segments_table(calm.to_message(video_uid="file:calm", suite_version=suite.version)) is None
    png = render_timeline(message)
    assert png is not None and png.startswith(b"\x89PNG")


# -- the segment logic on its own (results built by hand: pure functions of results)

def _result(name: str, score: float, windows: list[tuple[float, float, float]], **evidence: object) -> DetectorResult:
    return DetectorResult(name=name, version="1", applicable=True, score=score,
                          timeline=[Window(a, b, s) for a, b, s in windows], evidence=dict(evidence))


def test_a_timeline_run_counts_only_when_sustained() -> None:
    blip = _result("spectral", 0.1, [(0.0, 0.2, 0.1), (0.2, 0.4, 0.9), (0.4, 0.6, 0.1)])
    assert detector_stretches(blip) == []
    run = _result("spectral", 0.1, [(t / 5, t / 5 + 0.2, 0.9 if 10 <= t < 17 else 0.1) for t in range(30)])
    (stretch,) = detector_stretches(run)
    assert stretch.start_s == pytest.approx(2.0) and stretch.end_s == pytest.approx(3.4)
    assert "from 2.0 s to 3.4 s" in stretch.reason
    assert detector_stretches(DetectorResult.not_applicable("spectral", "1", "no frames")) == []


def test_stretches_of_two_detectors_merge_and_raise_the_clip_score() -> None:
    fusion = Fusion()
    lip = _result("lipsync", 0.2, [(0, 2.5, 0.1)], stretches=[
        {"start_s": 4.0, "end_s": 7.0, "score": 0.9, "reason": "mouth does not follow the speech from 4.0 s"}])
    voice = _result("voice_change", 0.3, [(0, 1.6, 0.1)], stretches=[
        {"start_s": 4.4, "end_s": 6.5, "score": 0.7, "reason": "another voice from 4.4 s"},
        {"start_s": 12.0, "end_s": 13.0, "score": 0.3}])  # below 0.5: not a stretch
    results = {"lipsync": lip, "voice_change": voice}
    fused, segments = locate(results, fusion.fuse(results), fusion.calibration, duration_s=20.0)
    (segment,) = segments
    assert (segment.start_s, segment.end_s) == (4.0, 7.0) and segment.detectors == ["lipsync", "voice_change"]
    weight = fusion.calibration.for_detector("voice_change").weight
    assert segment.score == pytest.approx(1 - (1 - 0.9) * (1 - weight * 0.7), abs=1e-4)
    assert fused.score == segment.score and fused.verdict == "likely_manipulated"
    assert fused.reasons[:2] == ["mouth does not follow the speech from 4.0 s", "another voice from 4.4 s"]
    cells = {(w.start_s, w.end_s): w.score for w in fused.timeline}
    assert cells[(0.0, 0.5)] == pytest.approx(1 - 0.9 * (1 - weight * 0.1), abs=1e-4)  # both timelines, calm
    assert cells[(5.0, 5.5)] == pytest.approx(segment.score, abs=1e-4)  # inside both stretches
    assert (3.0, 3.5) not in cells and (12.0, 12.5) not in cells  # nothing covers them


def _with_voice_change(**calibration: object) -> Fusion:
    """The packaged calibration with voice_change's entry replaced (a test's own, stated in the test)."""
    base = load_calibration()
    detectors = {**base.detectors, "voice_change": DetectorCalibration(**calibration)}  # type: ignore[arg-type]
    return Fusion(base.model_copy(update={"detectors": detectors}))


def test_a_raised_timeline_under_another_detectors_stretch_supports_it() -> None:
    """A short inserted voice: voice_change flags it, lipsync's windows there are off but short of a flag. Together
    they reach a flag; lipsync's raised window elsewhere, or a window barely above noise, adds nothing. (The mechanism
    with a corroborating detector of weight 0.45 and raw scores; the shipped calibration puts voice_change's trust in
    its Platt scaling instead.)"""
    fusion = _with_voice_change(weight=0.45)
    weight = fusion.calibration.for_detector("voice_change").weight
    voice = _result("voice_change", 0.3, [(0, 1.6, 0.1)], decides_alone=False, stretches=[
        {"start_s": 10.0, "end_s": 11.2, "score": 0.9, "reason": "another voice from 10.0 s to 11.2 s"}])
    lip = _result("lipsync", 0.1, [(9.8, 10.8, 0.45), (10.2, 11.2, 0.4), (20.0, 21.0, 0.45)], stretches=[])
    results = {"lipsync": lip, "voice_change": voice}
    fused, (segment,) = locate(results, fusion.fuse(results), fusion.calibration, duration_s=30.0)
    assert segment.detectors == ["lipsync", "voice_change"]
    assert segment.score == pytest.approx(1 - (1 - 0.45) * (1 - weight * 0.9), abs=1e-4) and segment.score >= 0.5
    assert fused.score == segment.score and fused.verdict in ("suspicious", "likely_manipulated")
    alone = {"voice_change": voice}
    _, (by_voice,) = locate(alone, fusion.fuse(alone), fusion.calibration, duration_s=30.0)
    assert by_voice.score == pytest.approx(weight * 0.9, abs=1e-4) and by_voice.score < 0.5
    noise = {"lipsync": _result("lipsync", 0.1, [(10.0, 11.0, 0.2)], stretches=[]), "voice_change": voice}
    _, (unsupported,) = locate(noise, fusion.fuse(noise), fusion.calibration, duration_s=30.0)
    assert unsupported.detectors == ["voice_change"] and unsupported.score == by_voice.score


def test_a_stretch_calibrated_under_the_flag_counts_only_where_another_detector_supports_it() -> None:
    """The shipped calibration puts voice_change's raw stretch (1.0) at 0.45: alone it is no segment and the clip
    stays calm; where lipsync's windows are raised (0.4, short of a stretch of its own) the two reach a flag."""
    fusion = Fusion()
    voice = fusion.calibrate(_result("voice_change", 1.0, [(10.0, 11.6, 1.0)], decides_alone=False, stretches=[
        {"start_s": 10.0, "end_s": 11.6, "score": 1.0, "reason": "another voice from 10.0 s to 11.6 s"}]))
    assert 0.25 <= voice.evidence["stretches"][0]["score"] < 0.5
    calm_lip = fusion.calibrate(_result("lipsync", 0.05, [(9.8, 10.8, 0.05), (10.6, 11.6, 0.05)], stretches=[]))
    alone = {"lipsync": calm_lip, "voice_change": voice}
    fused, segments = locate(alone, fusion.fuse(alone), fusion.calibration, duration_s=30.0)
    assert segments == [] and fused.verdict == "no_signal"
    raised_lip = fusion.calibrate(_result("lipsync", 0.1, [(9.8, 10.8, 0.4), (10.6, 11.6, 0.4)], stretches=[]))
    both = {"lipsync": raised_lip, "voice_change": voice}
    fused, (segment,) = locate(both, fusion.fuse(both), fusion.calibration, duration_s=30.0)
    assert segment.detectors == ["lipsync", "voice_change"] and segment.score >= 0.5
    assert fused.verdict in ("suspicious", "likely_manipulated") and "another voice" in fused.reasons[0]


def test_no_segment_leaves_the_fused_score_alone() -> None:
    fusion = Fusion()
    results = {"lipsync": _result("lipsync", 0.3, [(0, 2.5, 0.3), (2.5, 5.0, 0.2)])}
    fused = fusion.fuse(results)
    located, segments = locate(results, fused, fusion.calibration, duration_s=5.0)
    assert segments == [] and located.score == fused.score and located.verdict == fused.verdict
    assert [w.score for w in located.timeline] == pytest.approx([0.3] * 5 + [0.2] * 5)
    inconclusive = FusedScore(score=None, verdict="inconclusive", reasons=["nothing"])
    assert locate({}, inconclusive, fusion.calibration, duration_s=5.0) == (inconclusive, [])
    assert fused_timeline(results, fusion.calibration, 0.0) == []
    assert merge_stretches([], fusion.calibration) == []


# -- voice_change (needs the shared speaker encoder: resemblyzer)

needs_resemblyzer = pytest.mark.skipif(importlib.util.find_spec("resemblyzer") is None,
                                       reason="resemblyzer is not installed (infra/install worker installs it)")


@needs_resemblyzer
def test_voice_change_is_not_applicable_without_a_talking_face_or_speech(
        long_clips: dict[str, tuple[LongClip, Clip]]) -> None:
    from detectors import VoiceChange, registered

    assert registered()["voice_change"] is VoiceChange
    detector = VoiceChange(device="cpu")
    faceless = copy.deepcopy(long_clips["authentic_music"][1])
    faceless.faces = []
    mute = copy.deepcopy(long_clips["authentic_music"][1])
    mute.audio = None
    quiet = copy.deepcopy(long_clips["authentic_music"][1])
    assert quiet.audio is not None
    quiet.audio = quiet.audio * 0.0
    results = detector([faceless, mute, quiet])
    assert [r.applicable for r in results] == [False, False, False]
    assert "no face" in results[0].evidence["reason"] and "no audio" in results[1].evidence["reason"]
    assert "no speech" in results[2].evidence["reason"]


@needs_resemblyzer
@pytest.mark.slow
def test_voice_change_finds_another_voice_under_the_same_talking_face(tmp_path: Path) -> None:
    from detectors import VoiceChange

    voices = (("en-us+f2", 145, 65), ("en-gb-scotland+m3", 135, 40))
    made = make_long_clip(tmp_path / "voice.mp4", kind="voice", seed=21, splice_s=4.0, voices=voices,
                          events=("pause",), n_sentences=3, fps=12.5)
    calm = make_long_clip(tmp_path / "calm.mp4", kind="authentic", seed=22, voices=voices[:1],
                          events=("pause", "second_speaker"), n_sentences=3, fps=12.5)
    tracker = FaceTracker()
    spliced, authentic = VoiceChange(device="cpu")([tracker(decode_clip(m.path, fps=5.0)) for m in (made, calm)])
    assert spliced.applicable and spliced.flagged, spliced.evidence
    assert made.splice is not None
    change = max(spliced.evidence["stretches"], key=lambda s: s["score"])
    assert _overlap((change["start_s"], change["end_s"]), made.splice) > 0
    assert spliced.evidence["reasons"][0].startswith("another voice from")
    assert spliced.version.startswith("1.0+resemblyzer-")
    assert authentic.applicable and not authentic.flagged, authentic.evidence["stretches"]


@pytest.mark.slow
def test_vigil_scan_prints_the_spliced_stretch(long_clips: dict[str, tuple[LongClip, Clip]], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from pipeline import ResultMessage, decode, get_settings
    from pipeline.cli import app

    monkeypatch.delenv("VIGIL_CONFIG", raising=False)
    monkeypatch.setenv("VIGIL_DEVICE", "cpu")
    monkeypatch.setenv("VIGIL_DETECTORS", "lipsync")
    get_settings.cache_clear()
    try:
        made = long_clips["voice_3s"][0]
        out = tmp_path / "result.json"
        result = CliRunner().invoke(app, ["scan", str(made.path), "--json", str(out), "--report",
                                          str(tmp_path / "report")])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "manipulated stretches" in text and "mouth does not follow the speech from" in text
    message = decode(out.read_bytes(), ResultMessage)
    assert message.segments and message.segments[0].detectors == ["lipsync"]
    assert message.fused.verdict in ("likely_manipulated", "suspicious") and message.fused.timeline
