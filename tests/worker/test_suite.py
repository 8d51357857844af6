"""The Suite: settings → detectors, prepare (decode + faces) with timings, analyse batched across clips, messages."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from detector_media import prepared, talking  # noqa: F401  (session fixtures)
from detectors import Clip, CorruptMedia, Detector, DetectorResult, Fusion, LipSync, ModelError, NotApplicable, \
    Spectral, Suite, SuiteResult, register, suite_version
from detectors._suite import default_detector_names
from detectors.synthetic import TalkingClip
from pipeline import ResultMessage, Settings, SourceMetadata, decode, encode


class _Exploding(Detector[torch.Tensor, torch.Tensor]):
    """A detector whose device step fails, to show that one detector's failure does not sink the suite."""

    name = "test_exploding"
    version = "0"
    enabled_by_default = False

    def preprocess(self, clip: Clip) -> torch.Tensor | NotApplicable:
        return torch.zeros(1)

    def _forward(self, batch: list[torch.Tensor]) -> list[torch.Tensor]:
        raise RuntimeError("device on fire")

    def postprocess(self, raw: torch.Tensor, clip: Clip) -> DetectorResult:
        raise AssertionError("never reached")


register(_Exploding)


@pytest.fixture(scope="module")
def suite() -> Suite:
    return Suite.from_settings(Settings(device="cpu", detectors=["lipsync", "spectral"]))


def test_from_settings_builds_the_named_detectors_on_the_settings_device(suite: Suite) -> None:
    assert suite.names == ["lipsync", "spectral"]
    assert all(d.device == torch.device("cpu") for d in suite.detectors)
    assert suite.version == suite_version(suite.detectors, suite.fusion.version)
    assert suite.fps == 5.0 and suite.max_side == 640 and suite.max_duration_s == 1800.0
    only = Suite.from_settings(Settings(device="cpu", sample_fps=10), names=["lipsync"])
    assert only.names == ["lipsync"] and only.fps == 10 and only.version != suite.version


def test_default_names_put_the_contract_first_and_leave_test_detectors_out() -> None:
    names = default_detector_names()
    assert "lipsync" in names and "spectral" in names and "test_exploding" not in names
    assert names.index("lipsync") < names.index("spectral")


def test_unknown_or_unloadable_detectors_are_model_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="unknown detector 'nope'"):
        Suite.from_settings(Settings(device="cpu"), names=["nope"])
    with pytest.raises(ModelError, match="no checkpoint configured"):
        Suite.from_settings(Settings(device="cpu", face_forgery_checkpoint=None), names=["face_forgery"])
    with pytest.raises(Exception, match="does not exist"):
        Suite.from_settings(Settings(device="cpu", calibration_file=tmp_path / "missing.json"), names=["lipsync"])
    with pytest.raises(ValueError, match="each detector once"):
        Suite([LipSync(device="cpu"), LipSync(device="cpu")])


def test_prepare_decodes_tracks_and_times(suite: Suite, talking: dict[str, TalkingClip]) -> None:
    clip, timings = suite.prepare(talking["late_200"].path, media_sha256="0" * 64)
    # lipsync's probe reads the speaker's mouth from the file at its own rate while the file is at hand
    assert set(timings) == {"decode", "faces", "probe_lipsync"} and all(v > 0 for v in timings.values())
    assert clip.speaker is not None and clip.fps == 5.0 and clip.media_sha256 == "0" * 64
    patches = clip.probes["mouth"]
    assert patches.rate == pytest.approx(25.0, abs=0.5) and patches.valid.mean() > 0.9  # the 25 fps source
    # the probe read the frames' luma kept by the decode (the file is small), and the clip no longer holds them
    assert set(clip.probes) == {"mouth"}


def test_prepare_cuts_the_same_mouth_patches_whether_the_decode_kept_the_frames_or_not(
        suite: Suite, talking: dict[str, TalkingClip], monkeypatch: pytest.MonkeyPatch) -> None:
    kept, _ = suite.prepare(talking["sync"].path)
    monkeypatch.setattr(suite, "luma_budget", 0)  # the probe decodes the file again
    again, _ = suite.prepare(talking["sync"].path)
    a, b = kept.probes["mouth"], again.probes["mouth"]
    for name in ("times", "patches", "valid", "cuts"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert (a.rate, a.mouth_px) == (b.rate, b.mouth_px)


def test_prepare_raises_media_errors(suite: Suite, tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(np.random.default_rng(0).bytes(10_000))
    with pytest.raises(CorruptMedia):
        suite.prepare(bad)


def test_analyse_batches_across_clips_and_fuses(suite: Suite, prepared: dict[str, Clip]) -> None:
    clips = [prepared["late_200"], prepared["sync"], prepared["no_face"]]
    calls: list[int] = []
    lipsync = suite.detectors[0]
    original = lipsync._forward
    lipsync._forward = lambda batch: calls.append(len(batch)) or original(batch)  # type: ignore[method-assign]
    try:
        results = suite.analyse(clips)
    finally:
        lipsync._forward = original  # type: ignore[method-assign]
    assert calls == [2]  # both clips with a face in one device step; the faceless one is not applicable
    assert [type(r) for r in results] == [SuiteResult] * 3
    late, sync, faceless = results
    assert late.fused.verdict == "likely_manipulated" and "speech lags the mouth" in late.fused.reasons[0]
    assert sync.fused.verdict == "no_signal"
    assert not faceless.results["lipsync"].applicable and faceless.results["spectral"].applicable
    assert set(late.timings_ms) == {"lipsync", "spectral", "fusion"}
    assert suite.analyse([]) == []


def test_to_message_is_a_valid_result(suite: Suite, prepared: dict[str, Clip], talking: dict[str, TalkingClip]
                                      ) -> None:
    result = suite.analyse([prepared["early_400"]])[0]
    source = SourceMetadata(platform="youtube", url="https://www.youtube.com/watch?v=abc")
    message = result.to_message(video_uid="youtube:abc", suite_version=suite.version, source=source,
                                extra_timings={"download": 12.0, "decode": 3.0})
    again = decode(encode(message), ResultMessage)
    assert again.detectors["lipsync"].evidence["offset_ms"] < -350
    assert again.fused.verdict == "likely_manipulated" and again.suite_version == suite.version
    assert list(again.timings_ms)[:2] == ["download", "decode"] and "lipsync" in again.timings_ms
    assert len(again.media_sha256) == 64  # hashed from the file: the decoded clip carried none
    assert again.duration_s == pytest.approx(prepared["early_400"].duration_s)


def test_a_failing_detector_fails_alone(prepared: dict[str, Clip]) -> None:
    suite = Suite([_Exploding(device="cpu"), Spectral(device="cpu")], fusion=Fusion())
    result = suite.analyse([prepared["sync"]])[0]
    assert "device on fire" in result.results["test_exploding"].error
    assert result.results["spectral"].applicable and result.fused.verdict == "no_signal"
    assert any("test_exploding: failed" in reason for reason in result.fused.reasons)


def test_scan_runs_every_stage(suite: Suite, talking: dict[str, TalkingClip]) -> None:
    result = suite.scan(talking["sync"].path)
    assert list(result.timings_ms)[:2] == ["decode", "faces"] and result.fused.verdict == "no_signal"
