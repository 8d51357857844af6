"""Face and mouth tracks: mediapipe's face mesh (478 landmarks, models shipped in the wheel) on every sampled frame,
observations linked into tracks by box overlap, tracks ordered with the most likely speaker first.

Why the face mesh: it runs offline on a CPU in a few milliseconds a frame, and it gives dense lip landmarks (inner
and outer lip contours) from which a scale-free mouth opening is measured. OpenCV's Haar cascades give a face box
and no lips; dlib's 68-point model needs a separately downloaded model file and a C++ build.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._clip import Clip, FaceTrack
from ._exceptions import ModelError

__all__ = ["FaceTracker", "track_faces", "mouth_opening", "box_iou", "landmark_pixels", "N_LANDMARKS"]

logger = logging.getLogger(__name__)

N_LANDMARKS = 478
# face-mesh indices: inner-lip pairs (upper, lower) across the mouth, and the inner mouth corners
_INNER_LIP_PAIRS = ((13, 14), (82, 87), (312, 317))
_MOUTH_CORNERS = (78, 308)
_INSTALL_HINT = "run `infra/install worker` (it installs mediapipe==0.10.21 with --no-deps)"


def mouth_opening(landmarks: np.ndarray) -> float:
    """Inner-lip gap divided by mouth width for one face's (478, 2) landmarks; NaN when the width is degenerate."""
    width = float(np.linalg.norm(landmarks[_MOUTH_CORNERS[0]] - landmarks[_MOUTH_CORNERS[1]]))
    if width < 1e-3:
        return float("nan")
    gap = np.mean([np.linalg.norm(landmarks[a] - landmarks[b]) for a, b in _INNER_LIP_PAIRS])
    return float(gap / width)


#: a serialised NormalizedLandmark with x, y and z set and nothing else: field tag and length, then each float's tag
_LANDMARK_BYTES = 17
_LANDMARK_HEAD = np.frombuffer(bytes([0x0A, 15, 0x0D]), dtype=np.uint8)
_Y_TAG, _Z_TAG = 0x15, 0x1D


def landmark_pixels(face: Any, width: int, height: int) -> np.ndarray:
    """(K, 2) float32 pixel coordinates of a face mesh's NormalizedLandmarkList: ``(x * width, y * height)`` of each
    landmark, the products in double precision as Python computes them from the message's floats.

    The coordinates are read from the message's serialised bytes when every landmark carries exactly x, y and z (the
    face mesh's output: 17 bytes each), one array operation instead of two attribute reads a landmark in Python
    (0.3 ms a face a frame); any other layout is read landmark by landmark."""
    count = len(face.landmark)
    data = np.frombuffer(face.SerializeToString(), dtype=np.uint8)
    if count and data.size == count * _LANDMARK_BYTES:
        rows = data.reshape(count, _LANDMARK_BYTES)
        if (rows[:, :3] == _LANDMARK_HEAD).all() and (rows[:, 7] == _Y_TAG).all() and (rows[:, 12] == _Z_TAG).all():
            x = rows[:, 3:7].copy().view("<f4")[:, 0].astype(np.float64)
            y = rows[:, 8:12].copy().view("<f4")[:, 0].astype(np.float64)
            return np.stack([x * float(width), y * float(height)], axis=1).astype(np.float32)
    return np.array([(p.x * width, p.y * height) for p in face.landmark], dtype=np.float32).reshape(-1, 2)


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


@dataclass
class _Building:
    frames: list[int]
    boxes: list[np.ndarray]
    landmarks: list[np.ndarray]
    mouth: list[float]


