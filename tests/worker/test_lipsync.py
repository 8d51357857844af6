"""lipsync on generated talking heads: offsets recovered and flagged, in-sync clips cleared, not-applicable cases."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from detector_media import prepared, talking  # noqa: F401  (session fixtures)
from detectors import Clip, DetectorResult, LipSync, create, registered
from detectors.synthetic import TalkingClip

OUT_OF_SYNC = ["late_200", "early_200", "late_400", "early_400"]
IN_SYNC = ["sync", "sync_b", "lead_80", "lag_80"]


@pytest.fixture(scope="module")
def results(prepared: dict[str, Clip]) -> dict[str, DetectorResult]:
    """Every clip through one batched call, as the suite runs it."""
    names = list(prepared)
    detector = LipSync(device="cpu", batch_size=len(names))
    return dict(zip(names, detector([prepared[n] for n in names]), strict=True))


def test_registered_under_its_contract_name() -> None:
    assert registered()["lipsync"] is LipSync
    assert isinstance(create("lipsync", device="cpu"), LipSync)


@pytest.mark.parametrize("name", OUT_OF_SYNC)
def test_offsets_of_200_ms_and_more_are_recovered_and_flagged(
        name: str, results: dict[str, DetectorResult], talking: dict[str, TalkingClip],
        prepared: dict[str, Clip]) -> None:
    result = results[name]
    truth = talking[name].offset_ms
    frame_interval_ms = 1000.0 / prepared[name].fps
    assert result.applicable and result.flagged, result.evidence
    assert abs(result.evidence["offset_ms"] - truth) <= frame_interval_ms
    assert abs(result.evidence["offset_ms"] - truth) <= 40.0  # in fact within one source frame (25 fps)
    assert result.evidence["confidence"] > 0.5
    assert np.sign(result.evidence["offset_ms"]) == np.sign(truth)  # > 0: audio later than the mouth


@pytest.mark.parametrize("name", IN_SYNC)
def test_in_sync_clips_are_not_flagged(name: str, results: dict[str, DetectorResult],
                                       talking: dict[str, TalkingClip]) -> None:
    result = results[name]
    assert result.applicable and not result.flagged and result.score < 0.2
    assert abs(result.evidence["offset_ms"] - talking[name].offset_ms) <= 40.0


def test_evidence_has_the_offset_series_and_the_lag_curve(results: dict[str, DetectorResult],
                                                          prepared: dict[str, Clip]) -> None:
    result = results["late_200"]
    ev = result.evidence
    assert len(ev["lag_ms"]) == len(ev["correlation"]) == 101 and ev["lag_ms"][0] == -1000.0
    best = ev["lag_ms"][int(np.argmax(ev["correlation"]))]
    assert abs(best - ev["offset_ms"]) <= 20.0
    assert ev["peak_correlation"] == pytest.approx(max(ev["correlation"]), abs=1e-3)
    # 2.5 s windows with a 0.5 s hop over a ~7.5 s clip; only windows where the face talks over speech are judged
    assert len(ev["offsets"]) == len(result.timeline) >= 6
    assert np.median([abs(p["offset_ms"] - 200.0) for p in ev["offsets"]]) <= 40.0
    assert 0.0 <= result.timeline[0].start_s <= 3.0 and result.timeline[-1].end_s <= prepared["late_200"].duration_s
    assert all(w.score >= 0.5 for w in result.timeline)  # every window of a clip offset throughout is off
    assert result.to_output().evidence["offset_ms"] == ev["offset_ms"]


@pytest.mark.parametrize(("name", "reason"), [
    ("no_face", "no face"),
    ("silent", "no speech"),
    ("still_face", "still face"),
])
def test_not_applicable_without_a_face_speech_or_a_moving_mouth(name: str, reason: str,
                                                                results: dict[str, DetectorResult]) -> None:
    result = results[name]
    assert result.applicable is False and result.score is None
    assert reason in result.evidence["reason"]
    assert result.to_output().applicable is False


def test_not_applicable_without_audio_or_when_too_short(prepared: dict[str, Clip]) -> None:
    detector = LipSync(device="cpu")
    mute = copy.deepcopy(prepared["sync"])
    mute.audio = None
    assert "no audio" in detector(mute).evidence["reason"]
    short = copy.deepcopy(prepared["sync"])
    short.duration_s = 2.0
    assert "too short" in detector(short).evidence["reason"]
    hidden = copy.deepcopy(prepared["sync"])
    keep = np.arange(len(hidden.speaker)) < len(hidden.speaker) // 4
    track = hidden.speaker
    track.frame_index, track.boxes, track.mouth_open = track.frame_index[keep], track.boxes[keep], \
        track.mouth_open[keep]
    assert "visible in only" in detector(hidden).evidence["reason"]


def test_a_mouth_too_small_to_read_is_not_applicable_rather_than_a_dub(prepared: dict[str, Clip]) -> None:
    """A face far from the camera, read from the sampled frames only (no mouth patches from the file): landmark
    jitter is as large as the lips' movement, so an authentic mouth would read as not following the speech. The
    detector says it cannot judge instead of flagging."""
    from detectors.lipsync import mouth_width_px

    clip = prepared["sync"]
    assert mouth_width_px(clip.speaker) >= 35  # the generated talking heads are read
    small = copy.deepcopy(clip)
    small.probes.clear()
    small.speaker.landmarks = small.speaker.landmarks * 0.6  # the same face at 60 % of its size
    result = LipSync(device="cpu")(small)
    assert not result.applicable and "mouth too small" in result.evidence["reason"]
    assert "VIGIL_SAMPLE_MAX_SIDE" in result.evidence["reason"]


def test_a_dub_correlates_less_than_the_real_speech(results: dict[str, DetectorResult]) -> None:
    dub = results["mismatched"]
    assert dub.applicable
    assert dub.evidence["peak_correlation"] < min(results[n].evidence["peak_correlation"] for n in IN_SYNC)


def test_batched_and_single_runs_agree(prepared: dict[str, Clip], results: dict[str, DetectorResult]) -> None:
    single = LipSync(device="cpu")(prepared["early_200"])
    assert single.score == pytest.approx(results["early_200"].score, abs=1e-5)
    assert single.evidence["offset_ms"] == results["early_200"].evidence["offset_ms"]


def test_the_mouth_is_read_at_the_videos_own_rate_and_the_sampled_frames_remain_the_fallback(
        prepared: dict[str, Clip], results: dict[str, DetectorResult], talking: dict[str, TalkingClip]) -> None:
    """With the probe's mouth patches (25 fps here) the reading is the patches' appearance; without them (a clip
    built in memory, a file that could not be read again) the face mesh at 5 fps, and both recover the offset."""
    dense = results["late_200"]
    assert dense.evidence["mouth_reading"] == "appearance"
    mesh_clip = copy.deepcopy(prepared["late_200"])
    mesh_clip.probes.clear()
    mesh = LipSync(device="cpu")(mesh_clip)
    assert mesh.evidence["mouth_reading"] == "mesh" and mesh.flagged
    truth = talking["late_200"].offset_ms
    assert abs(dense.evidence["offset_ms"] - truth) <= 40.0 and abs(mesh.evidence["offset_ms"] - truth) <= 40.0
    # the denser reading follows the speech more closely than the mesh at the sampled frames
    assert dense.evidence["peak_correlation"] > mesh.evidence["peak_correlation"]
    off = LipSync(device="cpu", dense_mouth=False)(copy.deepcopy(prepared["late_200"]))
    assert off.evidence["mouth_reading"] == "mesh"


def test_a_dub_of_the_whole_clip_is_a_cue_not_a_flag(results: dict[str, DetectorResult]) -> None:
    """A mouth that does not follow the speech is named (manipulation "dub", a reason), but scores nothing: real
    speakers' own mouths read like that too (the note before ``chance_peak``), so it waits for another detector."""
    dub = results["mismatched"]
    assert dub.applicable and not dub.flagged and dub.evidence["manipulation"] == "dub", dub.evidence
    assert dub.evidence["median_window_correlation"] < 0.6
    reason = next(r for r in dub.evidence["reasons"] if "does not follow the speech" in r)
    assert "not a finding on its own" in reason


