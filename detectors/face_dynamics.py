"""``face_dynamics``: a filmed face is never still; a one-shot talking photo is, outside its mouth.

A one-shot avatar (a still photo whose mouth is warped to the speech, optionally with a template head sway and
template blinks) keeps everything but the mouth fixed, or moves it as one flat picture. A filmed face, even one
that tries to hold still, turns in depth, raises its brows, moves its cheeks with the jaw, and catches changing
light. This detector measures that, weight-free, from the face mesh (478 landmarks) of the sampled frames and the
frames themselves, per speaking face track:

- ``nonrigid``: the motion of the upper face (brows, forehead, nose, cheeks, eye corners; not the eyelids, lips or
  jaw) that is left after removing the best 2D affine transform of those landmarks in every frame, i.e. what a
  flat picture moved, turned in the image plane, scaled or squeezed cannot do. In % of the eye distance (temporal
  standard deviation per landmark, lightly smoothed against mesh jitter, RMS over landmarks).
- ``head_turn_deg``: how far the head turns in depth: the nose tip against the eye corners (yaw) and against the
  eye line and forehead (pitch), ratios an affine picture motion leaves unchanged; 5th-95th percentile range in
  approximate degrees.
- ``texture``: the upper face's own appearance over time once every frame is aligned onto the track's mean shape
  (blurred grey levels, the eyes and the mouth masked out; median temporal standard deviation, grey levels);
  ``texture_ratio``: that against the same reading of the mouth (which moves in both): a photo's upper face hardly
  changes while its mouth does. Shading moving with a turning head, cheeks and brows moving with speech make a
  filmed face's ratio larger.
- ``blinks``: eye aspect ratio (lid gap / eye width, from the mesh) dips; count, rate, and the regularity of the
  intervals (a template blinks like a metronome). Supporting evidence only: at the sampled rate a short blink can
  fall between frames, and real people sometimes stare.
- ``renewal``: how much of the aligned upper face's fine detail (high-pass) is new in each sampled frame, against
  the same in the background (diagnostic: recompression dominates it).

The score: each main cue gives "stillness" evidence in [0, 1] on a log scale between a level seen on avatars and a
level seen on filmed faces (thresholds chosen on the TUNING split only: tuning voices and faces, the first half of
the real conversation clip); the clip score is the weighted mean of those, raised when all agree, and lowered by
clearly filmed-face dynamics in any one of them (a single cue of a real face outweighs several low ones). A per-window
timeline (``window_s`` windows) uses the same rule on each window.

Not applicable: no face with landmarks, no audio or no speech (a still photo without speech is not an avatar), a
face on screen for less than ``min_on_screen_s``, too small (``min_face_px`` in the sampled frames), turned away,
or a mouth that does not move (a photo under a voice-over is a photo, not an avatar); and a face that does not speak
this audio: its mouth, read at the video's rate (the mouth patches lipsync reads too), follows the speech at no lag
within 1 s with a correlation of ``min_speaking_sync`` (0.6, lipsync's clear peak; tuning split: in-sync and offset
one-shot avatars 0.80-0.98, real faces dubbed with other real voices and generated mismatched dubs 0.09-0.50). A
filmed face holding still for a few seconds under someone else's words read as an avatar before this (franck 144-152 s
of the check split, 0.59); a dub is lipsync's to find. ``decides_alone`` is False:
the test avatars are 2D warps; a neural avatar that renders 3D head turns is beyond what these figures show.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._base import Detector, DetectorResult, NotApplicable, Window
from ._clip import Clip, FaceTrack
from ._registry import register
from ._mouth import probe_mouth
from .lipsync import shot_cuts, speaking_sync, speech_activity

__all__ = ["FaceDynamics", "track_cues", "RIGID_LANDMARKS"]

logger = logging.getLogger(__name__)

# face-mesh indices. Upper face that a real head carries rigidly or nearly so (brows, forehead, nose, cheeks at eye
# level, temples, eye corners); no eyelids, lips, jaw or chin.
_BROWS = (70, 63, 105, 66, 107, 46, 53, 52, 65, 55, 300, 293, 334, 296, 336, 276, 283, 282, 295, 285)
_FOREHEAD = (10, 151, 9, 108, 337, 109, 338, 67, 297, 69, 299, 104, 333)
_NOSE = (1, 4, 5, 195, 197, 6, 168, 98, 327, 2, 94, 19, 48, 278, 115, 344, 220, 440, 45, 275)
_CHEEKS = (234, 454, 93, 323, 127, 356, 116, 345, 117, 346, 118, 347, 50, 280, 101, 330, 36, 266, 21, 251, 54,
           284, 103, 332, 162, 389)
_EYE_CORNERS = (33, 133, 362, 263)
RIGID_LANDMARKS = _BROWS + _FOREHEAD + _NOSE + _CHEEKS + _EYE_CORNERS
_NOSE_TIP, _TOP = 1, 10
_LEFT_EYE = (33, 133, ((160, 144), (159, 145), (158, 153)))  # outer, inner, (upper, lower) lid pairs
_RIGHT_EYE = (263, 362, ((387, 373), (386, 374), (385, 380)))
_LEFT_EYE_RING = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
_RIGHT_EYE_RING = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
_MOUTH_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185)
_UPPER_FACE = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 58, 132, 93, 234, 127, 162, 21, 54, 103,
               67, 109)

CANVAS = 96  # aligned face canvas side (pixels); the eye distance maps to 0.42 of it
_EYE_SPAN = 0.42


@dataclass
class TrackSignals:
    """Per-observation signals of one face track (sampled frames), everything the cues are computed from."""

    track_id: int
    times: np.ndarray  # (N,)
    residual: np.ndarray  # (N, K, 2) upper-face landmarks after removing each frame's affine fit, eye distances
    yaw: np.ndarray  # (N,) approximate degrees
    pitch: np.ndarray
    roll: np.ndarray
    shift: np.ndarray  # (N, 2) face centre, eye distances
    ear: np.ndarray  # (N,) eye aspect ratio
    mouth: np.ndarray  # (N,) mesh mouth opening
    upper: np.ndarray  # (N, P) blurred aligned grey levels of the upper-face pixels
    mouth_px: np.ndarray  # (N, Q) the same for the mouth region
    highpass: np.ndarray  # (N, P) fine detail of the upper face (aligned)
    background: np.ndarray  # (N-1,) renewal of the background's fine detail between consecutive frames (NaN: none)
    face_px: float
    yaw_median: float
    segments: list[np.ndarray] = field(default_factory=list)  # runs of consecutive observations (no gap, no cut)


def _similarity_normalise(points: np.ndarray, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, float, float]:
    """``points`` (K, 2) moved so the eye corners' midpoint is the origin, the eye line horizontal, the eye distance 1;
    returns (normalised points, roll in degrees, eye distance in pixels)."""
    axis = right - left
    dist = float(np.hypot(*axis))
    angle = math.atan2(axis[1], axis[0])
    c, s = math.cos(-angle), math.sin(-angle)
    rot = np.array([[c, -s], [s, c]])
    centred = (points - 0.5 * (left + right)) @ rot.T / max(dist, 1e-6)
    return centred, math.degrees(angle), dist


def _ear(landmarks: np.ndarray) -> float:
    values = []
    for outer, inner, pairs in (_LEFT_EYE, _RIGHT_EYE):
        width = float(np.linalg.norm(landmarks[outer] - landmarks[inner]))
        if width < 1e-3:
            return float("nan")
        values.append(np.mean([np.linalg.norm(landmarks[u] - landmarks[d]) for u, d in pairs]) / width)
    return float(np.mean(values))


def _masks(reference: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Upper-face, mouth and face masks on the canvas from the reference shape (478, 2) in canvas pixels."""
    import cv2

    upper = np.zeros((CANVAS, CANVAS), np.uint8)
    cv2.fillConvexPoly(upper, cv2.convexHull(reference[list(_UPPER_FACE)].astype(np.int32)), 1)
    face = upper.copy()
    eye_d = float(np.linalg.norm(reference[33] - reference[263]))
    for ring in (_LEFT_EYE_RING, _RIGHT_EYE_RING):  # the eyes (blinks are judged on their own), generously
        hull = cv2.convexHull(reference[list(ring)].astype(np.int32))
        cv2.fillConvexPoly(upper, hull, 0)
        centre = reference[list(ring)].mean(axis=0)
        cv2.ellipse(upper, (int(centre[0]), int(centre[1])), (int(0.28 * eye_d), int(0.14 * eye_d)), 0, 0, 360, 0, -1)
    # the mouth and everything below the nose's base: the mouth warp of a photo reaches there
    cut = int(reference[2, 1] + 0.05 * eye_d)
    upper[cut:] = 0
    mouth = np.zeros_like(upper)
    hull = cv2.convexHull(reference[list(_MOUTH_OUTER)].astype(np.int32))
    cv2.fillConvexPoly(mouth, hull, 1)
    mouth = cv2.dilate(mouth, np.ones((5, 5), np.uint8))
    return upper.astype(bool), mouth.astype(bool), face.astype(bool)


