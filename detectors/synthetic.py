"""Generated test media: nothing downloaded, every property known by construction.

Used by the tests, the benchmarks (``bench/``) and evaluation. Writers here produce real MP4 files (H.264 + AAC
through PyAV) so the whole path (container, codecs, decoding) is exercised.
"""
from __future__ import annotations

import os
from fractions import Fraction

import numpy as np

__all__ = ["write_mp4", "write_audio_only"]


def write_mp4(path: str | os.PathLike[str], frames: np.ndarray, fps: float, audio: np.ndarray | None = None, *,
              sample_rate: int = 16_000, crf: int = 23, faststart: bool = False) -> None:
    """Encode RGB ``frames`` (N, H, W, 3) uint8 at ``fps`` and optional mono float ``audio`` into an MP4.

    ``crf`` sets H.264 quality (higher = lower bitrate); ``faststart`` puts the index (moov) first.
    """
    import av

    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        video = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        video.width, video.height = int(frames.shape[2]), int(frames.shape[1])
        video.pix_fmt = "yuv420p"
        video.options = {"preset": "veryfast", "crf": str(crf)}
        sound = None
        if audio is not None:
            sound = container.add_stream("aac", rate=sample_rate)
            sound.layout = "mono"
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if sound is not None and audio is not None:
            _encode_audio(container, sound, audio, sample_rate)


def _encode_audio(container: object, stream: object, audio: np.ndarray, sample_rate: int) -> None:
    import av

    samples = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    for start in range(0, samples.size, 1024):
        frame = av.AudioFrame.from_ndarray(samples[None, start:start + 1024].copy(), format="fltp", layout="mono")
        frame.sample_rate = sample_rate
        frame.pts = start
        container.mux(stream.encode(frame))  # type: ignore[attr-defined]
    container.mux(stream.encode(None))  # type: ignore[attr-defined]


def write_audio_only(path: str | os.PathLike[str], audio: np.ndarray, *, sample_rate: int = 16_000) -> None:
    """An M4A (AAC) file without a video stream."""
    import av

    with av.open(str(path), "w", format="mp4") as container:
        sound = container.add_stream("aac", rate=sample_rate)
        sound.layout = "mono"
        _encode_audio(container, sound, audio, sample_rate)