class FaceTracker:
    """Finds faces in a clip's sampled frames and links them into tracks (speaker first).

    A fresh face mesh graph is made per clip, so the mesh's own frame-to-frame tracking never carries over between
    videos, and one tracker can serve several decoding threads (the tracker itself holds only its configuration).
    """

    def __init__(self, *, max_faces: int = 4, min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5, iou_threshold: float = 0.3, max_gap: int = 2,
                 min_track_frames: int = 2) -> None:
        try:
            import mediapipe  # noqa: F401
        except ImportError as exc:
            raise ModelError(f"face tracking needs mediapipe, which is not installed: {_INSTALL_HINT}") from exc
        self.max_faces = max_faces
        self.min_detection_confidence = min_detection_confidence
        self.min_tracking_confidence = min_tracking_confidence
        self.iou_threshold = iou_threshold
        self.max_gap = max_gap
        self.min_track_frames = min_track_frames

    def _mesh(self) -> Any:
        import mediapipe as mp

        try:
            return mp.solutions.face_mesh.FaceMesh(
                static_image_mode=False, max_num_faces=self.max_faces, refine_landmarks=True,
                min_detection_confidence=self.min_detection_confidence,
                min_tracking_confidence=self.min_tracking_confidence)
        except Exception as exc:  # mediapipe raises RuntimeError and friends when its graph cannot load
            raise ModelError(f"mediapipe face mesh cannot be loaded ({exc}): {_INSTALL_HINT}") from exc

    def detect(self, frames: np.ndarray) -> list[list[np.ndarray]]:
        """Per frame, the (478, 2) pixel landmarks of every face found."""
        found: list[list[np.ndarray]] = []
        mesh = self._mesh()
        try:
            for frame in frames:
                height, width = frame.shape[:2]
                result = mesh.process(np.ascontiguousarray(frame))
                faces = []
                for face in result.multi_face_landmarks or []:
                    faces.append(landmark_pixels(face, width, height))
                found.append(faces)
        finally:
            mesh.close()
        return found

    def link(self, detections: list[list[np.ndarray]], frame_shape: tuple[int, int]) -> list[FaceTrack]:
        """Link per-frame landmarks into tracks by IoU of their boxes; most likely speaker first."""
        building: list[_Building] = []
        for index, faces in enumerate(detections):
            boxes = [np.array([*pts.min(axis=0), *pts.max(axis=0)], dtype=np.float32) for pts in faces]
            active = [t for t in building if index - t.frames[-1] <= self.max_gap + 1]
            pairs = sorted(((box_iou(t.boxes[-1], box), ti, bi) for ti, t in enumerate(active)
                            for bi, box in enumerate(boxes)), reverse=True)
            used_t: set[int] = set()
            used_b: set[int] = set()
            for iou, ti, bi in pairs:
                if iou < self.iou_threshold or ti in used_t or bi in used_b:
                    continue
                used_t.add(ti)
                used_b.add(bi)
                self._append(active[ti], index, boxes[bi], faces[bi])
            for bi, box in enumerate(boxes):
                if bi not in used_b:
                    track = _Building([], [], [], [])
                    self._append(track, index, box, faces[bi])
                    building.append(track)
        n_frames = max(1, len(detections))
        keep_min = min(self.min_track_frames, n_frames)
        tracks = [self._finish(i, t, frame_shape, n_frames) for i, t in enumerate(building)
                  if len(t.frames) >= keep_min]
        tracks.sort(key=lambda t: t.score, reverse=True)
        for new_id, track in enumerate(tracks):
            track.track_id = new_id
        return tracks

    @staticmethod
    def _append(track: _Building, index: int, box: np.ndarray, landmarks: np.ndarray) -> None:
        track.frames.append(index)
        track.boxes.append(box)
        track.landmarks.append(landmarks)
        track.mouth.append(mouth_opening(landmarks))

    @staticmethod
    def _finish(track_id: int, track: _Building, frame_shape: tuple[int, int], n_frames: int) -> FaceTrack:
        height, width = frame_shape
        boxes = np.stack(track.boxes)
        area = float(np.mean((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))) / float(width * height)
        centres = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2 / width, (boxes[:, 1] + boxes[:, 3]) / 2 / height], 1)
        off_centre = float(np.mean(np.linalg.norm(centres - 0.5, axis=1))) / np.sqrt(0.5)
        coverage = len(track.frames) / n_frames
        score = float(np.sqrt(max(area, 0.0)) * (1.0 - 0.5 * off_centre) * coverage)
        return FaceTrack(track_id=track_id, frame_index=np.asarray(track.frames, dtype=np.int64), boxes=boxes,
                         landmarks=np.stack(track.landmarks), mouth_open=np.asarray(track.mouth, dtype=np.float32),
                         score=score)

    def __call__(self, clip: Clip) -> Clip:
        """Fill ``clip.faces`` (speaker first) and return the same clip."""
        if len(clip.frames) == 0:
            clip.faces = []
            return clip
        detections = self.detect(clip.frames)
        clip.faces = self.link(detections, clip.frames.shape[1:3])
        logger.debug("%s: %d face track(s)", clip.source, len(clip.faces))
        return clip


def track_faces(clip: Clip, tracker: FaceTracker | None = None) -> Clip:
    """Fill ``clip.faces`` with face tracks (most likely speaker first); mutates and returns ``clip``."""
    return (tracker or FaceTracker())(clip)
