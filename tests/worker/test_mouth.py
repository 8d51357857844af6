"""The mouth read from the file at its own rate (detectors/_mouth.py): patches, the appearance reading, cuts, and
every way it can be missing (the detector then keeps the face mesh's readings at the sampled frames)."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from detector_media import prepared, talking  # noqa: F401  (session fixtures)
from detectors import Clip, FaceTracker, LipSync, decode_clip
from detectors._mouth import (PATCH_H, PATCH_W, PROBE_KEY, MouthPatches, RunningMedian, dense_opening,
                              mouth_patches, principal_axes)
from detectors.lipsync import main_face
from detectors.synthetic import TalkingClip, make_long_clip, mouth_opening_from_speech, speak


def test_patches_cover_every_frame_of_the_file(prepared: dict[str, Clip], talking: dict[str, TalkingClip]) -> None:
    patches = prepared["sync"].probes[PROBE_KEY]
    assert patches.rate == pytest.approx(25.0, abs=0.5)  # the source rate, not the 5 fps of the sampled frames
    assert patches.patches.shape[1:] == (PATCH_H, PATCH_W) and patches.patches.dtype == np.uint8
    assert len(patches.times) >= 4 * len(prepared["sync"].frames)
    assert patches.valid.mean() > 0.95 and patches.cuts.size == 0
    assert 30 < patches.mouth_px < 60  # the astronaut's mouth, in the file's pixels


def test_the_appearance_reading_follows_the_true_mouth_opening(prepared: dict[str, Clip]) -> None:
    """The generated mouth opens by a known amount in every frame: the reading follows it far better than the face
    mesh does at the sampled frames."""
    clip = prepared["sync"]
    patches = clip.probes[PROBE_KEY]
    index, mesh = main_face(clip)
    reading = dense_opening(patches, clip.timestamps[index], mesh)
    assert reading is not None and reading.method == "appearance" and reading.motion > 0.1
    # the truth: the opening the renderer drew from the speech, placed where the mouth says it (audio in sync)
    assert clip.audio is not None
    truth = mouth_opening_from_speech(clip.audio, reading.times)
    ok = reading.valid
    assert np.corrcoef(reading.opening[ok], truth[ok])[0, 1] > 0.9
    assert np.percentile(reading.opening[ok], 5) == pytest.approx(0.0, abs=1e-6)  # the clip's own 0..1 scale
    assert np.percentile(reading.opening[ok], 95) == pytest.approx(1.0, abs=1e-6)


def test_a_still_face_reads_as_still(prepared: dict[str, Clip]) -> None:
    clip = prepared["still_face"]
    index, mesh = main_face(clip)
    reading = dense_opening(clip.probes[PROBE_KEY], clip.timestamps[index], mesh)
    assert reading is None or reading.motion < 0.08
    result = LipSync(device="cpu")(clip)
    assert not result.applicable and "still face" in result.evidence["reason"]


@pytest.fixture(scope="module")
def cutaway(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Clip]:
    path = tmp_path_factory.mktemp("mouth") / "cutaway.mp4"
    made = make_long_clip(path, seed=23, events=("cutaway",), n_sentences=3, fps=12.5)
    clip = FaceTracker()(decode_clip(path, fps=5.0))
    clip.probes[PROBE_KEY] = mouth_patches(clip, path)
    return made, clip


def test_cuts_are_found_at_the_files_rate_and_no_patch_spans_one(cutaway: tuple[object, Clip]) -> None:
    made, clip = cutaway
    patches = clip.probes[PROBE_KEY]
    (what, start, end), = made.events  # type: ignore[attr-defined]
    assert what == "cutaway"
    # the cut away and the cut back, each to the frame (80 ms at 12.5 fps)
    assert min(abs(patches.cuts - start)) <= 0.1 and min(abs(patches.cuts - end)) <= 0.1
    assert patches.valid[(patches.times > start - 1.0) & (patches.times < start - 0.3)].all()
    # every patch was placed from a sampled frame of the same shot (never interpolated across a cut)
    index, _ = main_face(clip)
    keys = clip.timestamps[index]
    shot_of = lambda t: np.searchsorted(patches.cuts, t + 1e-6, side="right")  # noqa: E731
    for t in patches.times[patches.valid]:
        near = keys[np.abs(keys - t) <= 0.6]
        assert (shot_of(near) == shot_of(t)).any(), t


def test_a_file_that_cannot_be_read_again_leaves_the_sampled_frames_reading(prepared: dict[str, Clip],
                                                                          tmp_path: Path) -> None:
    clip = copy.deepcopy(prepared["late_200"])
    clip.probes.clear()
    broken = tmp_path / "gone.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(2000))
    assert mouth_patches(clip, broken) is None
    assert mouth_patches(clip, tmp_path / "missing.mp4") is None
    LipSync(device="cpu").probe(clip, str(broken))
    result = LipSync(device="cpu")(clip)
    assert result.applicable and result.flagged and result.evidence["mouth_reading"] == "mesh"


def test_no_face_or_no_audio_means_no_probe(prepared: dict[str, Clip], tmp_path: Path) -> None:
    faceless = copy.deepcopy(prepared["no_face"])
    faceless.probes.clear()
    LipSync(device="cpu").probe(faceless, "unused.mp4")
    assert PROBE_KEY not in faceless.probes
    clip = copy.deepcopy(prepared["sync"])
    clip.faces = []
    assert mouth_patches(clip, "unused.mp4") is None


def test_an_audio_only_file_gives_no_patches(prepared: dict[str, Clip], tmp_path: Path) -> None:
    from detectors.synthetic import write_audio_only

    audio = tmp_path / "speech.m4a"
    write_audio_only(audio, speak("Only a voice."))
    assert mouth_patches(copy.deepcopy(prepared["sync"]), audio) is None


def _turning_head_patches(seconds: float = 8.0, rate: float = 25.0, seed: int = 0) -> tuple[MouthPatches, np.ndarray]:
    """Mouth patches of a head that turns and nods (a large, slow change of shading across the whole patch) while the
    mouth opens and closes at syllable rate (a smaller, fast darkening of the centre); and the true opening."""
    rng = np.random.default_rng(seed)
    times = np.arange(int(seconds * rate)) / rate
    opening = np.clip(np.sin(2 * np.pi * 4.3 * times + rng.uniform(0, 6)) * rng.uniform(0.6, 1.0, times.size), 0, 1)
    turn = np.sin(2 * np.pi * 0.25 * times) + 0.6 * np.sin(2 * np.pi * 0.11 * times + 1.0)
    y, x = np.mgrid[0:PATCH_H, 0:PATCH_W]
    shading = (x - PATCH_W / 2) / PATCH_W + 0.4 * (y - PATCH_H / 2) / PATCH_H  # sums to ~0 over the centre
    centre = np.exp(-(((x - PATCH_W / 2) / 5.0) ** 2 + ((y - PATCH_H / 2) / 3.0) ** 2))
    frames = 140 + 90 * turn[:, None, None] * shading[None] - 45 * opening[:, None, None] * centre[None]
    frames += rng.normal(0, 2.0, frames.shape)
    patches = MouthPatches(times=times, patches=np.clip(frames, 0, 255).astype(np.uint8),
                           valid=np.ones(times.size, dtype=bool), rate=rate, mouth_px=40.0)
    return patches, opening


def test_a_turning_head_is_read_from_the_mouths_fast_changes() -> None:
    """When the head's slow turn is the patches' main change (not a darker centre) and the mesh labels cannot be fitted
    (a jittering mesh), the fast part of the patches, once each pixel's moving average is out, carries the mouth."""
    patches, opening = _turning_head_patches()
    key_times = patches.times[::5]
    jitter = np.random.default_rng(1).uniform(0, 1, key_times.size)  # mesh readings unrelated to the mouth
    reading = dense_opening(patches, key_times, jitter)
    assert reading is not None and reading.method == "fast_appearance", reading
    assert abs(reading.agreement) >= 0.6
    fast_truth = opening - np.convolve(np.pad(opening, 7, mode="edge"), np.ones(15) / 15, mode="valid")
    assert np.corrcoef(reading.opening, fast_truth)[0, 1] > 0.8