def _runs(times: np.ndarray, cuts: np.ndarray, max_gap: float) -> list[np.ndarray]:
    """Index runs of consecutive observations: split where observations are more than ``max_gap`` apart or at cuts."""
    if times.size == 0:
        return []
    breaks = np.flatnonzero((np.diff(times) > max_gap) |
                            np.array([np.any((cuts > a) & (cuts <= b)) for a, b in zip(times[:-1], times[1:])],
                                     dtype=bool))
    return [r for r in np.split(np.arange(times.size), breaks + 1) if r.size]


def track_signals(clip: Clip, track: FaceTrack, cuts: np.ndarray | None = None) -> TrackSignals:
    """The per-observation signals of ``track`` (which must carry landmarks)."""
    import cv2

    assert track.landmarks is not None
    land = track.landmarks.astype(np.float64)
    index = np.asarray(track.frame_index, dtype=np.int64)
    times = clip.timestamps[index].astype(np.float64)
    n = land.shape[0]
    rigid = list(RIGID_LANDMARKS)
    norm = np.empty((n, len(rigid), 2))
    full = np.empty((n, land.shape[1], 2))
    roll = np.empty(n)
    dist = np.empty(n)
    for i in range(n):
        full[i], roll[i], dist[i] = _similarity_normalise(land[i], land[i, 33], land[i, 263])
        norm[i] = full[i][rigid]
    reference = np.median(norm, axis=0)
    design = np.concatenate([norm, np.ones((n, len(rigid), 1))], axis=2)  # (n, K, 3)
    residual = np.empty_like(norm)
    for i in range(n):
        coef, *_ = np.linalg.lstsq(design[i], reference, rcond=None)
        residual[i] = design[i] @ coef - reference
    # head turn in depth: the nose tip against the eye corners (yaw) and against the eye line / forehead (pitch);
    # ratios an affine motion of a flat picture leaves (nearly) unchanged. The nose tip stands about half an eye
    # distance in front of the eye corners, and the eye distance itself shortens with the turn (cos): the nose tip's
    # offset from the eyes' midpoint in eye distances is about 0.5 tan(angle)
    eye_mid = 0.5 * (full[:, 33] + full[:, 263])
    nose = full[:, _NOSE_TIP]
    top = full[:, _TOP]
    yaw_ratio = (nose[:, 0] - eye_mid[:, 0])  # eye distance units (normalised)
    pitch_ratio = (nose[:, 1] - eye_mid[:, 1]) / np.maximum(eye_mid[:, 1] - top[:, 1], 1e-3)
    yaw = np.degrees(np.arctan(yaw_ratio / 0.5))
    pitch_scale = float(np.median(eye_mid[:, 1] - top[:, 1]))
    pitch = np.degrees(np.arctan((pitch_ratio - np.median(pitch_ratio)) * pitch_scale / 0.5))
    centre = land[:, rigid].mean(axis=1)
    shift = (centre - np.median(centre, axis=0)) / np.median(dist)
    ear = np.array([_ear(land[i]) for i in range(n)])
    boxes = np.asarray(track.boxes, dtype=np.float64)
    face_px = float(np.median(np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])))

    # appearance: every frame's face warped onto the canvas by the affine that best maps its upper-face landmarks
    # onto the reference shape (canvas coordinates: eye distance _EYE_SPAN * CANVAS, eyes at 40 % height)
    offset = np.array([CANVAS / 2, 0.4 * CANVAS])
    ref_canvas = np.median(full, axis=0) * (_EYE_SPAN * CANVAS) + offset
    upper_mask, mouth_mask, face_mask = _masks(ref_canvas)
    uppers, mouths, highs = [], [], []
    previous_bg: np.ndarray | None = None
    background = np.full(max(0, n - 1), np.nan)
    for i in range(n):
        frame = clip.frames[index[i]]
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
        matrix, _ = cv2.estimateAffine2D(land[i, rigid].astype(np.float32), ref_canvas[rigid].astype(np.float32),
                                         method=cv2.LMEDS)
        if matrix is None:
            matrix = cv2.getAffineTransform(land[i, [33, 263, 1]].astype(np.float32),
                                            ref_canvas[[33, 263, 1]].astype(np.float32))
        aligned = cv2.warpAffine(grey, matrix, (CANVAS, CANVAS), flags=cv2.INTER_AREA if dist[i] > _EYE_SPAN * CANVAS
                                 else cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        smooth = cv2.GaussianBlur(aligned, (0, 0), 1.2)
        uppers.append(smooth[upper_mask])
        mouths.append(smooth[mouth_mask])
        highs.append((aligned - cv2.GaussianBlur(aligned, (0, 0), 1.0))[upper_mask])
        # the background: the frame outside the face box (dilated), fine detail, consecutive frames
        h, w = grey.shape
        small = cv2.resize(grey, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        detail = small - cv2.GaussianBlur(small, (0, 0), 1.0)
        x0, y0, x1, y1 = boxes[i] / 2
        pad_x, pad_y = 0.4 * (x1 - x0), 0.4 * (y1 - y0)
        keep = np.ones_like(detail, dtype=bool)
        keep[max(0, int(y0 - pad_y)):int(y1 + 2 * pad_y) + 1, max(0, int(x0 - pad_x)):int(x1 + pad_x) + 1] = False
        bg = np.where(keep, detail, np.nan)
        if previous_bg is not None and i > 0:
            both = np.isfinite(bg) & np.isfinite(previous_bg)
            if both.sum() > 200:
                a, b = bg[both], previous_bg[both]
                denom = float(np.sqrt(np.sum(a * a) * np.sum(b * b)))
                background[i - 1] = 1.0 - float(np.sum(a * b)) / denom if denom > 1e-6 else np.nan
        previous_bg = bg
    step = float(np.median(np.diff(clip.timestamps))) if clip.timestamps.size > 1 else 0.2
    segments = _runs(times, np.zeros(0) if cuts is None else cuts, max_gap=2.5 * step)
    return TrackSignals(track_id=int(track.track_id), times=times, residual=residual, yaw=yaw, pitch=pitch,
                        roll=roll, shift=shift, ear=ear, mouth=np.asarray(track.mouth_open, dtype=np.float64),
                        upper=np.stack(uppers), mouth_px=np.stack(mouths), highpass=np.stack(highs),
                        background=background, face_px=face_px, yaw_median=float(np.median(yaw)),
                        segments=segments)


def _smooth3(values: np.ndarray) -> np.ndarray:
    """3-tap temporal smoothing along axis 0 (edges kept): mesh jitter is white, head motion is not."""
    if values.shape[0] < 3:
        return values
    out = values.copy()
    out[1:-1] = 0.25 * values[:-2] + 0.5 * values[1:-1] + 0.25 * values[2:]
    return out


def _blinks(times: np.ndarray, ear: np.ndarray, depth: float = 0.72) -> list[float]:
    """Times of blinks: runs of frames whose eye aspect ratio falls under ``depth`` x its running median (3 s)."""
    ok = np.isfinite(ear)
    if ok.sum() < 5:
        return []
    out: list[float] = []
    closed = np.zeros(ear.size, dtype=bool)
    for i in np.flatnonzero(ok):
        near = ok & (np.abs(times - times[i]) <= 1.5)
        closed[i] = ear[i] < depth * float(np.median(ear[near]))
    run_start = None
    for i in range(ear.size + 1):
        if i < ear.size and closed[i]:
            run_start = i if run_start is None else run_start
        elif run_start is not None:
            if times[i - 1] - times[run_start] <= 1.0:  # a blink, not eyes held shut or looking down
                out.append(float(times[run_start:i].mean()))
            run_start = None
    return out


def track_cues(signals: TrackSignals, rows: np.ndarray | None = None) -> dict[str, float]:
    """The cue values over the observations ``rows`` (all by default), computed within each run of consecutive
    observations."""
    rows = np.arange(signals.times.size) if rows is None else np.asarray(rows)
    chosen = set(rows.tolist())
    runs = [np.array([i for i in seg if i in chosen]) for seg in signals.segments]
    runs = [r for r in runs if r.size >= 4]
    if not runs:
        return {}
    weights = np.array([r.size for r in runs], dtype=np.float64)

    def pooled(fn: Any) -> float:
        values = np.array([fn(r) for r in runs], dtype=np.float64)
        good = np.isfinite(values)
        return float(np.average(values[good], weights=weights[good])) if good.any() else float("nan")

    def nonrigid(r: np.ndarray) -> float:
        res = _smooth3(signals.residual[r])
        return float(np.sqrt(np.mean(np.var(res, axis=0).sum(axis=1)))) * 100.0

    def spread(values: np.ndarray) -> float:
        v = _smooth3(values)
        return float(np.percentile(v, 95) - np.percentile(v, 5))

    def texture(block: np.ndarray) -> float:
        return float(np.median(np.std(block, axis=0)))

    def renewal(r: np.ndarray) -> float:
        h = signals.highpass[r]
        a, b = h[1:], h[:-1]
        corr = np.sum(a * b, axis=1) / np.sqrt(np.sum(a * a, axis=1) * np.sum(b * b, axis=1) + 1e-9)
        return float(np.median(1.0 - corr))

    texture_upper = pooled(lambda r: texture(signals.upper[r]))
    texture_mouth = pooled(lambda r: texture(signals.mouth_px[r]))
    span = float(sum(signals.times[r[-1]] - signals.times[r[0]] for r in runs))
    blinks = [t for r in runs for t in _blinks(signals.times[r], signals.ear[r])]
    intervals = np.diff(sorted(blinks))
    bg = signals.background
    bg_rows = [i for r in runs for i in r[:-1] if i < bg.size and np.isfinite(bg[i])]
    return {
        "nonrigid": pooled(nonrigid),
        "head_turn_deg": pooled(lambda r: math.hypot(spread(signals.yaw[r]), spread(signals.pitch[r]))),
        "yaw_range_deg": pooled(lambda r: spread(signals.yaw[r])),
        "pitch_range_deg": pooled(lambda r: spread(signals.pitch[r])),
        "roll_range_deg": pooled(lambda r: spread(signals.roll[r])),
        "shift": pooled(lambda r: float(np.sqrt(np.sum(np.var(_smooth3(signals.shift[r]), axis=0)))) * 100.0),
        "texture": texture_upper,
        "texture_mouth": texture_mouth,
        "texture_ratio": texture_upper / max(texture_mouth, 1e-3),
        "renewal": pooled(renewal),
        "background_renewal": float(np.median(bg[bg_rows])) if bg_rows else float("nan"),
        "mouth_std": pooled(lambda r: float(np.nanstd(signals.mouth[r]))),
        "blinks": float(len(blinks)),
        "blink_rate_per_min": 60.0 * len(blinks) / max(span, 1e-6),
        "blink_interval_cv": float(np.std(intervals) / np.mean(intervals)) if intervals.size >= 2 else float("nan"),
        "blink_interval_s": float(np.mean(intervals)) if intervals.size else float("nan"),
        "longest_without_blink_s": _longest_gap(blinks, runs, signals.times),
        "seconds": span,
    }


def _longest_gap(blinks: list[float], runs: list[np.ndarray], times: np.ndarray) -> float:
    edges = sorted([float(times[r[0]]) for r in runs[:1]] + blinks + [float(times[r[-1]]) for r in runs[-1:]])
    return float(np.max(np.diff(edges))) if len(edges) > 1 else 0.0


@dataclass(frozen=True)
class Cue:
    """How one cue becomes stillness evidence: 1 at or below ``still`` (seen on avatars), 0 at or above ``alive``
    (seen on filmed faces), log-linear between; ``weight`` in the clip score."""

    still: float
    alive: float
    weight: float

    def evidence(self, value: float) -> float:
        if not np.isfinite(value):
            return float("nan")
        lo, hi = math.log(self.still), math.log(self.alive)
        return float(np.clip((hi - math.log(max(value, 1e-6))) / (hi - lo), 0.0, 1.0))


#: thresholds chosen on the TUNING split (see the module text and bench/face_dynamics_accuracy.py)
CUES: dict[str, Cue] = {
    "texture_ratio": Cue(still=0.22, alive=0.38, weight=2.0),
    "nonrigid": Cue(still=0.6, alive=1.2, weight=1.0),
    "head_turn_deg": Cue(still=4.0, alive=9.0, weight=1.0),
}


SPREAD_CAP = 0.3
TEMPLATE_BLINKS, NO_BLINKS, NATURAL_BLINKS, NO_BLINK_S = 0.2, 0.1, 0.15, 15.0
REGULAR_CV, IRREGULAR_CV = 0.12, 0.3  # blink intervals: a metronome (template) / natural irregularity


@dataclass
class FaceDynamicsInputs:
    """Per judged track: its signals; plus the clip-level speech facts."""

    tracks: list[TrackSignals]
    speech_share: float
    duration_s: float


@register
class FaceDynamics(Detector[FaceDynamicsInputs, dict[str, Any]]):
    """One-shot talking photos and 2D head avatars: a face whose upper part stays still (or moves as a flat
    picture) while it speaks."""

    name = "face_dynamics"
    version = "1.0"

    def __init__(self, *, device: str = "auto", batch_size: int = 8, min_on_screen_s: float = 3.0,
                 min_face_px: float = 64.0, max_yaw_deg: float = 35.0, talking_mouth_std: float = 0.015,
                 min_speech_share: float = 0.1, speech_floor_dbfs: float = -50.0, window_s: float = 4.0,
                 hop_s: float = 2.0, max_tracks: int = 3, cues: dict[str, Cue] | None = None,
                 min_speaking_sync: float = 0.6, dense_max_fps: float = 25.0) -> None:
        super().__init__(device=device, batch_size=batch_size)
        self.min_on_screen_s = min_on_screen_s
        self.min_face_px = min_face_px
        self.max_yaw_deg = max_yaw_deg
        self.talking_mouth_std = talking_mouth_std
        self.min_speech_share = min_speech_share
        self.speech_floor_dbfs = speech_floor_dbfs
        self.window_s = window_s
        self.hop_s = hop_s
        self.max_tracks = max_tracks
        self.cues = dict(CUES if cues is None else cues)
        self.min_speaking_sync = min_speaking_sync
        self.dense_max_fps = dense_max_fps

    # -- probe (while the file exists): the mouth at the video's own rate, shared with lipsync
    def probe(self, clip: Clip, path: str) -> None:
        """Cut the speaker's mouth patches from every frame of the file (``detectors._mouth``) unless another
        detector did: whether the face on screen speaks the audio is read from them."""
        probe_mouth(clip, path, max_fps=self.dense_max_fps)

    # -- preprocess (CPU, one clip)
    def preprocess(self, clip: Clip) -> FaceDynamicsInputs | NotApplicable:
        tracks = [t for t in clip.faces if t.landmarks is not None and len(t) > 0]
        if not tracks:
            return NotApplicable("no face")
        if not clip.has_audio:
            return NotApplicable("no audio stream: a face that does not speak is not judged (a still photo "
                                 "without speech is not an avatar)")
        assert clip.audio is not None
        _, level, active = speech_activity(clip.audio, clip.sample_rate, floor_dbfs=self.speech_floor_dbfs)
        speech_share = float(np.mean(active)) if level.size else 0.0
        if speech_share < self.min_speech_share:
            return NotApplicable(f"no speech ({speech_share:.0%} of the audio above the floor): a face that does not "
                                 f"speak is not judged (a still photo without speech is not an avatar)")
        # the face judged must be the one speaking this audio: an avatar's mouth follows its speech (in sync or
        # shifted); a face shown under another voice (a dub, a listener, a voice-over) is lipsync's to judge, and a
        # filmed face holding still for a few seconds under someone else's words is not an avatar. Read at the
        # video's rate only: at the sampled frames (no patches) the mesh aliases syllables and cannot tell
        sync = speaking_sync(clip, max_lag_s=1.0)
        if sync is not None and sync[1] != "mesh" and sync[0] < self.min_speaking_sync:
            return NotApplicable(f"the face on screen does not speak this audio: its mouth follows the speech at no "
                                 f"lag within 1 s (best correlation {sync[0]:.2f}, needs {self.min_speaking_sync:g}); "
                                 f"a dub, a listener or a voice-over, not an avatar (lipsync judges a dub)")
        step = float(np.median(np.diff(clip.timestamps))) if clip.timestamps.size > 1 else 0.2
        why: list[str] = []
        cuts = shot_cuts(clip.frames, clip.timestamps)
        judged: list[TrackSignals] = []
        for track in tracks[: self.max_tracks * 2]:
            times = clip.timestamps[np.asarray(track.frame_index)]
            on_screen = float(times[-1] - times[0] + step) if times.size else 0.0
            if on_screen < self.min_on_screen_s or len(track) < 0.5 * self.min_on_screen_s / step:
                why.append(f"on screen too briefly ({on_screen:.1f} s < {self.min_on_screen_s:g} s)")
                continue
            boxes = np.asarray(track.boxes, dtype=np.float64)
            size = float(np.median(np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])))
            if size < self.min_face_px:
                why.append(f"face too small ({size:.0f} px in the sampled frames, needs {self.min_face_px:g})")
                continue
            mouth = np.asarray(track.mouth_open, dtype=np.float64)
            mouth_std = float(np.nanstd(mouth)) if np.isfinite(mouth).any() else 0.0
            signals = track_signals(clip, track, cuts)
            if abs(signals.yaw_median) > self.max_yaw_deg:
                why.append(f"face not frontal enough (turned about {abs(signals.yaw_median):.0f} degrees)")
                continue
            if mouth_std < self.talking_mouth_std:
                why.append(f"the face does not speak (mouth opening std {mouth_std:.3f}): a photo under a voice-over "
                           f"is not an avatar")
                continue
            judged.append(signals)
            if len(judged) >= self.max_tracks:
                break
        if not judged:
            return NotApplicable("; ".join(dict.fromkeys(why)) or "no face to judge")
        return FaceDynamicsInputs(tracks=judged, speech_share=speech_share, duration_s=clip.duration_s)

    # -- forward: nothing for a device (landmark geometry and small images); the cues are computed here
    def _forward(self, batch: list[FaceDynamicsInputs]) -> list[dict[str, Any]]:
        out = []
        for item in batch:
            tracks = []
            for signals in item.tracks:
                cues = track_cues(signals)
                windows = []
                start = float(signals.times[0])
                end_all = float(signals.times[-1])
                while True:
                    rows = np.flatnonzero((signals.times >= start) & (signals.times < start + self.window_s))
                    if rows.size >= 4:
                        windows.append((start, min(start + self.window_s, end_all), track_cues(signals, rows)))
                    if start + self.window_s >= end_all:
                        break
                    start += self.hop_s
                tracks.append({"signals": signals, "cues": cues, "windows": windows})
            out.append({"tracks": tracks, "speech_share": item.speech_share})
        return out

    # -- postprocess
    def score_cues(self, cues: dict[str, float]) -> tuple[float, dict[str, float]]:
        """(score, per-cue stillness evidence) for one set of cue values.

        The weighted mean of the main cues' stillness, capped at the least still cue + ``spread_cap`` (one cue of
        clearly filmed dynamics outweighs the rest); blinks then add or take a little: three or more blinks at
        metronome-regular intervals (a template) add TEMPLATE_BLINKS, no blink over NO_BLINK_S adds NO_BLINKS, three
        or more irregular (natural) blinks take NATURAL_BLINKS away."""
        evidence = {name: cue.evidence(cues.get(name, float("nan"))) for name, cue in self.cues.items()}
        good = {n: v for n, v in evidence.items() if np.isfinite(v)}
        if not good:
            return 0.0, evidence
        weights = np.array([self.cues[n].weight for n in good])
        values = np.array(list(good.values()))
        mean = float(np.average(values, weights=weights))
        score = min(mean, float(values.min()) + SPREAD_CAP)
        cv, blinks = cues.get("blink_interval_cv", float("nan")), cues.get("blinks", 0.0)
        if np.isfinite(cv) and blinks >= 3 and cv < REGULAR_CV:
            evidence["blinks"] = TEMPLATE_BLINKS
        elif blinks == 0 and cues.get("seconds", 0.0) >= NO_BLINK_S:
            evidence["blinks"] = NO_BLINKS
        elif np.isfinite(cv) and blinks >= 3 and cv >= IRREGULAR_CV:
            evidence["blinks"] = -NATURAL_BLINKS
        else:
            evidence["blinks"] = 0.0
        if score > 0.2 or evidence["blinks"] < 0:  # blinks support a still face; they never make one of a moving face
            score += evidence["blinks"]
        return float(np.clip(score, 0.0, 1.0)), evidence

    def postprocess(self, raw: dict[str, Any], clip: Clip) -> DetectorResult:
        best: dict[str, Any] | None = None
        per_track = []
        timeline: list[Window] = []
        for item in raw["tracks"]:
            cues = item["cues"]
            score, stillness = self.score_cues(cues)
            windows = []
            for a, b, wc in item["windows"]:
                ws, _ = self.score_cues(wc) if wc else (0.0, {})
                # a window says where; the whole track's reading (more frames, steadier) says how much: a few still
                # seconds of a filmed face must not become a flagged stretch of their own
                windows.append(Window(a, b, min(ws, score)))
            entry = {"track": item["signals"].track_id, "score": round(score, 3),
                     "cues": {k: round(float(v), 4) for k, v in cues.items()},
                     "stillness": {k: round(float(v), 3) for k, v in stillness.items()},
                     "windows": windows, "signals": item["signals"]}
            per_track.append(entry)
            if best is None or score > best["score"]:
                best = entry
        assert best is not None
        timeline = best["windows"]
        cues = best["cues"]
        reasons = _reasons(cues, best["score"])
        evidence: dict[str, Any] = {
            "reasons": reasons,
            "decides_alone": False,
            "track": best["track"],
            "cues": cues,
            "stillness": best["stillness"],
            "tracks": [{k: v for k, v in t.items() if k not in ("windows", "signals")} for t in per_track],
            "speech_share": round(float(raw["speech_share"]), 3),
            **{k: cues.get(k) for k in ("nonrigid", "head_turn_deg", "texture_ratio", "blinks",
                                        "blink_rate_per_min", "renewal")},
        }
        return self.result(applicable=True, score=float(best["score"]), timeline=timeline, evidence=evidence)