def _raw_reading(detector: LipSync, *, peak: float, lag_ms: float, clip_samples: int,  # type: ignore[type-arg]
                 unrelated: np.ndarray | None = None) -> dict:
    """What the device step hands postprocess for an 8 s clip read from the mesh: one judged window, and a whole-clip
    curve peaking at ``peak`` at ``lag_ms`` (``unrelated``: the peaks against the speech moved by seconds)."""
    import torch

    from detectors.lipsync import MESH_RULE

    lags_ms = 1000.0 * detector.lags
    curve = peak * np.exp(-(((lags_ms - lag_ms) / 120.0) ** 2))
    starts = detector._window_starts(8.0, MESH_RULE)
    windows = np.tile(curve, (starts.size, 1))
    judged = np.zeros(starts.size, dtype=bool)
    judged[3] = True
    return {"windows": torch.tensor(windows, dtype=torch.float32), "clip": torch.tensor(curve, dtype=torch.float32),
            "samples": torch.full((starts.size,), 12.0), "clip_samples": clip_samples, "judged": judged,
            "reading": "mesh", "talking": False, "rule": MESH_RULE, "unrelated": unrelated}


def test_a_whole_clip_offset_must_stand_above_chance_for_its_number_of_mouth_samples() -> None:
    """A listener who says a few words: the mesh at 5 fps gives a dozen samples, and a peak of 0.74 at 950 ms over
    101 lags is what chance gives them (3 standard errors of a correlation of 12 samples: 1.0). It may grade the clip,
    never flag it; the same peak over a sentence's worth of samples is an offset."""
    from detectors.lipsync import THIN_SUPPORT_CAP, chance_peak

    detector = LipSync(device="cpu")
    clip = Clip(source="listener", duration_s=8.0, fps=5.0, frames=np.zeros((40, 8, 8, 3), np.uint8),
                timestamps=np.arange(40) / 5.0, audio=np.zeros(16000 * 8, np.float32))
    assert chance_peak(12) == pytest.approx(1.0) and chance_peak(200) < 0.25
    few = detector.postprocess(_raw_reading(detector, peak=0.74, lag_ms=950.0, clip_samples=12), clip)
    assert few.score <= THIN_SUPPORT_CAP and few.evidence["manipulation"] is None, few.evidence["reasons"]
    assert any("12 mouth samples" in r and "chance" in r for r in few.evidence["reasons"])
    many = detector.postprocess(_raw_reading(detector, peak=0.74, lag_ms=950.0, clip_samples=60), clip)
    assert many.score >= 0.5 and many.evidence["manipulation"] == "shift"
    assert abs(many.evidence["offset_ms"] - 950.0) <= 20.0


