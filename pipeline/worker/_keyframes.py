"""Face-crop keyframes: the evidence a worker stores as pictures, small and cheap (no plotting in the worker).

For each analysed clip, up to ``n`` moments are chosen where the detectors fired most (the peak window of every
applicable detector's timeline and of each manipulated segment, highest first, at least 0.5 s apart; evenly spaced
moments fill up), and the main face at the nearest sampled frame is cropped with a margin, scaled to at most
160 px and JPEG-encoded (OpenCV, ~1 ms each). They are stored beside the media under
``<sha>.evidence/<suite>/faces/<ms>.jpg`` and linked from the result's ``evidence_uris``; the console and
``vigil scan --report`` draw plots from the stored data where they are viewed.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from pipeline._exceptions import ServiceUnavailable
from pipeline._media_store import MediaStore

__all__ = ["keyframe_times", "face_crops", "store_face_crops"]

logger = logging.getLogger(__name__)

CROP_MAX_SIDE = 160
JPEG_QUALITY = 80
MIN_GAP_S = 0.5


def keyframe_times(result: Any, duration_s: float, n: int) -> list[float]:
    """Up to ``n`` moments (seconds), where the detectors scored highest first."""
    candidates: list[tuple[float, float]] = []  # (score, time)
    for detector in result.results.values():
        if detector.applicable and detector.timeline:
            peak = max(detector.timeline, key=lambda w: w.score)
            candidates.append((float(peak.score), (peak.start_s + peak.end_s) / 2))
    for segment in getattr(result, "segments", None) or []:
        candidates.append((float(segment.score) + 1.0, (segment.start_s + segment.end_s) / 2))  # segments first
    chosen: list[float] = []
    for _, moment in sorted(candidates, reverse=True):
        if len(chosen) < n and all(abs(moment - t) >= MIN_GAP_S for t in chosen):
            chosen.append(moment)
    if len(chosen) < n and duration_s > 0:
        for moment in np.linspace(0, duration_s, n + 2)[1:-1]:
            if len(chosen) < n and all(abs(moment - t) >= MIN_GAP_S for t in chosen):
                chosen.append(float(moment))
    return chosen


def face_crops(clip: Any, times: list[float]) -> list[tuple[float, bytes]]:
    """(time, JPEG bytes) of the main face nearest each time; times without a face nearby are skipped."""
    import cv2

    track = clip.speaker
    if track is None or len(track) == 0 or len(clip.timestamps) == 0:
        return []
    track_times = clip.timestamps[track.frame_index]
    out: list[tuple[float, bytes]] = []
    for moment in times:
        i = int(np.argmin(np.abs(track_times - moment)))
        if abs(float(track_times[i]) - moment) > 1.0:
            continue
        frame = clip.frames[int(track.frame_index[i])]
        x0, y0, x1, y1 = (float(v) for v in track.boxes[i])
        margin = 0.25 * max(x1 - x0, y1 - y0)
        h, w = frame.shape[:2]
        left, top = max(0, int(x0 - margin)), max(0, int(y0 - margin))
        right, bottom = min(w, int(x1 + margin)), min(h, int(y1 + margin))
        if right - left < 8 or bottom - top < 8:
            continue
        crop = frame[top:bottom, left:right]
        scale = CROP_MAX_SIDE / max(crop.shape[:2])
        if scale < 1:
            crop = cv2.resize(crop, (max(1, int(crop.shape[1] * scale)), max(1, int(crop.shape[0] * scale))),
                              interpolation=cv2.INTER_AREA)
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if ok:
            out.append((float(track_times[i]), jpeg.tobytes()))
    return out


def store_face_crops(store: MediaStore, clip: Any, result: Any, *, media_sha256: str, suite_version: str,
                     n: int) -> list[str]:
    """Choose, crop, encode and store up to ``n`` face keyframes; returns their URIs (idempotent paths)."""
    crops = face_crops(clip, keyframe_times(result, float(clip.duration_s or 0.0), n))
    if not crops:
        return []
    directory = store.evidence_path(media_sha256, suite_version, "faces")
    uris = []
    try:
        store.fs.makedirs(directory, exist_ok=True)
        for moment, data in crops:
            path = f"{directory}/{int(round(moment * 1000)):07d}.jpg"
            store.fs.pipe_file(path, data)
            uris.append(store.fs.unstrip_protocol(path))
    except OSError as exc:
        raise ServiceUnavailable(f"cannot write face keyframes to the media store {store.location}: {exc}",
                                 service="media-store", hint="check VIGIL_MEDIA_STORE and its permissions") from exc
    return uris
