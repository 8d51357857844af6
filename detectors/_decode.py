"""Decode a video file once into a ``Clip``: frames sampled at a fixed rate with timestamps, 16 kHz mono audio.

Every failure is translated at this edge into the detector exception tree (``_exceptions.py``)::

    missing file                              MediaError
    zero bytes, random bytes, truncated       CorruptMedia
    text / image / audio-only file            NotAVideo
    over max_duration_s or max_frames         MediaTooLarge

Frames are converted to RGB by one swscale context per file, single-threaded (``VideoReformatter``, ``threads=1``):
``frame.to_ndarray(format=...)`` builds a context, and with it a pool of scaling threads, for every frame, which cost
more than the conversion itself (0.5-3 ms a frame against 0.03-0.15). The pixels are the same.

With ``luma_budget`` (bytes), every decoded frame's luma plane at the file's own resolution is kept as well, in
``Clip.probes[LUMA_KEY]`` as (frame time, plane) pairs, while they fit in the budget (none are kept once they would
not): the mouth patches (``_mouth.mouth_patches``) read every frame's luma, and for a file whose frames fit they read
them from there instead of decoding the file a second time. The caller drops them once its probes ran.

Timestamps and audio share one origin: the first decoded video frame. Audio that starts later than the video is
padded with silence, audio that starts earlier is trimmed, so a sample index and a frame timestamp compare directly
(what the lip-sync detector relies on).
"""
from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ._clip import AUDIO_RATE, Clip
from ._exceptions import CorruptMedia, MediaError, MediaTooLarge, NotAVideo

__all__ = ["decode_clip", "luma_plane", "DEFAULT_FPS", "DEFAULT_MAX_SIDE", "LUMA_KEY"]

logger = logging.getLogger(__name__)

DEFAULT_FPS = 5.0
DEFAULT_MAX_SIDE = 640
_SNIFF_BYTES = 4096
# a file whose decodable part is shorter than this share of its declared duration is called truncated
_TRUNCATED_SHARE = 0.5
#: Clip.probes[LUMA_KEY]: (frame.time, luma plane) of every decoded frame, when decode_clip was given a luma_budget
LUMA_KEY = "luma_frames"
_PLANAR_LUMA = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21", "gray"}


def luma_plane(frame: Any) -> np.ndarray:
    """The frame's luma plane as a (height, width) uint8 view: the decoder's own Y plane for 8-bit planar formats
    (no conversion), else converted."""
    if frame.format.name in _PLANAR_LUMA:
        plane = frame.planes[0]
        rows = np.frombuffer(plane, dtype=np.uint8).reshape(plane.height, plane.line_size)
        return rows[:, : plane.width]
    return frame.to_ndarray(format="gray")


def decode_clip(
    source: str | os.PathLike[str],
    *,
    fps: float = DEFAULT_FPS,
    max_side: int | None = DEFAULT_MAX_SIDE,
    max_duration_s: float | None = None,
    max_frames: int | None = None,
    media_sha256: str | None = None,
    luma_budget: int = 0,
) -> Clip:
    """Decode ``source`` into a Clip.

    Frames are sampled at ``fps`` (one decoded frame per 1/fps seconds, the first at or after each sampling time),
    converted to RGB and, when ``max_side`` is set, downscaled so that their long side is at most ``max_side``.
    Audio is resampled to 16 kHz mono float32 in [-1, 1]; ``Clip.audio`` is None when the file has no audio stream.
    Raises MediaTooLarge when the video is longer than ``max_duration_s`` or yields more than ``max_frames``
    sampled frames, and CorruptMedia / NotAVideo (with what is wrong in the message) for files that are not
    decodable video. ``luma_budget`` > 0: every frame's luma plane is kept too (``LUMA_KEY``) if they all fit in
    that many bytes.
    """
    import av  # worker-side dependency, imported where it is used

    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    path = Path(source)
    name = str(source)
    _check_file(path, name)

    try:
        container = av.open(str(path), mode="r")
    except av.error.FFmpegError as exc:
        raise _classify_open_error(path, name, exc) from exc
    try:
        return _decode(container, name, fps=fps, max_side=max_side, max_duration_s=max_duration_s,
                       max_frames=max_frames, media_sha256=media_sha256, luma_budget=luma_budget)
    finally:
        container.close()


def _check_file(path: Path, name: str) -> None:
    if not path.exists():
        raise MediaError("no such file", source=name)
    if not path.is_file():
        raise NotAVideo("not a regular file", source=name)
    if path.stat().st_size == 0:
        raise CorruptMedia("empty file (0 bytes)", source=name)


def _looks_like_text(head: bytes) -> bool:
    if not head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # a multi-byte character cut at the sniff boundary is still text
        try:
            text = head[:-4].decode("utf-8")
        except UnicodeDecodeError:
            return False
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return printable >= 0.95 * max(1, len(text))


def _classify_open_error(path: Path, name: str, exc: Exception) -> MediaError:
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    if _looks_like_text(head):
        return NotAVideo(f"a text file, not media (FFmpeg: {exc})", source=name)
    if b"ftyp" in head[:64]:
        return CorruptMedia(f"damaged or truncated MP4/MOV container (FFmpeg: {exc})", source=name)
    return CorruptMedia(f"not a recognisable media container (FFmpeg: {exc})", source=name)


def _target_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    if not max_side or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    # even sizes keep chroma subsampling and encoders happy downstream
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


