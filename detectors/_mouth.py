"""The speaker's mouth at the video's own frame rate, read from the file at its own resolution.

The suite samples frames at a few per second (``VIGIL_SAMPLE_FPS``, 5 by default) and at a bounded size
(``VIGIL_SAMPLE_MAX_SIDE``); the face mesh runs on those. That is enough to find faces, and too coarse for the lips:
syllables come at 4-5 Hz, so 5 samples a second alias them, and a small face leaves the mouth a few dozen pixels wide
where landmark jitter is as large as the lips' movement. Speech-sized judgements (is this 2-second stretch in sync?)
need the mouth at the video's own rate.

So, while the file is still at hand (a detector's ``probe`` hook), the video is decoded a second time, luma only (or,
for a file small enough, its luma planes are read from those ``decode_clip`` kept in the clip), and from every frame
(up to ``max_fps``) a small grey patch around the speaker's mouth is cut at the file's own
resolution: the mouth box comes from the face-mesh landmarks of the sampled frames, interpolated in time between
them (a frame far from any sampled frame with the face gets no patch). ``mouth_patches`` returns those patches.

``dense_opening`` turns the patches into a mouth-opening signal at that rate. The face mesh readings at the sampled
frames are the labels: a ridge regression from the patches' principal components to the mesh's mouth opening is fitted
on this clip's own sampled frames and read out on every frame. Appearance (the dark mouth cavity, teeth, the lower
lip's shadow) carries the opening even where the landmarks jitter, and the regression averages the jitter away. Its
cross-validated correlation with the mesh says how much to trust it: below ``min_fit`` the caller keeps the mesh
readings.

This is the classic appearance route to visual speech features (principal components of a mouth region, as in
audio-visual speech recognition and synchrony work), calibrated per clip instead of trained on a corpus: nothing to
download, and it adapts to each face, camera and compression.
"""
from __future__ import annotations

import bisect
import contextlib
import logging
import os
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._clip import Clip
from ._decode import LUMA_KEY
from ._decode import luma_plane as _luma

__all__ = ["MouthPatches", "DenseMouth", "mouth_patches", "probe_mouth", "dense_opening", "main_face_landmarks",
           "main_face_owner", "principal_axes", "PROBE_KEY"]

logger = logging.getLogger(__name__)

PROBE_KEY = "mouth"  # Clip.probes[PROBE_KEY]: the MouthPatches of the speaker
PATCH_W, PATCH_H = 32, 24
# face-mesh indices: outer mouth corners, inner lips (upper, lower), chin
_CORNERS = (61, 291)
_LIPS = (13, 14)


@dataclass
class MouthPatches:
    """Grey mouth patches of the main face at the video's own rate.

    ``times`` (M,) seconds on the clip's clock; ``patches`` (M, PATCH_H, PATCH_W) uint8 (zeros where ``valid`` is
    False: no sampled frame with the face near enough in the same shot); ``mouth_px``: median mouth width in the
    file's pixels; ``cuts``: times of picture cuts found at this rate (the first frame after each)."""

    times: np.ndarray
    patches: np.ndarray
    valid: np.ndarray
    rate: float
    mouth_px: float
    cuts: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # dense_opening's readings of these patches, by their inputs: lipsync and face_dynamics read the same clip's
    readings: dict[tuple[Any, ...], DenseMouth | None] = field(default_factory=dict, repr=False, compare=False)


@dataclass
class DenseMouth:
    """The mouth opening at every frame of ``MouthPatches`` (NaN where invalid), on the clip's own scale: 0 at rest
    (the reading's 5th percentile), 1 open (its 95th); ``motion``: how much the patch changes between the two, as the
    RMS per-pixel change in grey levels / 255 (a still face under head sway reads about 0.03, a talking one 0.2)."""

    times: np.ndarray
    opening: np.ndarray
    valid: np.ndarray
    rate: float
    fit: float  # correlation of the reading with the face mesh's at the sampled frames (cross-validated: regression)
    method: str = "appearance"  # appearance | regression | fast_appearance (see dense_opening)
    agreement: float = 0.0  # correlation of the patches' main mode with a darker mouth centre
    motion: float = 0.0