def _reasons(cues: dict[str, float], score: float) -> list[str]:
    seconds = cues.get("seconds", 0.0)
    out = []
    if score >= 0.5:
        out.append(f"the face outside the mouth is still while it speaks for {seconds:.0f} s: its upper part moves "
                   f"only as a flat picture (non-rigid motion {cues['nonrigid']:.2f} % of the eye distance, "
                   f"appearance change {cues['texture_ratio']:.2f} of the mouth's)")
        out.append(f"the head turns about {cues['head_turn_deg']:.1f} degrees in depth in total")
        blinks = int(cues.get("blinks", 0))
        if blinks == 0:
            out.append(f"no blink in {cues.get('longest_without_blink_s', seconds):.0f} s")
        elif np.isfinite(cues.get("blink_interval_cv", float("nan"))) and cues["blink_interval_cv"] < 0.2:
            out.append(f"{blinks} blinks at regular intervals (every {cues['blink_interval_s']:.1f} s), as from a "
                       f"template")
        out.append("a one-shot talking photo or a head avatar would look like this")
    else:
        out.append(f"the face moves like a filmed face while it speaks: non-rigid motion {cues['nonrigid']:.2f} % of "
                   f"the eye distance, head turns about {cues['head_turn_deg']:.1f} degrees, upper-face appearance "
                   f"change {cues['texture_ratio']:.2f} of the mouth's, {int(cues.get('blinks', 0))} blinks in "
                   f"{seconds:.0f} s")
    return out
