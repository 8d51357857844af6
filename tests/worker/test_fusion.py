"""Fusion: verdicts and readable reasons, Platt calibration, and every way a calibration file can be wrong."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from detectors import DetectorResult, Fusion, LipSync, Window, load_calibration, suite_version
from detectors._fusion import DEFAULT_CALIBRATION_FILE, Calibration, describe
from detectors.lipsync import describe_sync
from pipeline import ConfigError


def lipsync(score: float, offset_ms: float, **extra: object) -> DetectorResult:
    """A lipsync result worded as its postprocess words it."""
    evidence: dict[str, object] = {"offset_ms": offset_ms, "confidence": 0.8, "peak_correlation": 0.8,
                                   "talking": True, **extra}
    evidence["reasons"] = [describe_sync(offset_ms, confidence=0.8, peak=float(evidence["peak_correlation"]),
                                         talking=True)]
    return DetectorResult(name="lipsync", version="1.0", applicable=True, score=score,
                          timeline=[Window(0, 4, score)], evidence=evidence)


def spectral(score: float) -> DetectorResult:
    reason = ("upsampling artefacts in the face spectrum (5 frequency bins above the camera range, Nyquist peak 31 dB)"
              if score >= 0.5 else "face spectrum within the camera range")
    return DetectorResult(name="spectral", version="1.0", applicable=True, score=score,
                          evidence={"crop_source": "face", "bins_above_reference": 5, "nyquist_peak_db": 31.0,
                                    "reasons": [reason]})


def not_applicable(name: str, reason: str) -> DetectorResult:
    return DetectorResult.not_applicable(name, "1.0", reason)


@pytest.fixture
def fusion() -> Fusion:
    return Fusion()


def test_packaged_calibration_loads_with_a_version() -> None:
    calibration = load_calibration()
    assert calibration.version and calibration.for_detector("lipsync").weight == 1.0
    assert calibration.for_detector("not_listed") == calibration.default
    assert load_calibration(DEFAULT_CALIBRATION_FILE) == calibration


def test_lagging_mouth_is_likely_manipulated_with_the_offset_in_words(fusion: Fusion) -> None:
    fused = fusion.fuse({"lipsync": lipsync(0.92, -200.0), "spectral": spectral(0.03)})
    assert fused.verdict == "likely_manipulated" and fused.score >= 0.9
    assert fused.reasons[0] == "lipsync: mouth lags speech by 200 ms (confidence 0.80)"


def test_late_audio_is_described_the_other_way_round(fusion: Fusion) -> None:
    fused = fusion.fuse({"lipsync": lipsync(0.97, 410.0)})
    assert fused.reasons == ["lipsync: speech lags the mouth by 410 ms (confidence 0.80)"]


def test_one_moderate_flag_is_suspicious(fusion: Fusion) -> None:
    fused = fusion.fuse({"lipsync": lipsync(0.1, 10.0), "spectral": spectral(0.8)})
    assert fused.verdict == "suspicious"  # 1 - (1 - 0.1) (1 - 0.7 * 0.8) = 0.604
    assert fused.score == pytest.approx(1 - 0.9 * (1 - 0.56), abs=1e-4)
    assert fused.reasons[0].startswith("spectral: upsampling artefacts in the face spectrum")


def test_clean_results_give_no_signal_with_what_was_checked(fusion: Fusion) -> None:
    fused = fusion.fuse({"lipsync": lipsync(0.01, 12.0), "spectral": spectral(0.05),
                         "voice_synthetic": not_applicable("voice_synthetic", "no speech")})
    assert fused.verdict == "no_signal" and fused.score < 0.1
    assert fused.reasons[0] == "no detector found a sign of manipulation"
    assert "lipsync: mouth and speech in sync (offset 12 ms)" in fused.reasons
    assert "voice_synthetic: not applicable (no speech)" in fused.reasons


def test_nothing_applicable_is_inconclusive(fusion: Fusion) -> None:
    fused = fusion.fuse({"lipsync": not_applicable("lipsync", "no face"),
                         "spectral": DetectorResult.failed("spectral", "1.0", RuntimeError("CUDA out of memory"))})
    assert fused.verdict == "inconclusive" and fused.score is None
    assert "lipsync: not applicable (no face)" in fused.reasons[0]
    assert "CUDA out of memory" in fused.reasons[0]
    assert fusion.fuse({}).verdict == "inconclusive"


def test_a_dub_is_described_as_unrelated_speech() -> None:
    text = describe(lipsync(0.7, -300.0, peak_correlation=0.12))
    assert text.startswith("lipsync: ") and "does not follow the speech" in text


def test_describe_is_generic_and_knows_no_detector_by_name() -> None:
    other = DetectorResult(name="anything", version="1", applicable=True, score=0.6,
                           evidence={"reasons": ["a reason that says where (2.0 s to 4.0 s)", "a second one"]})
    assert describe(other) == "anything: a reason that says where (2.0 s to 4.0 s)"
    bare = DetectorResult(name="lipsync", version="1", applicable=True, score=0.25, evidence={"offset_ms": 300.0})
    assert describe(bare) == "lipsync: score 0.25"  # no reasons: the score, whatever the detector's name


def test_platt_scaling_applies_to_score_and_timeline(tmp_path: Path) -> None:
    data = json.loads(DEFAULT_CALIBRATION_FILE.read_text())
    data["version"] = "test-platt"
    data["detectors"]["lipsync"]["platt"] = {"a": 2.0, "b": -1.0}
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(data))
    fusion = Fusion.from_file(path)
    calibrated = fusion.calibrate(lipsync(0.5, 0.0))
    expected = 1 / (1 + 2.718281828459045 ** 1.0)  # logit(0.5) = 0 → sigmoid(-1)
    assert calibrated.score == pytest.approx(expected) and calibrated.timeline[0].score == pytest.approx(expected)
    assert calibrated.evidence["raw_score"] == 0.5
    assert fusion.calibrate(spectral(0.3)).score == pytest.approx(0.3)  # identity
    na = not_applicable("lipsync", "no face")
    assert fusion.calibrate(na) is na
    assert suite_version([LipSync(device="cpu")], fusion.version) != \
        suite_version([LipSync(device="cpu")], Fusion().version)


def test_max_fusion_method() -> None:
    calibration = Calibration.model_validate({**load_calibration().model_dump(), "fusion": {"method": "max"}})
    fused = Fusion(calibration).fuse({"lipsync": lipsync(0.6, 180.0), "spectral": spectral(0.6)})
    assert fused.score == pytest.approx(0.6) and fused.verdict == "suspicious"


@pytest.mark.parametrize(("content", "message"), [
    (None, "does not exist"),
    ("{broken", "is not JSON"),
    ("[1, 2]", "must hold a JSON object"),
    ('{"detectors": {}}', "has no 'version' field"),
    ('{"version": ""}', "version"),
    ('{"version": "v1", "detectors": {"lipsync": {"weight": 2}}}', "detectors.lipsync.weight"),
    ('{"version": "v1", "detectors": {"lipsync": {"platt": {"a": -1, "b": 0}}}}', "platt.a"),
    ('{"version": "v1", "verdicts": {"likely_manipulated": 0.4, "suspicious": 0.6}}', "must not be above"),
    ('{"version": "v1", "fusion": {"method": "mean"}}', "fusion.method"),
    ('{"version": "v1", "unknown": 1}', "unknown"),
])
def test_calibration_file_errors_name_the_problem(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "calibration.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=message) as caught:
        load_calibration(path)
    assert str(path) in str(caught.value) and "VIGIL_CALIBRATION_FILE" in str(caught.value)


# -- every combination of applicable / capped / flagged: the verdict never contradicts its reasons ------------------

_STATES = ("not_applicable", "calm", "flagged", "stretch")


def _result(name: str, state: str, *, capped: bool) -> DetectorResult:
    """One detector in one state: calm (0.1), flagged as a whole clip (0.8), or calm as a whole but with a
    manipulated stretch of its own (0.88, as voice_change words "another voice from 3.2 s to 4.8 s")."""
    if state == "not_applicable":
        return not_applicable(name, "no face")
    evidence: dict[str, object] = {"reasons": [f"{name} {state}"]}
    if capped:
        evidence["decides_alone"] = False
    score = {"calm": 0.1, "flagged": 0.8, "stretch": 0.3}[state]
    if state == "stretch":
        evidence["stretches"] = [{"start_s": 3.2, "end_s": 4.8, "score": 0.88,
                                  "reason": f"{name}: another voice from 3.2 s to 4.8 s"}]
        evidence["reasons"] = [f"{name}: another voice from 3.2 s to 4.8 s"]
    return DetectorResult(name=name, version="1.0", applicable=True, score=score,
                          timeline=[Window(0.0, 8.0, score)], evidence=evidence)


@pytest.mark.parametrize("spectral_capped", [False, True])
@pytest.mark.parametrize("states", list(__import__("itertools").product(_STATES, repeat=3)),
                         ids=lambda s: "-".join(s))
def test_verdict_never_contradicts_a_flag(states: tuple[str, str, str], spectral_capped: bool) -> None:
    """lipsync (weight 1, decides alone), voice_change (weight 0.45, cannot decide alone), spectral (0.7, either):
    every combination, through fusion and the located stretches, as ``Suite.analyse`` runs them."""
    from detectors._fusion import DetectorCalibration
    from detectors._segments import locate

    # the mechanism with raw scores: voice_change as a corroborating detector of weight 0.45 without Platt scaling
    base = load_calibration()
    fusion = Fusion(base.model_copy(update={"detectors": {
        **base.detectors, "voice_change": DetectorCalibration(platt=None, weight=0.45)}}))
    capped = {"lipsync": False, "voice_change": True, "spectral": spectral_capped}
    results = {name: fusion.calibrate(_result(name, state, capped=capped[name]))
               for name, state in zip(("lipsync", "voice_change", "spectral"), states, strict=True)}
    fused, segments = locate(results, fusion.fuse(results), fusion.calibration, duration_s=8.0)
    flagged = [n for n, s in zip(results, states, strict=True) if s in ("flagged", "stretch")]
    deciding = [n for n in flagged if not capped[n]]
    if all(s == "not_applicable" for s in states):
        assert fused.verdict == "inconclusive" and fused.score is None
        return
    if flagged:
        assert fused.verdict in ("suspicious", "likely_manipulated"), (fused.verdict, fused.reasons)
        assert "no detector found a sign of manipulation" not in fused.reasons
        assert not any(r.startswith("no applicable detector could rule out") for r in fused.reasons)
        assert any(fused.reasons[0].startswith(f"{n}:") for n in flagged), fused.reasons
        if not deciding:  # only detectors that cannot decide alone flagged it
            assert fused.verdict == "suspicious"
        if "stretch" in states:
            assert any(s.start_s <= 3.2 and s.end_s >= 4.8 for s in segments), segments
        if fused.verdict == "likely_manipulated":
            assert fused.score is not None and fused.score >= 0.75
    else:
        assert fused.verdict in ("no_signal", "inconclusive") and fused.score is not None and fused.score < 0.5
        assert not segments
        if fused.verdict == "no_signal":
            assert fused.reasons[0] == "no detector found a sign of manipulation"
    # whatever the verdict, no reason says that nothing was found beside a detector's located finding
    if "stretch" in states:
        assert "no detector found a sign of manipulation" not in fused.reasons


def test_platt_scaling_applies_to_stretches_too(tmp_path: Path) -> None:
    """A stretch is a flag on the detector's score scale: calibration maps it like the score, so a detector whose
    raw stretches overstate it (voice_change on close voices) does not flag a clip by its raw number."""
    from detectors._segments import locate

    data = json.loads(DEFAULT_CALIBRATION_FILE.read_text())
    data["version"] = "test-stretch-platt"
    data["detectors"]["voice_change"] = {"platt": {"a": 0.1, "b": -1.6}, "weight": 0.45}
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(data))
    fusion = Fusion.from_file(path)
    raw = DetectorResult(name="voice_change", version="1.0", applicable=True, score=0.9,
                         timeline=[Window(3.2, 4.8, 0.9)],
                         evidence={"stretches": [{"start_s": 3.2, "end_s": 4.8, "score": 0.9, "reason": "another voice"}],
                                   "reasons": ["another voice from 3.2 s to 4.8 s"], "decides_alone": False})
    calibrated = fusion.calibrate(raw)
    stretch = calibrated.evidence["stretches"][0]
    assert stretch["raw_score"] == 0.9 and stretch["score"] == pytest.approx(calibrated.score, abs=1e-4)
    assert calibrated.score < 0.5
    results = {"voice_change": calibrated, "lipsync": fusion.calibrate(lipsync(0.02, 10.0))}
    fused, segments = locate(results, fusion.fuse(results), fusion.calibration, duration_s=8.0)
    assert not segments and fused.verdict == "no_signal"
    # the finding is named with its calibrated score; nothing claims that no detector found anything
    assert fused.reasons[0] == "no finding reached the flag line (0.5)"
    assert any(r.startswith("voice_change: under the flag line (0.") and r.endswith("another voice from 3.2 s to 4.8 s")
               for r in fused.reasons), fused.reasons
    assert raw.evidence["stretches"][0]["score"] == 0.9  # the detector's own result is left as it was


def test_a_cue_a_detector_names_without_scoring_it_is_named_in_a_calm_verdict() -> None:
    """lipsync's whole-clip dub is a cue (the mouth does not follow this speech) that adds nothing to the score: the
    verdict stays calm, but its first reason does not say that nothing was found, and the cue is among the reasons."""
    cue = "mouth movement does not follow the speech in most of the clip (...): a cue for another detector"
    lip = DetectorResult(name="lipsync", version="1.0", applicable=True, score=0.05,
                         evidence={"manipulation": "dub", "reasons": [cue], "offset_ms": 10.0})
    fused = Fusion().fuse({"lipsync": lip, "spectral": spectral(0.1)})
    assert fused.verdict == "no_signal"
    assert fused.reasons[0] == "no finding reached the flag line (0.5)"
    assert any(r.startswith("lipsync: under the flag line") and "does not follow the speech" in r
               for r in fused.reasons), fused.reasons