def main_face_owner(clip: Clip, *, with_landmarks: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per sampled frame, (position in ``clip.faces``, observation index in that track) of the main visible face:
    the most likely speaker's track present in that frame (-1, -1 where none). A cutaway or a turned head splits the
    speaker into several tracks; this joins them back. ``with_landmarks``: only tracks that carry landmarks."""
    track_of = np.full(len(clip.frames), -1, dtype=np.int64)
    observation = np.full(len(clip.frames), -1, dtype=np.int64)
    for position, track in enumerate(clip.faces):  # speaker first
        if with_landmarks and track.landmarks is None:
            continue
        index = np.asarray(track.frame_index, dtype=np.int64)
        free = track_of[index] < 0
        track_of[index[free]] = position
        observation[index[free]] = np.flatnonzero(free)
    return track_of, observation


def main_face_landmarks(clip: Clip) -> tuple[np.ndarray, np.ndarray]:
    """(sampled-frame indices, (n, 478, 2) landmarks) of the main visible face (``main_face_owner``)."""
    track_of, observation = main_face_owner(clip, with_landmarks=True)
    seen = np.flatnonzero(track_of >= 0)
    if seen.size == 0:
        return seen, np.zeros((0, 0, 2), dtype=np.float32)
    return seen, np.stack([clip.faces[track_of[i]].landmarks[observation[i]] for i in seen])  # type: ignore[index]


def _mouth_boxes(landmarks: np.ndarray) -> np.ndarray:
    """(n, 3): centre x, centre y and side (the patch's width) of the mouth region, in sampled-frame pixels."""
    left, right = landmarks[:, _CORNERS[0]], landmarks[:, _CORNERS[1]]
    width = np.linalg.norm(right - left, axis=1)
    centre = 0.5 * (left + right) * 0.5 + 0.5 * (0.5 * (landmarks[:, _LIPS[0]] + landmarks[:, _LIPS[1]]))
    # the lower lip and the jaw move down when the mouth opens: centre the region a little below the lips
    centre = centre + np.stack([np.zeros_like(width), 0.12 * width], axis=1)
    return np.column_stack([centre, 1.7 * width])


class RunningMedian:
    """The median of the last ``size`` values added, as ``np.median`` of them gives it (the mean of the two middle
    values for an even count), kept in a sorted list: one insertion and one removal a value instead of a sort of the
    whole window (the mouth patches ask once a frame)."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"size must be at least 1, got {size}")
        self.size = size
        self._order: deque[float] = deque()
        self._sorted: list[float] = []

    def __len__(self) -> int:
        return len(self._order)

    def add(self, value: float) -> None:
        value = float(value)
        self._order.append(value)
        bisect.insort(self._sorted, value)
        if len(self._order) > self.size:
            del self._sorted[bisect.bisect_left(self._sorted, self._order.popleft())]

    def median(self) -> float:
        n = len(self._sorted)
        if n == 0:
            return float("nan")
        middle = n // 2
        return self._sorted[middle] if n % 2 else (self._sorted[middle - 1] + self._sorted[middle]) / 2


def mouth_patches(clip: Clip, path: str | os.PathLike[str], *, max_fps: float = 25.0, max_gap_s: float = 0.6,
                  cut_factor: float = 4.0, cut_floor: float = 12.0) -> MouthPatches | None:
    """Decode ``path`` again (luma only; or read the luma planes ``decode_clip`` kept in ``clip.probes[LUMA_KEY]``)
    and cut the main face's mouth patch from every frame, up to ``max_fps``.

    The mouth box of a frame is interpolated between the nearest sampled frames that show the face *in the same
    shot*, at most ``max_gap_s`` away; a frame without one gets no patch. Picture cuts are found at this rate: a
    thumbnail change above ``cut_factor`` times the running median change and ``cut_floor`` grey levels. Frames wait
    (as small crops) only until the next sampled frame's shot is known, so memory stays bounded on long videos.
    None when the clip has no face with landmarks or the file cannot be read again (the caller keeps the sampled
    frames' readings)."""
    import av
    import cv2

    index, landmarks = main_face_landmarks(clip)
    if index.size < 2 or not len(clip.frames):
        return None
    key_times = clip.timestamps[index]
    boxes = _mouth_boxes(landmarks)
    key_shot = np.full(key_times.size, -1, dtype=np.int64)
    sampled_w = clip.frames.shape[2]
    step = 1.0 / max_fps
    times: list[float] = []
    patches: list[np.ndarray] = []
    valid: list[bool] = []
    cuts: list[float] = []
    changes = RunningMedian(250)  # the usual change between consecutive frames, over the last 250
    pending: list[tuple[int, float, int, int, int, np.ndarray, np.ndarray]] = []  # slot, t, shot, j, k, crop, origin
    scale = 1.0
    shot = 0
    previous: np.ndarray | None = None

    def finish(item: tuple[int, float, int, int, int, np.ndarray, np.ndarray]) -> None:
        slot, rel, frame_shot, j, k, crop, origin = item
        use_j = j >= 0 and key_shot[j] == frame_shot and rel - key_times[j] <= max_gap_s
        use_k = k >= 0 and key_shot[k] == frame_shot and key_times[k] - rel <= max_gap_s
        if not (use_j or use_k):
            return
        if use_j and use_k:
            a = (rel - key_times[j]) / max(key_times[k] - key_times[j], 1e-9)
            box = (1 - a) * boxes[j] + a * boxes[k]
        else:
            box = boxes[j] if use_j else boxes[k]
        cx, cy, side = box[0] * scale - origin[0], box[1] * scale - origin[1], box[2] * scale
        size = (max(2, int(round(side))), max(2, int(round(side * PATCH_H / PATCH_W))))
        patch = cv2.getRectSubPix(crop, size, (float(cx), float(cy)))
        patches[slot] = cv2.resize(patch, (PATCH_W, PATCH_H), interpolation=cv2.INTER_AREA)
        valid[slot] = True

    kept = clip.probes.get(LUMA_KEY)  # every frame's luma, kept by decode_clip: no second decode
    try:
        with contextlib.ExitStack() as stack:
            source: Iterator[tuple[float | None, Any]]
            if kept is not None:
                source = iter(kept)
            else:
                container = stack.enter_context(av.open(str(path), mode="r"))
                if not container.streams.video:
                    return None
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                source = ((frame.time, frame) for frame in container.decode(stream))
            origin_t: float | None = None
            next_t = 0.0
            for frame_time, frame in source:
                t = frame_time if frame_time is not None else (times[-1] + step if times else 0.0)
                if origin_t is None:
                    origin_t = t
                rel = t - origin_t
                if rel + 1e-6 < next_t or rel > clip.duration_s + 1.0:
                    continue
                while next_t <= rel + 1e-6:
                    next_t += step
                grey = frame if isinstance(frame, np.ndarray) else _luma(frame)
                scale = grey.shape[1] / float(sampled_w)
                thumb = cv2.resize(grey, (32, 18), interpolation=cv2.INTER_AREA).astype(np.float32)
                if previous is not None:
                    change = float(np.abs(thumb - previous).mean())
                    usual = changes.median() if len(changes) else 0.0
                    if change > max(cut_floor, cut_factor * usual):
                        shot += 1
                        cuts.append(rel)
                    changes.add(change)
                previous = thumb
                # the sampled frames at this time take this frame's shot
                key_shot[(key_shot < 0) & (np.abs(key_times - rel) <= 0.5 * step + 1e-6)] = shot
                slot = len(times)
                times.append(rel)
                patches.append(np.zeros((PATCH_H, PATCH_W), dtype=np.uint8))
                valid.append(False)
                k = int(np.searchsorted(key_times, rel + 1e-9))
                j = k - 1
                near = [b for b in (j, k) if 0 <= b < key_times.size and abs(key_times[b] - rel) <= max_gap_s]
                if near:  # keep only the region either bracketing box can reach
                    reach = boxes[near]
                    x0 = max(0, int((reach[:, 0] - reach[:, 2]).min() * scale))
                    y0 = max(0, int((reach[:, 1] - reach[:, 2]).min() * scale))
                    x1 = int(np.ceil((reach[:, 0] + reach[:, 2]).max() * scale))
                    y1 = int(np.ceil((reach[:, 1] + reach[:, 2]).max() * scale))
                    crop = grey[y0:y1, x0:x1].copy()
                    if crop.size:
                        pending.append((slot, rel, shot, j if j >= 0 else -1, k if k < key_times.size else -1, crop,
                                        np.array([x0, y0], dtype=np.float64)))
                while pending and (pending[0][4] < 0 or key_shot[pending[0][4]] >= 0 or
                                   key_times[pending[0][4]] - pending[0][1] > max_gap_s):
                    finish(pending.pop(0))
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        logger.info("%s: mouth patches not read (%s); the sampled frames' readings are used", clip.source, exc)
        return None
    for item in pending:
        finish(item)
    if not times or not any(valid):
        return None
    times_a = np.asarray(times, dtype=np.float64)
    rate = 1.0 / float(np.median(np.diff(times_a))) if times_a.size > 1 else max_fps
    width = float(np.median(boxes[:, 2])) / 1.7 * scale
    return MouthPatches(times=times_a, patches=np.stack(patches), valid=np.asarray(valid, dtype=bool),
                        rate=float(rate), mouth_px=width, cuts=np.asarray(cuts, dtype=np.float64))


def principal_axes(samples: np.ndarray, count: int) -> np.ndarray:
    """The first ``count`` principal axes of ``samples`` (n, p), already centred: ``np.linalg.svd(samples)``'s first
    ``count`` rows of ``vt``, as (min(count, n, p), p) rows in ``samples``' dtype, each up to its sign.

    Read from the eigenvectors of the smaller of the two Gram matrices (n x n or p x p) in float64, not from a full
    SVD: the mouth patches (p = 768 pixels, a few hundred to 3000 frames) need a couple of dozen axes, and the full
    float32 SVD computed all of them at about twice the cost. The axes agree with the SVD's to float32 rounding."""
    data = np.asarray(samples, dtype=np.float64)
    n, p = data.shape
    count = min(count, n, p)
    if count < 1:
        return np.zeros((0, p), dtype=samples.dtype)
    if n <= p:
        _, vectors = np.linalg.eigh(data @ data.T)  # eigenvalues ascending
        left = vectors[:, ::-1][:, :count]
        axes = left.T @ data  # each row: singular value x axis
        norms = np.linalg.norm(axes, axis=1, keepdims=True)
        axes = np.where(norms > 0, axes / np.where(norms > 0, norms, 1.0), 0.0)
    else:
        _, vectors = np.linalg.eigh(data.T @ data)
        axes = vectors[:, ::-1][:, :count].T
    return np.ascontiguousarray(axes, dtype=samples.dtype)


def _ridge(features: np.ndarray, target: np.ndarray, alpha: float) -> np.ndarray:
    """Ridge coefficients (with an intercept column last) for standardised ``features``."""
    design = np.column_stack([features, np.ones(len(features))])
    penalty = alpha * np.eye(design.shape[1])
    penalty[-1, -1] = 0.0
    return np.linalg.solve(design.T @ design + penalty, design.T @ target)


def _fast_part(values: np.ndarray, times: np.ndarray, rate: float, width_s: float) -> np.ndarray:
    """``values`` (M, P) less their moving average over ``width_s`` along time, within each run of consecutive frames
    (a gap in the valid frames starts a new run)."""
    out = np.empty_like(values, dtype=np.float32)
    width = max(3, int(round(width_s * rate)) | 1)
    breaks = np.flatnonzero(np.diff(times) > 1.5 / max(rate, 1e-6)) + 1
    for run in np.split(np.arange(len(values)), breaks):
        if run.size == 0:
            continue
        block = values[run].astype(np.float64)
        padded = np.pad(block, ((width // 2, width // 2), (0, 0)), mode="edge")
        csum = np.cumsum(np.vstack([np.zeros((1, block.shape[1])), padded]), axis=0)
        out[run] = (block - (csum[width:] - csum[:-width]) / width).astype(np.float32)
    return out


def _labels(times: np.ndarray, key_times: np.ndarray, key_opening: np.ndarray, rate: float
            ) -> tuple[np.ndarray, np.ndarray]:
    """(rows into ``times``, mesh openings) for the sampled frames: each one's patch is the decoded frame nearest it."""
    finite = np.isfinite(key_opening)
    key_times, key_opening = key_times[finite], key_opening[finite]
    if times.size == 0 or key_times.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    at = np.clip(np.searchsorted(times, key_times), 0, times.size - 1)
    prev = np.clip(at - 1, 0, times.size - 1)
    nearest = np.where(np.abs(times[prev] - key_times) < np.abs(times[at] - key_times), prev, at)
    close = np.abs(times[nearest] - key_times) <= 0.6 / rate
    return nearest[close], key_opening[close]


def _cv_fit(scores: np.ndarray, rows: np.ndarray, target: np.ndarray, alpha: float, folds: int) -> float:
    """Cross-validated correlation of the ridge reading with the mesh (contiguous folds: neighbouring frames are
    alike, so random folds would flatter it)."""
    predicted = np.zeros(rows.size)
    edges = np.linspace(0, rows.size, folds + 1).astype(int)
    for k in range(folds):
        test = np.zeros(rows.size, dtype=bool)
        test[edges[k]:edges[k + 1]] = True
        if test.all() or not test.any():
            continue
        coef = _ridge(scores[rows[~test]], target[~test], alpha)
        predicted[test] = np.column_stack([scores[rows[test]], np.ones(int(test.sum()))]) @ coef
    if np.std(predicted) == 0 or np.std(target) == 0:
        return 0.0
    fit = float(np.corrcoef(predicted, target)[0, 1])
    return fit if np.isfinite(fit) else 0.0


def probe_mouth(clip: Clip, path: str | os.PathLike[str], *, max_fps: float = 25.0) -> None:
    """Cut the speaker's mouth patches into ``clip.probes[PROBE_KEY]`` once per clip: the first detector's probe
    that asks does it, the others read them."""
    if PROBE_KEY not in clip.probes and clip.speaker is not None and clip.has_audio:
        clip.probes[PROBE_KEY] = mouth_patches(clip, path, max_fps=max_fps)


def dense_opening(patches: MouthPatches, key_times: np.ndarray, key_opening: np.ndarray, *, components: int = 24,
                  alpha: float = 30.0, folds: int = 5, min_dark_agreement: float = 0.6,
                  min_fit: float = 0.5, fast_s: float = 0.6) -> DenseMouth | None:
    """`_dense_opening`, read once per patches and inputs (kept in ``patches.readings``)."""
    key = (np.asarray(key_times, dtype=np.float64).tobytes(), np.asarray(key_opening, dtype=np.float64).tobytes(),
           components, alpha, folds, min_dark_agreement, min_fit, fast_s)
    if key not in patches.readings:
        patches.readings[key] = _dense_opening(patches, key_times, key_opening, components=components, alpha=alpha,
                                               folds=folds, min_dark_agreement=min_dark_agreement, min_fit=min_fit,
                                               fast_s=fast_s)
    return patches.readings[key]


def _dense_opening(patches: MouthPatches, key_times: np.ndarray, key_opening: np.ndarray, *, components: int,
                   alpha: float, folds: int, min_dark_agreement: float, min_fit: float,
                   fast_s: float) -> DenseMouth | None:
    """The mouth opening at every patch, in the face mesh's units (inner-lip gap / mouth width).

    Three readings, the first that holds is kept (``DenseMouth.method`` says which):

    - ``appearance``: the patches' main mode of change (first principal component), when it goes with a darker
      mouth centre (an opening mouth shows its cavity; agreement >= ``min_dark_agreement``). It needs no landmark,
      so it holds where the mesh jitters (small faces, soft focus, compression);
    - ``regression``: ridge regression from the first ``components`` principal components onto the mesh readings at
      the sampled frames, when its cross-validated correlation with them is >= ``min_fit``;
    - ``fast_appearance``: the same as ``appearance`` on the patches' fast part (each pixel less its moving average
      over ``fast_s``), when a head that turns or nods makes the slow change of shading the main mode and the mesh is
      too rough to fit: articulation is fast (syllables at 3-8 Hz), pose is slow. On real footage (a man in
      conversation turning his head) the first two failed on 2 of the 12 tuning-split stretches and 6 of the 13
      check-split ones; this reading holds on 1 and 3 of them. On generated and photo-driven talking heads it
      follows the high-passed true reading at r = 0.90-1.0 (``min_dark_agreement`` as for ``appearance``).

    Each is put on the clip's own scale (0 at rest, 1 open: its 5th and 95th percentiles) and comes with the
    patch's ``motion`` in grey levels, so that a caller can tell a still face from a talking one without the mesh's
    units. On generated talking heads the appearance reading follows the true opening at r = 0.95-0.97, the
    regression at 0.7-0.85 and the mesh at 5 fps at 0.1-0.8 (small faces lowest). None when neither holds or too few
    frames are labelled."""
    ok = patches.valid
    if ok.sum() < 16:
        return None
    pixels = patches.patches[ok].reshape(int(ok.sum()), -1).astype(np.float32) / 255.0
    centre = patches.patches[ok][:, PATCH_H // 4: 3 * PATCH_H // 4, PATCH_W // 4: 3 * PATCH_W // 4]
    darkness = -centre.reshape(len(centre), -1).mean(axis=1).astype(np.float64)
    centred = pixels - pixels.mean(axis=0)
    basis = principal_axes(centred[:: max(1, len(centred) // 3000)], components)
    scores = (centred @ basis.T).astype(np.float64)
    times = patches.times[ok]
    rows, target = _labels(times, key_times, key_opening, patches.rate)
    if rows.size < 12:
        return None
    first = scores[:, 0]
    agreement = float(np.corrcoef(first, darkness)[0, 1]) if np.std(first) > 0 and np.std(darkness) > 0 else 0.0
    method, fit = "", 0.0
    if abs(agreement) >= min_dark_agreement:
        reading, method = first * np.sign(agreement), "appearance"
        fit = float(np.corrcoef(reading[rows], target)[0, 1]) if np.std(target) > 0 else 0.0
    else:
        standard = scores / (scores.std(axis=0) + 1e-9)
        fit = _cv_fit(standard, rows, target, alpha, folds)
        if fit >= min_fit:
            coef = _ridge(standard[rows], target, alpha)
            reading, method = np.column_stack([standard, np.ones(len(standard))]) @ coef, "regression"
    if not method:
        # a head that turns or nods changes the whole patch slowly (pose, shading) and that becomes its main mode;
        # articulation is fast (syllables at 3-8 Hz). Take out each pixel's moving average over ``fast_s`` and read
        # the main mode of what is left, under the same darkness check
        fast = _fast_part(pixels, times, patches.rate, fast_s)
        fast_dark = _fast_part(darkness[:, None], times, patches.rate, fast_s)[:, 0]
        first_fast = (fast @ principal_axes(fast[:: max(1, len(fast) // 3000)], 1)[0]).astype(np.float64)
        fast_agreement = (float(np.corrcoef(first_fast, fast_dark)[0, 1])
                          if np.std(first_fast) > 0 and np.std(fast_dark) > 0 else 0.0)
        if abs(fast_agreement) < min_dark_agreement:
            return None
        reading, method, agreement = first_fast * np.sign(fast_agreement), "fast_appearance", fast_agreement
        fit = float(np.corrcoef(reading[rows], target)[0, 1]) if np.std(target) > 0 else 0.0
    low, high = np.percentile(reading, [5, 95])
    opening = np.full(patches.times.size, np.nan)
    opening[ok] = (reading - low) / max(high - low, 1e-12)
    first_low, first_high = np.percentile(first, [5, 95])
    motion = float(first_high - first_low) / np.sqrt(pixels.shape[1])  # |basis| = 1: per-pixel RMS change
    return DenseMouth(times=patches.times, opening=opening, valid=ok.copy(), rate=patches.rate,
                      fit=fit if np.isfinite(fit) else 0.0, method=method, agreement=round(agreement, 3),
                      motion=motion)