def test_a_whole_clip_offset_must_stand_above_the_clips_own_unrelated_alignments() -> None:
    """A real mouth read at 30 frames a second peaked at 0.45, 640 ms from its own published voice, where that mouth
    against the speech moved by seconds peaks at 0.2-0.42: three of their standard deviations above their mean is
    0.51, so 0.45 is chance for this clip and grades it only; the same peak over signals whose unrelated peaks stay
    near 0.15 is an offset."""
    from detectors.lipsync import THIN_SUPPORT_CAP

    detector = LipSync(device="cpu")
    clip = Clip(source="speaker", duration_s=8.0, fps=5.0, frames=np.zeros((40, 8, 8, 3), np.uint8),
                timestamps=np.arange(40) / 5.0, audio=np.zeros(16000 * 8, np.float32))
    loose = np.linspace(0.2, 0.42, 24)  # mean 0.31, three standard deviations above it 0.51
    chance = detector.postprocess(_raw_reading(detector, peak=0.45, lag_ms=640.0, clip_samples=200,
                                               unrelated=loose), clip)
    assert chance.score <= THIN_SUPPORT_CAP and chance.evidence["manipulation"] is None, chance.evidence["reasons"]
    assert any("moved by seconds" in r for r in chance.evidence["reasons"])
    assert chance.evidence["chance_unrelated"] == pytest.approx(loose.mean() + 3 * loose.std(), abs=1e-3)
    tight = np.linspace(0.1, 0.22, 24)
    offset = detector.postprocess(_raw_reading(detector, peak=0.62, lag_ms=640.0, clip_samples=200,
                                               unrelated=tight), clip)
    assert offset.flagged and offset.evidence["manipulation"] == "shift"


