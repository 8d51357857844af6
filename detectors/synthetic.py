"""Generated test media: nothing downloaded, every property known by construction.

Used by the tests, the benchmarks (``bench/``) and evaluation. Writers here produce real MP4 files (H.264 + AAC
through PyAV) so the whole path (container, codecs, decoding) is exercised.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

__all__ = [
    "write_mp4", "write_audio_only", "speak", "mouth_opening_from_speech", "render_talking_head", "TalkingClip",
    "make_talking_clip", "SENTENCES", "HELDOUT_SENTENCES", "camera_like", "upsampled", "spectral_images",
    "PERSON_PHOTOS", "person_photo", "write_photo", "make_person_clip",
    "LongClip", "make_long_clip", "TUNING_VOICES", "HELDOUT_VOICES", "TUNING_FACES", "HELDOUT_FACES", "SPLICE_KINDS",
    "AVATAR_MOTIONS", "animate_avatar",
]


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


# ---------------------------------------------------------------------------------------------------------------
# speech and talking heads

AUDIO_RATE = 16_000
VIDEO_FPS = 25.0
#: sentences the tests use; the benchmarks speak HELDOUT_SENTENCES, which nothing was tuned on
SENTENCES = (
    "The committee will vote on the new budget tomorrow morning. We must protect every single ballot.",
    "My opponent has never told you the truth about taxes. Tonight I will show you the real numbers.",
    "Thank you all for coming. Together we can build a stronger and fairer country for our children.",
)
HELDOUT_SENTENCES = (
    "Election officials confirmed that the count will continue through the weekend in every district.",
    "I never said that the border should be closed. Those words were put in my mouth by others.",
    "Our hospitals need more nurses, and our schools need more teachers. That is my promise to you.",
    "The minister resigned this afternoon after the leaked recording spread across social media.",
    "Listen carefully, because this announcement changes everything about the vote next Tuesday.",
    "We will not accept the results until every vote has been checked twice by independent observers.",
)
# Where the mouth of skimage.data.astronaut() is, in the 256 x 256 crop below (measured once with the
# mediapipe face mesh: inner lips 13/14, mouth corners 61/291, chin 152; crop origin x=96, y=0).
_CROP_X0, _CROP_SIDE = 96, 256
_MOUTH_CX, _UPPER_LIP_Y, _LOWER_LIP_Y, _MOUTH_W, _CHIN_Y = 127.3, 143.2, 150.1, 43.2, 177.4
_MAX_OPEN_PX = 15.0


def speak(text: str, *, voice: str = "en-us", words_per_minute: int = 150, pitch: int = 50) -> np.ndarray:
    """``text`` spoken by espeak-ng, as 16 kHz mono float32 (real speech rhythm: syllables, words, pauses)."""
    import shutil
    import subprocess
    import tempfile

    from scipy.io import wavfile
    from scipy.signal import resample_poly

    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory() as tmp:
        wav = os.path.join(tmp, "speech.wav")
        subprocess.run([exe, "-v", voice, "-s", str(words_per_minute), "-p", str(pitch), "-w", wav, text],
                       check=True, capture_output=True)
        rate, samples = wavfile.read(wav)
    speech = samples.astype(np.float32) / 32768.0
    from math import gcd

    g = gcd(AUDIO_RATE, int(rate))
    return resample_poly(speech, AUDIO_RATE // g, int(rate) // g).astype(np.float32)


def mouth_opening_from_speech(speech: np.ndarray, times: np.ndarray, *, rate: int = AUDIO_RATE) -> np.ndarray:
    """How far a mouth speaking ``speech`` is open (0 closed .. 1 wide) at ``times``: the loudness envelope
    (RMS over 40 ms, 30 dB range below the peak) lightly smoothed, as a jaw follows syllables."""
    half = int(0.02 * rate)
    power = np.convolve(speech.astype(np.float64) ** 2, np.ones(2 * half) / (2 * half), mode="same")
    level = 10 * np.log10(power + 1e-10)
    top = np.percentile(level, 99)
    env = np.clip((level - (top - 30.0)) / 30.0, 0.0, 1.0)
    idx = np.clip(np.round(times * rate).astype(int), 0, speech.size - 1)
    opening = env[idx]
    if opening.size >= 3:  # a jaw has inertia: 3-tap smoothing at 25 fps (~40 ms)
        opening = np.convolve(np.pad(opening, 1, mode="edge"), [0.25, 0.5, 0.25], mode="valid")
    return opening.astype(np.float32)


def _face_crop() -> np.ndarray:
    from skimage import data

    return data.astronaut()[:_CROP_SIDE, _CROP_X0:_CROP_X0 + _CROP_SIDE].copy()


def _no_face_crop() -> np.ndarray:
    from skimage import data

    image = data.coffee()  # 400 x 600: a cup of coffee, no face
    return image[72:328, 172:428].copy()


def render_talking_head(opening: np.ndarray, *, fps: float = VIDEO_FPS, size: int = 256, sway: bool = True,
                        background: np.ndarray | None = None) -> np.ndarray:
    """Frames of the astronaut photo whose lower lip and jaw drop by ``opening[i]`` (0..1) in frame i, with the
    mouth cavity painted dark, and a slow head sway. ``background`` (a 256 x 256 RGB image) replaces the face."""
    import cv2

    base = (_face_crop() if background is None else background).astype(np.float32)
    ys, xs = np.mgrid[0:_CROP_SIDE, 0:_CROP_SIDE].astype(np.float32)
    half_w = 0.62 * _MOUTH_W
    wx = np.where(np.abs(xs - _MOUTH_CX) < half_w, np.cos(np.pi / 2 * (xs - _MOUTH_CX) / half_w) ** 2, 0.0)
    lip_line = (_UPPER_LIP_Y + _LOWER_LIP_Y) / 2
    wy = np.where(ys < lip_line, 0.0, np.where(ys <= _CHIN_Y, 1.0, np.clip(1 - (ys - _CHIN_Y) / 40.0, 0, 1)))
    weight = (wx * wy).astype(np.float32)
    cavity_colour = np.array([46, 18, 24], dtype=np.float32)
    frames = np.empty((len(opening), size, size, 3), dtype=np.uint8)
    for i, amount in enumerate(opening):
        t = i / fps
        dx = 2.0 * np.sin(2 * np.pi * 0.31 * t) if sway else 0.0
        dy = 1.5 * np.sin(2 * np.pi * 0.23 * t + 1.0) if sway else 0.0
        d = float(amount) * _MAX_OPEN_PX * weight if background is None else np.zeros_like(weight)
        map_x = xs - dx
        map_y = ys - d - dy
        frame = cv2.remap(base, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        if background is None and amount > 0.02:
            src_y = ys - d  # inside the opened gap the source lies above the lower lip: that is the cavity
            depth = np.clip((_LOWER_LIP_Y - src_y) / 2.0, 0, 1) * (ys >= lip_line) * (d > 0.5)
            alpha = np.clip(depth, 0, 1)[..., None]
            shifted = np.stack([np.roll(np.roll(alpha[..., 0], int(round(dy)), 0), int(round(dx)), 1)], -1)
            frame = frame * (1 - shifted) + cavity_colour * shifted
        frame = np.clip(frame, 0, 255).astype(np.uint8)
        if size != _CROP_SIDE:
            frame = cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)
        frames[i] = frame
    return frames


#: one-shot avatar variants (``animate_avatar``): ``none`` (the photo as rendered: mouth warp and the small
#: translation sway of ``render_talking_head``), ``sway`` (a template head motion: periodic rotation, scale, a
#: sideways squeeze that mimics a turn, and translation of the whole photo), ``blink`` (template blinks: the eyes
#: close at regular intervals, every time with the same shape) and ``sway_blink`` (both)
AVATAR_MOTIONS = ("none", "sway", "blink", "sway_blink")
#: eye centres and half sizes (x, y, half width, half height) in the 256 x 256 crops of PERSON_PHOTOS (measured once
#: with the mediapipe face mesh: eye corners 33/133 and 362/263, lids 159/145 and 386/374)
_EYES: dict[str, tuple[tuple[float, float, float, float], ...]] = {
    "astronaut": ((108.5, 101.0, 9.3, 3.3), (150.1, 103.3, 9.5, 3.3)),
    "grace_hopper": ((77.2, 88.2, 18.3, 5.2), (159.9, 83.7, 17.4, 5.1)),
}
#: how far a template blink closes the eyes (0 open .. 1 shut) over its 0.3 s, the same every time
_BLINK_PROFILE = np.array([0.0, 0.35, 0.8, 1.0, 1.0, 0.75, 0.4, 0.15, 0.0])
_BLINK_S = 0.32


def _close_eyes(frame: np.ndarray, eyes: tuple[tuple[float, float, float, float], ...], closure: float) -> np.ndarray:
    """The frame with both eyes closed by ``closure`` (0..1): an upper lid of the skin colour above the eye comes
    down over the eye opening, its edge drawn as a dark lash line."""
    out = frame.astype(np.float32)
    scale = frame.shape[1] / float(_CROP_SIDE)
    ys, xs = np.mgrid[0:frame.shape[0], 0:frame.shape[1]].astype(np.float32)
    for cx, cy, a, b in eyes:
        cx, cy, a, b = cx * scale, cy * scale, 1.25 * a * scale, 1.6 * b * scale + 1.0
        inside = 1.0 - ((xs - cx) / a) ** 2 - ((ys - cy) / b) ** 2
        mask = np.clip(inside * 4.0, 0.0, 1.0)
        y0, y1 = int(max(0, cy - 3.2 * b)), int(max(1, cy - 2.0 * b))
        x0, x1 = int(max(0, cx - 0.6 * a)), int(cx + 0.6 * a) + 1
        skin = out[y0:y1, x0:x1].reshape(-1, 3).mean(axis=0) if y1 > y0 and x1 > x0 else out[int(cy), int(cx)]
        lid_y = cy - b + closure * 2.0 * b  # the lid's edge moves from the top of the eye to its bottom
        lid = np.clip(lid_y - ys + 0.5, 0.0, 1.0) * mask  # 1 above the edge, inside the eye
        shade = (0.92 + 0.08 * np.clip((lid_y - ys) / max(b, 1.0), 0, 1))[..., None]
        out = out * (1 - lid[..., None]) + (skin * shade) * lid[..., None]
        lash = np.exp(-((ys - lid_y) / 0.9) ** 2) * mask * min(1.0, 2.0 * closure)
        out = out * (1 - 0.45 * lash[..., None])
    return np.clip(out, 0, 255).astype(np.uint8)


def animate_avatar(frames: np.ndarray, motion: str = "none", *, fps: float = VIDEO_FPS, seed: int = 0,
                   person: str | None = "astronaut") -> np.ndarray:
    """A one-shot avatar's template motion on rendered frames (``AVATAR_MOTIONS``): the whole photo warped by a
    smooth periodic affine motion (rotation up to 2.5 degrees, 2 % scale, a sideways squeeze of up to 5 % as a
    cheap turn, translation up to 5 px at 256 px) and/or blinks at regular intervals with one shape. ``person``
    names the photo whose eyes blink (None: no eyes, no blinks). ``none`` returns ``frames`` unchanged."""
    if motion not in AVATAR_MOTIONS:
        raise ValueError(f"unknown avatar motion {motion!r}; known: {', '.join(AVATAR_MOTIONS)}")
    if motion == "none":
        return frames
    import cv2

    rng = np.random.default_rng(seed + 7919)  # its own stream: the clip's other random choices stay as they were
    out = frames.copy()
    n, h, w = frames.shape[:3]
    times = np.arange(n) / fps
    if "blink" in motion and person in _EYES:
        period = float(rng.uniform(3.0, 4.5))
        first = float(rng.uniform(0.6, 1.6))
        grid = np.linspace(0.0, _BLINK_S, _BLINK_PROFILE.size)
        for start in np.arange(first, times[-1] if n else 0.0, period):
            for i in np.flatnonzero((times >= start) & (times <= start + _BLINK_S)):
                closure = float(np.interp(times[i] - start, grid, _BLINK_PROFILE))
                if closure > 0.02:
                    out[i] = _close_eyes(out[i], _EYES[person], closure)
    if "sway" in motion:
        freq = rng.uniform(0.15, 0.45, size=6)
        phase = rng.uniform(0, 2 * np.pi, size=6)
        unit = w / float(_CROP_SIDE)
        for i, t in enumerate(times):
            wave = np.sin(2 * np.pi * freq * t + phase)
            angle, scale = 2.5 * wave[0], 1.0 + 0.02 * wave[1]
            squeeze = 1.0 - 0.025 * (1.0 + wave[2])
            tx, ty = 5.0 * unit * wave[3], 3.0 * unit * wave[4]
            matrix = cv2.getRotationMatrix2D((w / 2, h / 2), float(angle), float(scale))
            matrix[0, :] *= squeeze  # narrower about the centre: the face seems to turn a little
            matrix[0, 2] += (1 - squeeze) * w / 2 + tx
            matrix[1, 2] += ty
            out[i] = cv2.warpAffine(out[i], matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return out


@dataclass(frozen=True)
class TalkingClip:
    """What a generated clip is, by construction: the truth a detector is judged against."""

    path: Path
    kind: str  # talking | still_face | silent | no_face | mismatched
    offset_ms: float  # > 0: the audio comes later than the mouth (DESIGN.md)
    text: str
    duration_s: float

    @property
    def manipulated(self) -> bool:
        """Out of sync beyond what broadcast standards tolerate, or speech that is not what the mouth says."""
        return self.kind == "mismatched" or (self.kind == "talking" and abs(self.offset_ms) >= 150)


def make_talking_clip(path: str | os.PathLike[str], text: str = SENTENCES[0], *, offset_ms: float = 0.0,
                      kind: str = "talking", other_text: str | None = None, fps: float = VIDEO_FPS,
                      size: int = 256, crf: int = 23, lead_s: float = 0.6, tail_s: float = 0.6,
                      noise_db: float = -55.0, seed: int = 0, words_per_minute: int = 150, voice: str = "en-us",
                      pitch: int = 50, avatar_motion: str = "none") -> TalkingClip:
    """Write an MP4 of a talking head whose mouth follows ``text`` spoken by espeak-ng, audio ``offset_ms`` late.

    ``kind``: ``talking`` (mouth follows the speech), ``still_face`` (speech, mouth never moves), ``silent``
    (the mouth talks but the audio is room noise only, as in a muted video), ``no_face`` (speech over a scene
    without a face), ``mismatched`` (the mouth says ``other_text`` while the audio says ``text``).
    ``avatar_motion`` (``AVATAR_MOTIONS``) adds a one-shot avatar's template head motion and blinks
    (``animate_avatar``); ``none`` keeps the clip exactly as before.
    """
    if kind not in {"talking", "still_face", "silent", "no_face", "mismatched"}:
        raise ValueError(f"unknown kind {kind!r}")
    rng = np.random.default_rng(seed)
    speech = speak(text, voice=voice, words_per_minute=words_per_minute, pitch=pitch)
    mouth_speech = speech
    if kind == "mismatched":
        pool = SENTENCES + HELDOUT_SENTENCES
        other = other_text or (pool[(pool.index(text) + 1) % len(pool)] if text in pool else pool[0])
        mouth_speech = speak(other, voice=voice, words_per_minute=words_per_minute, pitch=pitch)
    shift = int(round(offset_ms / 1000 * AUDIO_RATE))
    lead = int(lead_s * AUDIO_RATE)
    if lead + min(0, shift) < 0:
        raise ValueError(f"offset {offset_ms} ms needs a lead of at least {-offset_ms / 1000} s")
    total = lead + max(speech.size, mouth_speech.size) + max(0, shift) + int(tail_s * AUDIO_RATE)
    n_frames = int(total / AUDIO_RATE * fps)
    times = np.arange(n_frames) / fps
    # the mouth follows the speech placed at `lead`; the soundtrack carries it `shift` samples later
    mouth_track = np.zeros(total, dtype=np.float32)
    mouth_track[lead:lead + mouth_speech.size] = mouth_speech
    audio = (10 ** (noise_db / 20) * rng.standard_normal(total)).astype(np.float32)
    if kind != "silent":
        audio[lead + shift:lead + shift + speech.size] += speech
    opening = mouth_opening_from_speech(mouth_track, times)
    if kind == "still_face":
        opening = np.zeros_like(opening)
    background = _no_face_crop() if kind == "no_face" else None
    frames = render_talking_head(opening, fps=fps, size=size, background=background)
    frames = animate_avatar(frames, avatar_motion, fps=fps, seed=seed, person=None if kind == "no_face" else "astronaut")
    write_mp4(path, frames, fps, audio, sample_rate=AUDIO_RATE, crf=crf)
    return TalkingClip(path=Path(path), kind=kind, offset_ms=float(offset_ms) if kind == "talking" else 0.0,
                       text=text, duration_s=total / AUDIO_RATE)


# ---------------------------------------------------------------------------------------------------------------
# camera-like and generator-upsampled images (for the spectral detector)

#: skimage.data photos the tests draw from; HELDOUT_PHOTOS are kept for benchmarks
PHOTOS = ("astronaut", "coffee", "chelsea", "brick")
HELDOUT_PHOTOS = ("rocket", "immunohistochemistry", "stereo_motorcycle", "retina", "camera", "grass", "hubble_deep_field")


def _photo(name: str) -> np.ndarray:
    from skimage import data

    image = getattr(data, name)()
    if isinstance(image, tuple):  # stereo pairs come with a disparity map
        image = image[0]
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., :3])


def _random_crop(image: np.ndarray, side: int, rng: np.random.Generator) -> np.ndarray:
    height, width = image.shape[:2]
    side = min(side, height, width)
    y = int(rng.integers(0, height - side + 1))
    x = int(rng.integers(0, width - side + 1))
    crop = image[y:y + side, x:x + side]
    return crop[:, ::-1] if rng.random() < 0.5 else crop


def camera_like(image: np.ndarray, rng: np.random.Generator, *, size: int = 128) -> np.ndarray:
    """A camera-like frame: a crop downscaled by a random factor with area averaging (as a sensor integrates
    light), light optical blur, and sensor noise (shot + read noise)."""
    import cv2

    factor = float(rng.uniform(1.3, 2.5))
    crop = _random_crop(image, int(size * factor), rng).astype(np.float32)
    small = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), float(rng.uniform(0.3, 0.7)))
    read = float(rng.uniform(1.0, 3.0))
    shot = np.sqrt(np.clip(small, 0, 255) / 255.0) * float(rng.uniform(1.0, 3.0))
    noisy = small + rng.standard_normal(small.shape).astype(np.float32) * (read + shot)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


def upsampled(image: np.ndarray, rng: np.random.Generator, *, size: int = 128, method: str = "transposed") -> np.ndarray:
    """A generator-like frame: content at half resolution brought up 2x by a transposed convolution (``method=
    'transposed'``: 4x4 kernel, stride 2, bilinear initialisation plus a learned-looking perturbation) or by
    nearest-neighbour upsampling followed by a 3x3 convolution (``'nearest_conv'``), as GAN/diffusion decoders do."""
    import cv2
    import torch

    factor = float(rng.uniform(1.3, 2.5))
    crop = _random_crop(image, int(size * factor), rng).astype(np.float32)
    half = cv2.resize(crop, (size // 2, size // 2), interpolation=cv2.INTER_AREA) / 255.0
    x = torch.from_numpy(half).permute(2, 0, 1)[None]
    g = torch.Generator().manual_seed(int(rng.integers(0, 2**31)))
    strength = float(rng.uniform(0.08, 0.25))
    with torch.no_grad():
        if method == "transposed":
            bilinear = torch.tensor([0.25, 0.75, 0.75, 0.25])
            kernel = torch.outer(bilinear, bilinear)
            weight = torch.zeros(3, 3, 4, 4)
            for c in range(3):
                weight[c, c] = kernel
            weight += strength * 0.25 * torch.randn(3, 3, 4, 4, generator=g)
            y = torch.nn.functional.conv_transpose2d(x, weight, stride=2, padding=1)
        elif method == "nearest_conv":
            up = torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")
            weight = torch.zeros(3, 3, 3, 3)
            smooth = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16
            for c in range(3):
                weight[c, c] = smooth
            weight += strength * 0.2 * torch.randn(3, 3, 3, 3, generator=g)
            y = torch.nn.functional.conv2d(up, weight, padding=1)
        else:
            raise ValueError(f"unknown method {method!r}")
    out = y[0].permute(1, 2, 0).numpy() * 255.0
    out = out + rng.standard_normal(out.shape).astype(np.float32) * float(rng.uniform(0.0, 1.0))
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def spectral_images(n_per_class: int, *, seed: int = 0, photos: tuple[str, ...] = PHOTOS,
                    size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """``n_per_class`` camera-like and as many upsampled frames (both upsampling methods) from ``photos``;
    returns (images (2n, size, size, 3) uint8, labels (2n,) 1 = upsampled)."""
    rng = np.random.default_rng(seed)
    sources = [_photo(name) for name in photos]
    images, labels = [], []
    for i in range(n_per_class):
        source = sources[i % len(sources)]
        images.append(camera_like(source, rng, size=size))
        labels.append(0)
        images.append(upsampled(source, rng, size=size, method="transposed" if i % 2 == 0 else "nearest_conv"))
        labels.append(1)
    return np.stack(images), np.asarray(labels)


# ---------------------------------------------------------------------------------------------------------------
# persons of interest (the identity detector): two real faces shipped in installed packages

#: face photos by name: skimage's astronaut (Eileen Collins) and matplotlib's sample photo of Grace Hopper
PERSON_PHOTOS = ("astronaut", "grace_hopper")


def person_photo(name: str) -> np.ndarray:
    """A 256 x 256 RGB crop around the face of ``name`` (one of PERSON_PHOTOS)."""
    if name == "astronaut":
        return _face_crop()
    if name == "grace_hopper":
        import matplotlib.cbook
        import matplotlib.image

        image = matplotlib.image.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
        return np.ascontiguousarray(image[104:360, 145:401, :3])
    raise ValueError(f"unknown person photo {name!r}; known: {', '.join(PERSON_PHOTOS)}")


def write_photo(path: str | os.PathLike[str], image: np.ndarray) -> None:
    """A PNG of an RGB image."""
    import cv2

    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {path}")


def make_person_clip(path: str | os.PathLike[str], person: str = "astronaut", text: str = SENTENCES[0], *,
                     voice: str = "en-us", pitch: int = 50, fps: float = VIDEO_FPS, lead_s: float = 0.5,
                     tail_s: float = 0.5, seed: int = 0, avatar_motion: str = "none") -> TalkingClip:
    """An MP4 of ``person``'s face (PERSON_PHOTOS) saying ``text`` in espeak-ng's ``voice``: the astronaut's mouth
    follows the speech, other faces sway without mouth motion."""
    if person == "astronaut":
        return make_talking_clip(path, text, voice=voice, pitch=pitch, fps=fps, lead_s=lead_s, tail_s=tail_s,
                                 seed=seed, avatar_motion=avatar_motion)
    rng = np.random.default_rng(seed)
    speech = speak(text, voice=voice, pitch=pitch)
    lead, tail = int(lead_s * AUDIO_RATE), int(tail_s * AUDIO_RATE)
    audio = (10 ** (-55 / 20) * rng.standard_normal(lead + speech.size + tail)).astype(np.float32)
    audio[lead:lead + speech.size] += speech
    n_frames = int(audio.size / AUDIO_RATE * fps)
    frames = render_talking_head(np.zeros(n_frames, dtype=np.float32), fps=fps, background=person_photo(person))
    frames = animate_avatar(frames, avatar_motion, fps=fps, seed=seed, person=person)
    write_mp4(path, frames, fps, audio, sample_rate=AUDIO_RATE)
    return TalkingClip(path=Path(path), kind="talking", offset_ms=0.0, text=text, duration_s=audio.size / AUDIO_RATE)


# long talking heads with partial manipulations (a spliced sentence) and authentic hard cases

#: espeak-ng voices (voice, words per minute, pitch) for tuning and tests; the benchmark speaks HELDOUT_VOICES
TUNING_VOICES = (("en-us", 150, 50), ("en-gb-x-rp+m3", 160, 45), ("en-us+f2", 145, 65))
HELDOUT_VOICES = (("en-gb", 170, 40), ("en-gb-scotland", 135, 60), ("en-us-nyc+m4", 155, 35),
                  ("en-029+f3", 150, 70), ("en-gb-x-gbclan+m2", 165, 55))
#: how the one face photo is varied into several speakers (mirror, tint, framing); the benchmark uses HELDOUT_FACES
TUNING_FACES = ("plain", "mirrored")
HELDOUT_FACES = ("warm", "cool_mirrored", "small")
SPLICE_KINDS = ("voice", "shift")


@dataclass(frozen=True)
class LongClip:
    """A generated long talking head and its truth.

    ``kind``: ``authentic`` (nothing manipulated; it may hold pauses, a head turn, a cutaway, music and a second,
    off-screen speaker), ``voice`` (from ``splice[0]`` to ``splice[1]`` another voice says other words while the
    face keeps saying the original ones: an inserted sentence) or ``shift`` (that stretch of the original audio
    comes ``shift_ms`` late, > 0, or early). ``events`` lists the authentic hard cases as (what, start_s, end_s).
    """

    path: Path
    kind: str
    duration_s: float
    splice: tuple[float, float] | None
    shift_ms: float
    face: str
    voice: str
    events: tuple[tuple[str, float, float], ...]

    @property
    def manipulated(self) -> bool:
        return self.kind != "authentic"


def _vary_face(frames: np.ndarray, face: str) -> np.ndarray:
    """One of several speakers made from the one photo: mirrored, tinted, or smaller in a wider frame."""
    out = frames.astype(np.float32)
    if "mirrored" in face:
        out = out[:, :, ::-1]
    if face.startswith("warm"):
        out = out * np.array([1.12, 1.0, 0.82], dtype=np.float32) + 8.0
    elif face.startswith("cool"):
        out = out * np.array([0.85, 0.97, 1.15], dtype=np.float32) ** 1.0 - 6.0
    if face.startswith("small"):  # small, small_plain: the face at 72 % in a wider, out-of-focus set
        import cv2

        n, h, w = out.shape[:3]
        canvas = np.empty_like(out)
        side = int(0.72 * h)
        for i in range(n):
            canvas[i] = cv2.GaussianBlur(out[i], (0, 0), 12.0)  # the rest of the set, out of focus
            canvas[i, h - side:, (w - side) // 2:(w - side) // 2 + side] = cv2.resize(out[i], (side, side),
                                                                                interpolation=cv2.INTER_AREA)
        out = canvas
    return np.clip(out, 0, 255).astype(np.uint8)


def _turn_away(frame: np.ndarray, amount: float) -> np.ndarray:
    """A crude head turn: the face squeezed sideways (cos of the yaw) and slid towards the edge, ``amount`` 0..1."""
    import cv2

    h, w = frame.shape[:2]
    squeeze = max(0.08, float(np.cos(amount * np.pi / 2 * 0.95)))
    slide = amount * 0.35 * w
    matrix = np.float32([[squeeze, 0, (1 - squeeze) * w / 2 + slide], [0, 1, 0]])
    return cv2.warpAffine(frame, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE)


def _music(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A music-like bed: a chord progression with a beat, at 16 kHz."""
    t = np.arange(int(seconds * AUDIO_RATE)) / AUDIO_RATE
    root = float(rng.choice([196.0, 220.0, 246.9, 261.6]))
    out = np.zeros_like(t)
    for k, ratio in enumerate((1.0, 1.26, 1.5, 2.0)):
        out += np.sin(2 * np.pi * root * ratio * t * (1 + 0.06 * np.floor(t / 1.5) % 2)) / (k + 1)
    beat = 0.6 + 0.4 * np.exp(-((t * 2.0) % 1.0) * 6.0)
    return (0.08 * out * beat).astype(np.float32)


