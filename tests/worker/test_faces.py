"""Face and mouth tracks: the face mesh on generated talking heads, linking, speaker order, missing mediapipe."""
from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pytest

from detector_media import prepared, talking  # noqa: F401  (session fixtures)
from detectors import Clip, FaceTracker, ModelError, track_faces
from detectors._faces import N_LANDMARKS, box_iou, landmark_pixels, mouth_opening
from detectors.synthetic import TalkingClip, mouth_opening_from_speech, speak


def test_talking_head_gives_one_full_track_whose_mouth_follows_the_speech(
        prepared: dict[str, Clip], talking: dict[str, TalkingClip]) -> None:
    clip = prepared["sync"]
    assert len(clip.faces) == 1
    track = clip.speaker
    assert track is not None and len(track) == len(clip.frames)
    assert track.landmarks is not None and track.landmarks.shape == (len(clip.frames), N_LANDMARKS, 2)
    x0, y0, x1, y1 = track.boxes.mean(axis=0)
    assert 60 < x0 < x1 < 200 and 20 < y0 < y1 < 200  # the astronaut's face in the 256 x 256 frame
    # ground truth: the opening the generator drew (speech placed 0.6 s into the clip)
    speech = speak(talking["sync"].text)
    truth = mouth_opening_from_speech(np.concatenate([np.zeros(9600, np.float32), speech]), clip.timestamps)
    assert np.corrcoef(track.mouth_open, truth)[0, 1] > 0.8


def test_still_face_has_a_still_mouth_and_no_face_has_no_track(prepared: dict[str, Clip]) -> None:
    assert np.std(prepared["still_face"].speaker.mouth_open) < 0.012
    assert np.std(prepared["sync"].speaker.mouth_open) > 0.03
    assert prepared["no_face"].faces == []


def _face(cx: float, cy: float, half: float) -> np.ndarray:
    """Fake (478, 2) landmarks spread over a square of side 2*half, mouth corners apart, lips shut."""
    rng = np.random.default_rng(int(cx + cy))
    points = np.stack([rng.uniform(cx - half, cx + half, N_LANDMARKS), rng.uniform(cy - half, cy + half, N_LANDMARKS)],
                      axis=1).astype(np.float32)
    points[[0, 1]] = [[cx - half, cy - half], [cx + half, cy + half]]
    points[78], points[308] = [cx - half / 2, cy + half / 2], [cx + half / 2, cy + half / 2]
    for a, b in ((13, 14), (82, 87), (312, 317)):
        points[a] = points[b] = [cx, cy + half / 2]
    return points


def test_linking_by_overlap_orders_the_speaker_first() -> None:
    tracker = FaceTracker()
    big, small = _face(100, 100, 50), _face(220, 40, 15)
    detections = [[small, big], [big + 3, small + 1], [big + 6], [small + 2, big + 9], [big + 12]]
    tracks = tracker.link(detections, (240, 320))
    assert len(tracks) == 2
    speaker, other = tracks
    assert list(speaker.frame_index) == [0, 1, 2, 3, 4] and list(other.frame_index) == [0, 1, 3]
    assert speaker.score > other.score and speaker.track_id == 0
    assert np.allclose(speaker.mouth_open, 0.0)
    # a face that jumps across the frame starts a new track; one-frame tracks are dropped by default
    jump = [[big], [_face(260, 190, 50)]]
    assert [len(t) for t in FaceTracker(min_track_frames=1).link(jump, (240, 320))] == [1, 1]
    assert tracker.link(jump, (240, 320)) == []


def test_mouth_opening_and_iou() -> None:
    face = _face(100, 100, 40)
    assert mouth_opening(face) == pytest.approx(0.0)
    for a, b in ((13, 14), (82, 87), (312, 317)):
        face[b, 1] += 20.0
    assert mouth_opening(face) == pytest.approx(20.0 / 40.0)
    face[78] = face[308]
    assert np.isnan(mouth_opening(face))
    assert box_iou(np.array([0, 0, 10, 10.0]), np.array([5, 0, 15, 10.0])) == pytest.approx(1 / 3)
    assert box_iou(np.array([0, 0, 1, 1.0]), np.array([2, 2, 3, 3.0])) == 0.0


def test_landmark_pixels_are_the_per_landmark_products(prepared: dict[str, Clip]) -> None:
    """``landmark_pixels`` reads the face mesh's message from its bytes: the same float32 pixels as ``(p.x * width,
    p.y * height)`` landmark by landmark, on a real mesh output and on odd sizes; a message of another layout (a
    visibility set, a coordinate missing) is read landmark by landmark."""
    from mediapipe.framework.formats import landmark_pb2

    frame = prepared["sync"].frames[0]
    mesh = FaceTracker()._mesh()
    try:
        face = mesh.process(np.ascontiguousarray(frame)).multi_face_landmarks[0]
    finally:
        mesh.close()

    def by_landmark(message: Any, width: int, height: int) -> np.ndarray:
        return np.array([(p.x * width, p.y * height) for p in message.landmark], dtype=np.float32)

    for width, height in ((256, 256), (641, 359), (1, 3)):
        got = landmark_pixels(face, width, height)
        assert got.dtype == np.float32 and got.shape == (N_LANDMARKS, 2)
        assert np.array_equal(got, by_landmark(face, width, height))
    odd = landmark_pb2.NormalizedLandmarkList()
    odd.landmark.add(x=0.25, y=0.5, z=0.1, visibility=0.9)
    odd.landmark.add(x=1 / 3, y=0.75)
    odd.landmark.add(x=0.0, y=1e-7, z=-2.0)
    assert np.array_equal(landmark_pixels(odd, 640, 360), by_landmark(odd, 640, 360))


def test_empty_clip_has_no_faces() -> None:
    clip = Clip(source="empty", duration_s=0.0, fps=5.0, frames=np.zeros((0, 8, 8, 3), np.uint8),
                timestamps=np.zeros(0), audio=None)
    assert track_faces(clip).faces == []


def test_missing_mediapipe_names_the_install_step(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # makes `import mediapipe` raise ImportError
    with pytest.raises(ModelError, match="infra/install worker"):
        FaceTracker()