def test_unrelated_peaks_are_the_chance_of_this_clips_signals() -> None:
    """The same mouth against the same speech moved by seconds: a mouth that follows its speech peaks far above
    them at its lag; one unrelated to it peaks among them."""
    from detectors.lipsync import ENVELOPE_RATE, unrelated_peaks

    rng = np.random.default_rng(3)
    n_env = int(12 * ENVELOPE_RATE)
    env = np.convolve(rng.standard_normal(n_env), np.ones(15) / 15, mode="same")  # a 12 s speech-like envelope
    times = np.arange(0, 12.0, 1 / 25)  # a mouth read at 25 frames a second
    follows = np.interp(times + 0.1, np.arange(n_env) / ENVELOPE_RATE, env) + 0.2 * env.std() * rng.standard_normal(
        times.size)
    lags = np.round(np.arange(-1.0, 1.0 + 1e-9, 0.02), 6)
    peaks = unrelated_peaks(follows, times, env, np.ones(times.size), lags)
    assert peaks.size == 24 and peaks.max() < 0.6
    own = max(np.corrcoef(follows, np.interp(times + lag, np.arange(n_env) / ENVELOPE_RATE, env))[0, 1]
              for lag in lags)
    assert own > peaks.mean() + 3 * peaks.std()
    unrelated = np.convolve(rng.standard_normal(times.size), np.ones(4) / 4, mode="same")
    other = max(np.corrcoef(unrelated, np.interp(times + lag, np.arange(n_env) / ENVELOPE_RATE, env))[0, 1]
                for lag in lags)
    assert other < peaks.mean() + 3 * peaks.std()
    assert unrelated_peaks(follows[:125], times[:125], env[:500], np.ones(125), lags).size == 0  # 5 s: too short


def test_an_offset_over_two_words_is_still_found(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Two words in eight seconds with the audio 500 ms late: a clear peak, above chance even for the mesh's 18
    samples, and far above it at the file's rate."""
    from detectors import FaceTracker, decode_clip
    from detectors._mouth import PROBE_KEY, mouth_patches
    from detectors.synthetic import make_talking_clip

    path = tmp_path / "few_words.mp4"
    make_talking_clip(path, "Yes, indeed.", offset_ms=500.0, lead_s=3.5, tail_s=3.5, seed=4)
    clip = FaceTracker()(decode_clip(path, fps=5.0))
    detector = LipSync(device="cpu")
    mesh = detector(copy.deepcopy(clip))
    assert mesh.evidence["mouth_reading"] == "mesh" and mesh.evidence["clip_samples"] < 40
    assert mesh.flagged and abs(mesh.evidence["offset_ms"] - 500.0) <= 80.0, mesh.evidence["reasons"]
    clip.probes[PROBE_KEY] = mouth_patches(clip, path)
    dense = detector(clip)
    assert dense.evidence["mouth_reading"] == "appearance"
    assert dense.flagged and abs(dense.evidence["offset_ms"] - 500.0) <= 40.0, dense.evidence["reasons"]


def test_the_still_speech_memo_gives_every_window_the_reading_it_has_alone() -> None:
    """``_silent_mouth_s`` reads each frame once across a clip's overlapping windows (``memo``): every window's
    longest stretch of speech under a still mouth is the one it reads without the memo."""
    rng = np.random.default_rng(7)
    all_times = np.arange(0, 12, 0.04)
    shown = rng.random(all_times.size) > 0.15  # some frames without the face
    times = all_times[shown]
    mouth = np.where((times % 3) < 1.2, 0.02, np.abs(np.sin(times * 9)) * 0.5) + rng.normal(0, 0.003, times.size)
    level_times = np.arange(0, 12, 0.01)
    active = ((level_times % 5) < 3.5) & (rng.random(level_times.size) > 0.1)
    closed = float(np.percentile(mouth, 30))
    detector = LipSync(device="cpu")
    memo = np.full(all_times.size, -1, dtype=np.int8)
    for start in np.arange(0, 11, 0.2):
        alone = detector._silent_mouth_s(start, start + 1.0, times, mouth, all_times, level_times, active, closed, 0.02)
        shared = detector._silent_mouth_s(start, start + 1.0, times, mouth, all_times, level_times, active, closed,
                                          0.02, memo=memo)
        assert shared == alone
    assert (memo >= 0).any() and set(np.unique(memo)) <= {-1, 0, 1}