def make_long_clip(path: str | os.PathLike[str], *, kind: str = "authentic", seed: int = 0,
                   sentences: tuple[str, ...] = SENTENCES, voices: tuple[tuple[str, int, int], ...] = TUNING_VOICES,
                   faces: tuple[str, ...] = TUNING_FACES, n_sentences: int = 4, splice_s: float | None = None,
                   shift_ms: float | None = None, events: tuple[str, ...] | None = None, fps: float = VIDEO_FPS,
                   crf: int = 23, avatar_motion: str = "none") -> LongClip:
    """Write a long talking head (``n_sentences`` sentences with pauses, ~20-30 s) and return its truth.

    ``kind`` ``voice`` / ``shift`` puts one splice of ``splice_s`` seconds (random 1-5 s by default) at a random
    place inside the speech; ``authentic`` leaves the audio as spoken. ``events`` (default: a random choice per
    seed, always at least two) adds authentic hard cases: ``pause`` (a long silence, mouth closed), ``turn`` (the
    head turns away while still speaking), ``cutaway`` (the picture cuts to the set or to a still listener while
    the speech goes on), ``music`` (a musical interlude, speaker silent), ``second_speaker`` (another, off-screen
    voice speaks while the face listens with its mouth closed). Spliced clips carry events too.
    """
    if kind not in ("authentic", *SPLICE_KINDS):
        raise ValueError(f"unknown kind {kind!r}")
    rng = np.random.default_rng(seed)
    voice_i = int(rng.integers(len(voices)))
    voice, wpm, pitch = voices[voice_i]
    face = faces[int(rng.integers(len(faces)))]
    chosen = [sentences[int(i)] for i in rng.permutation(len(sentences) * 4)[:n_sentences] % len(sentences)]
    if events is None:
        pool = ("pause", "turn", "cutaway", "music", "second_speaker")
        events = tuple(pool[int(i)] for i in rng.choice(len(pool), size=int(rng.integers(2, 4)), replace=False))
    other_voices = [v for j, v in enumerate(voices) if j != voice_i] or [(voice, wpm, pitch + 30)]

    # the timeline: blocks of the speaker talking, gaps, and events between sentences
    lead = 0.6
    speech_track: list[tuple[float, np.ndarray]] = []  # (start_s, samples) the face speaks
    extra_audio: list[tuple[float, np.ndarray]] = []  # other sound: second speaker, music
    marks: list[tuple[str, float, float]] = []
    talking_spans: list[tuple[float, float]] = []
    t = lead
    queued = list(events)
    for i, text in enumerate(chosen):
        speech = speak(text, voice=voice, words_per_minute=wpm, pitch=pitch)
        speech_track.append((t, speech))
        talking_spans.append((t, t + speech.size / AUDIO_RATE))
        if "turn" in queued and i == 1:  # turns away during the second sentence
            turn_start = t + float(rng.uniform(0.3, 1.0))
            marks.append(("turn", turn_start, min(turn_start + float(rng.uniform(1.0, 2.0)), talking_spans[-1][1])))
            queued.remove("turn")
        if "cutaway" in queued and i == 2:  # the picture cuts away during the third sentence
            cut_start = t + float(rng.uniform(0.5, 1.2))
            marks.append(("cutaway", cut_start, min(cut_start + float(rng.uniform(1.5, 3.0)),
                                                    talking_spans[-1][1])))
            queued.remove("cutaway")
        t += speech.size / AUDIO_RATE + float(rng.uniform(0.25, 0.7))
        if i < len(chosen) - 1 and queued:
            event = next((e for e in queued if e in ("pause", "music", "second_speaker")), None)
            if event is not None:
                queued.remove(event)
                if event == "pause":
                    length = float(rng.uniform(1.5, 3.0))
                elif event == "music":
                    length = float(rng.uniform(2.0, 3.5))
                    extra_audio.append((t, _music(length, rng)))
                else:
                    v2, w2, p2 = other_voices[int(rng.integers(len(other_voices)))]
                    question = speak("And what do you say to your critics tonight?", voice=v2,
                                     words_per_minute=w2, pitch=p2)
                    extra_audio.append((t, question))
                    length = question.size / AUDIO_RATE
                marks.append((event, t, t + length))
                t += length + float(rng.uniform(0.3, 0.6))
    total_s = t + 0.6
    total = int(total_s * AUDIO_RATE)
    n_frames = int(total_s * fps)
    times = np.arange(n_frames) / fps

    spoken = np.zeros(total, dtype=np.float32)  # what the face says, where it says it
    for start, samples in speech_track:
        i0 = int(start * AUDIO_RATE)
        spoken[i0:i0 + samples.size] += samples[: total - i0]
    audio = spoken.copy()
    splice: tuple[float, float] | None = None
    applied_shift = 0.0
    if kind != "authentic":
        length = float(splice_s) if splice_s is not None else float(rng.uniform(1.0, 5.0))
        hidden = [(a, b) for what, a, b in marks if what in ("turn", "cutaway")]
        for _ in range(50):  # inside the speech, where the face is on screen (the face keeps talking)
            s0, s1 = talking_spans[int(rng.integers(len(talking_spans)))]
            start = float(rng.uniform(s0, max(s0, s1 - min(length, s1 - s0))))
            end = min(start + length, total_s - 0.3)
            if not any(start < b + 0.3 and end > a - 0.3 for a, b in hidden):
                break
        i0, i1 = int(start * AUDIO_RATE), int(end * AUDIO_RATE)
        if kind == "voice":
            v2, w2, p2 = other_voices[int(rng.integers(len(other_voices)))]
            pool = [s for s in sentences if s not in chosen] or list(sentences)
            words = speak(pool[int(rng.integers(len(pool)))], voice=v2, words_per_minute=w2, pitch=p2)
            words = np.resize(words, i1 - i0) if words.size < i1 - i0 else words[: i1 - i0]
            level = np.sqrt(np.mean(audio[i0:i1] ** 2) + 1e-9) / np.sqrt(np.mean(words ** 2) + 1e-9)
            audio[i0:i1] = words * float(np.clip(level, 0.5, 2.0))
        else:
            applied_shift = float(shift_ms) if shift_ms is not None else \
                float(rng.choice([-1.0, 1.0]) * rng.uniform(200.0, 450.0))
            lag = int(round(applied_shift / 1000 * AUDIO_RATE))
            src = np.arange(i0, i1) - lag
            audio[i0:i1] = np.where((src >= 0) & (src < total), spoken[np.clip(src, 0, total - 1)], 0.0)
        splice = (round(start, 3), round(end, 3))
    for start, samples in extra_audio:
        i0 = int(start * AUDIO_RATE)
        audio[i0:i0 + samples.size] += samples[: total - i0]
    audio += (10 ** (-55.0 / 20) * rng.standard_normal(total)).astype(np.float32)

    opening = mouth_opening_from_speech(spoken, times)
    frames = _vary_face(animate_avatar(render_talking_head(opening, fps=fps), avatar_motion, fps=fps, seed=seed,
                                       person="astronaut"), face)
    listener = _vary_face(render_talking_head(np.zeros(8, dtype=np.float32), fps=fps, sway=False),
                          "cool_mirrored" if face != "cool_mirrored" else "warm")[0]
    scene = _no_face_crop()
    for what, a, b in marks:
        idx = np.flatnonzero((times >= a) & (times < b))
        if what == "turn":
            ramp = np.clip(np.minimum(times[idx] - a, b - times[idx]) / 0.4, 0, 1)
            for j, amount in zip(idx, ramp, strict=True):
                frames[j] = _turn_away(frames[j], float(amount))
        elif what == "cutaway":
            frames[idx] = scene if rng.random() < 0.5 else listener
    write_mp4(path, frames, fps, audio, sample_rate=AUDIO_RATE, crf=crf)
    return LongClip(path=Path(path), kind=kind, duration_s=total / AUDIO_RATE, splice=splice,
                    shift_ms=applied_shift, face=face, voice=voice, events=tuple(marks))