@pytest.mark.parametrize("shape", [(300, 768), (900, 96), (20, 50)])
def test_principal_axes_are_the_svds_leading_axes(shape: tuple[int, int]) -> None:
    """``principal_axes`` (eigenvectors of the smaller Gram matrix) gives ``np.linalg.svd``'s leading rows of vt, each
    up to its sign, in the samples' dtype; fewer when the samples have fewer rows or columns than asked."""
    rng = np.random.default_rng(shape[0])
    n, p = shape
    samples = (rng.normal(size=(n, 6)) @ rng.normal(size=(6, p)) * 0.1 + rng.normal(size=(n, p)) * 0.02)
    samples = (samples - samples.mean(axis=0)).astype(np.float32)
    axes = principal_axes(samples, 24)
    _, _, vt = np.linalg.svd(samples, full_matrices=False)
    count = min(24, n, p)
    assert axes.shape == (count, p) and axes.dtype == np.float32
    assert np.allclose(np.linalg.norm(axes, axis=1), 1.0, atol=1e-5)
    # the structured axes agree closely, the noise axes (close singular values) still to a few thousandths
    assert np.allclose(np.abs(np.sum(axes[:6] * vt[:6], axis=1)), 1.0, atol=1e-5)
    assert np.all(np.abs(np.sum(axes * vt[:count], axis=1)) > 0.99)
    assert principal_axes(samples, 1).shape == (1, p)
    assert principal_axes(samples[:0], 3).shape == (0, p)


@pytest.mark.parametrize("size", [1, 2, 7, 250])
def test_the_running_median_is_numpys_median_of_the_last_values(size: int) -> None:
    """The cut finder's usual change: ``np.median`` of the last ``size`` values, exactly (ties and repeats too)."""
    rng = np.random.default_rng(size)
    median = RunningMedian(size)
    assert len(median) == 0 and np.isnan(median.median())
    values: list[float] = []
    for _ in range(700):
        value = float(np.float32(rng.choice([rng.random() * 30.0, 2.5, 0.0])))
        median.add(value)
        values.append(value)
        assert len(median) == min(size, len(values))
        assert median.median() == float(np.median(values[-size:]))
    with pytest.raises(ValueError):
        RunningMedian(0)