def _decode(container: Any, name: str, *, fps: float, max_side: int | None, max_duration_s: float | None,
            max_frames: int | None, media_sha256: str | None, luma_budget: int = 0) -> Clip:
    import av
    from av.video.reformatter import VideoReformatter

    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["no streams"]
        what = "audio only" if container.streams.audio else ", ".join(kinds)
        raise NotAVideo(f"no video stream ({what})", source=name)
    video = container.streams.video[0]
    video.thread_type = "AUTO"
    audio = container.streams.audio[0] if container.streams.audio else None
    if container.format.name == "image2" or container.format.name.endswith("_pipe"):
        raise NotAVideo(f"a still image ({container.format.name}), not a video", source=name)

    declared_s = container.duration / 1_000_000 if container.duration else None
    if max_duration_s is not None and declared_s is not None and declared_s > max_duration_s + 1e-3:
        raise MediaTooLarge(f"{declared_s:.1f} s long, over the {max_duration_s:g} s limit", source=name)
    if max_frames is not None and declared_s is not None and math.floor(declared_s * fps) > max_frames + 1:
        raise MediaTooLarge(f"{declared_s:.1f} s at {fps:g} fps is about {math.floor(declared_s * fps)} frames, "
                            f"over the {max_frames} frame limit", source=name)

    width, height = video.codec_context.width, video.codec_context.height
    out_w, out_h = _target_size(width, height, max_side) if width and height else (0, 0)
    step = 1.0 / fps
    frames: list[np.ndarray] = []
    times: list[float] = []
    origin: float | None = None
    next_t = 0.0
    last_video_t = 0.0
    src_interval = 1.0 / float(video.average_rate) if video.average_rate else step

    reformatter = VideoReformatter()
    resampler = av.AudioResampler(format="s16", layout="mono", rate=AUDIO_RATE) if audio is not None else None
    chunks: list[np.ndarray] = []
    audio_start: float | None = None
    streams = [video] + ([audio] if audio is not None else [])
    luma: list[tuple[float | None, np.ndarray]] | None = [] if luma_budget > 0 else None
    luma_bytes = 0

    def take_video(frame: Any) -> None:
        nonlocal origin, next_t, last_video_t, luma, luma_bytes
        if luma is not None:
            plane = luma_plane(frame)
            luma_bytes += plane.size
            if luma_bytes > luma_budget:
                luma = None  # too large to keep: the mouth patches decode the file again
            else:
                luma.append((frame.time, np.array(plane)))
        t = frame.time if frame.time is not None else (len(times) * step if origin is None else last_video_t + src_interval)
        if origin is None:
            origin = t
        rel = t - origin
        last_video_t = rel
        if max_duration_s is not None and rel > max_duration_s + 1e-3:
            raise MediaTooLarge(f"longer than the {max_duration_s:g} s limit", source=name)
        if rel + 1e-6 < next_t:
            return
        if max_frames is not None and len(frames) >= max_frames:
            raise MediaTooLarge(f"more than {max_frames} frames at {fps:g} fps", source=name)
        w, h = (out_w, out_h) if out_w else _target_size(frame.width, frame.height, max_side)
        frames.append(reformatter.reformat(frame, format="rgb24", width=w, height=h, threads=1).to_ndarray())
        times.append(rel)
        while next_t <= rel + 1e-6:
            next_t += step

    def take_audio(frame: Any) -> None:
        nonlocal audio_start
        if audio_start is None and frame.time is not None:
            audio_start = frame.time
        for out in resampler.resample(frame):  # type: ignore[union-attr]
            chunks.append(out.to_ndarray().reshape(-1))

    errors = (av.error.FFmpegError, ValueError)
    try:
        for packet in container.demux(*streams):
            for frame in packet.decode():
                if packet.stream.type == "video":
                    take_video(frame)
                else:
                    take_audio(frame)
        if resampler is not None:
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except MediaTooLarge:
        raise
    except errors as exc:
        if not frames:
            raise CorruptMedia(f"cannot decode the streams (FFmpeg: {exc})", source=name) from exc
        raise CorruptMedia(f"decoding failed after {times[-1]:.1f} s: damaged or truncated (FFmpeg: {exc})",
                           source=name) from exc

    if not frames:
        raise CorruptMedia("no decodable video frames (damaged or truncated)", source=name)
    video_end = last_video_t + src_interval
    if declared_s is not None and declared_s > 1.0 and video_end < _TRUNCATED_SHARE * declared_s:
        raise CorruptMedia(f"truncated: only {video_end:.1f} s of a declared {declared_s:.1f} s decode",
                           source=name)

    samples: np.ndarray | None = None
    if audio is not None:
        raw = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
        samples = raw.astype(np.float32) / 32768.0
        shift = int(round(((audio_start if audio_start is not None else 0.0) - (origin or 0.0)) * AUDIO_RATE))
        if shift > 0:
            samples = np.concatenate([np.zeros(shift, dtype=np.float32), samples])
        elif shift < 0:
            samples = samples[-shift:]
    audio_end = samples.size / AUDIO_RATE if samples is not None else 0.0
    duration = max(video_end, audio_end)
    logger.debug("decoded %s: %d frames at %g fps, %.2f s, audio=%s", name, len(frames), fps, duration,
                 samples is not None)
    clip = Clip(source=name, duration_s=float(duration), fps=float(fps), frames=np.stack(frames),
                timestamps=np.asarray(times, dtype=np.float64), audio=samples, sample_rate=AUDIO_RATE,
                media_sha256=media_sha256, width=int(width), height=int(height))
    if luma is not None:
        clip.probes[LUMA_KEY] = luma
    return clip
