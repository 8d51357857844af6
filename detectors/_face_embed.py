"""Face identity embeddings: dlib's ResNet face descriptor (128 numbers), with dlib's 5-point landmark model for
alignment; both model files ship inside the ``face-recognition-models`` package (CC0), dlib comes as ``dlib-bin``.

    face box of a track (mediapipe) ─ dlib 5-point shape ─ aligned 150 x 150 chip ─ ResNet ─ (128,) descriptor

Two descriptors of one person lie within Euclidean distance 0.6 of each other (dlib's documented threshold,
99.38 % on LFW); ``similarity`` is ``1 - distance``, so larger is more alike.

The ResNet is the expensive part (65-140 ms a chip on one CPU core). dlib holds the GIL while it runs, so by default
it runs in a helper process (``_face_helper``) and the threads preparing other clips go on meanwhile; when the helper
fails, the call is computed here (the same numbers) with a warning, and after three failures in a row the embedder
stays in this process. A track gives only a few chips, chosen (``choose_observations``): the track is cut into as
many stretches of time as chips are wanted, and each stretch gives its best observation by ``quality`` = sharpness x
frontality x size:

    sharpness   variance of the Laplacian of the face box resized to 64 x 64 grey (motion blur, soft focus, heavy
                compression score low), relative to the track's sharpest observation
    frontality  the nose tip's balance between the two sides of the face (face-mesh landmarks 1, 234, 454): 1 for a
                face looking at the camera, towards 0 for a profile; 1 when the track has no landmarks
    size        min(1, box side / 80 px): a face smaller than that is upscaled into the 150 px chip
"""
from __future__ import annotations

import importlib.util
import logging
import threading
from pathlib import Path

import numpy as np

from pipeline.contracts import sha256_file

from ._clip import Clip, FaceTrack
from ._exceptions import ModelError
from ._face_helper import DescriptorHelper, HelperFailed, descriptors

__all__ = ["FaceEmbedder", "get_face_embedder", "face_similarity", "choose_observations", "observation_quality",
           "DESCRIPTOR_SIZE", "CHIP_SIZE"]

logger = logging.getLogger(__name__)

DESCRIPTOR_SIZE = 128
CHIP_SIZE = 150
#: face-mesh landmarks: nose tip, and the face's outline beside each eye (the two sides the nose turns between)
_NOSE_TIP, _SIDE_A, _SIDE_B = 1, 234, 454
#: a face box this many pixels wide fills the chip's face without upscaling (150 px chip, padding 0.25)
_FULL_SIZE_PX = 80.0
_SHARPNESS_SIDE = 64
_UPPER_SHARE = 0.55
_INSTALL_HINT = ("run `infra/install worker` (it installs dlib-bin==20.0.1.post1 and "
                 "face-recognition-models==0.3.0)")
#: helper failures in a row after which an embedder computes the descriptors in its own process for good
HELPER_FAILURES_MAX = 3


def _models_dir() -> Path:
    # find the package without importing it: its __init__ needs pkg_resources (setuptools) only to find these files
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"face identity needs face-recognition-models, which is not installed: {_INSTALL_HINT}")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def face_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray | float:
    """``1 - Euclidean distance`` between descriptors ``a`` (..., 128) and ``b`` (..., 128), broadcast."""
    distance = np.linalg.norm(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64), axis=-1)
    return 1.0 - distance


def _sharpness(frame: np.ndarray, box: np.ndarray) -> float:
    """Variance of the Laplacian of the face box, resized to 64 x 64 grey; 0 for a degenerate box."""
    import cv2

    height, width = frame.shape[:2]
    x0, y0 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    # the upper half (brows, eyes, nose): an open mouth adds edges without making the face any sharper
    x1, y1 = min(width, int(np.ceil(box[2]))), min(height, int(np.ceil(box[1] + _UPPER_SHARE * (box[3] - box[1]))))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return 0.0
    grey = cv2.cvtColor(np.ascontiguousarray(frame[y0:y1, x0:x1, :3]), cv2.COLOR_RGB2GRAY)
    grey = cv2.resize(grey, (_SHARPNESS_SIDE, _SHARPNESS_SIDE), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(grey, cv2.CV_32F).var())


def _frontality(landmarks: np.ndarray | None) -> float:
    """How squarely a face looks at the camera, from its (K, 2) face-mesh landmarks: 1 frontal, towards 0 in
    profile; 1 without landmarks."""
    if landmarks is None or len(landmarks) <= max(_NOSE_TIP, _SIDE_A, _SIDE_B):
        return 1.0
    nose = landmarks[_NOSE_TIP]
    a = float(np.linalg.norm(nose - landmarks[_SIDE_A]))
    b = float(np.linalg.norm(nose - landmarks[_SIDE_B]))
    if not np.isfinite(a + b) or max(a, b) <= 1e-6:
        return 0.0
    return min(a, b) / max(a, b)


def observation_quality(clip: Clip, track: FaceTrack) -> np.ndarray:
    """(N,) quality of each observation of ``track`` for a face descriptor: sharpness (relative to the track's
    sharpest) x frontality x size, in [0, 1]."""
    n = len(track)
    if n == 0:
        return np.zeros(0)
    boxes = np.asarray(track.boxes, dtype=np.float64)
    sharp = np.array([_sharpness(clip.frames[int(track.frame_index[i])], boxes[i]) for i in range(n)])
    sharp = sharp / sharp.max() if sharp.max() > 0 else np.ones(n)
    landmarks = track.landmarks
    front = np.array([_frontality(None if landmarks is None else landmarks[i]) for i in range(n)])
    side = np.sqrt(np.clip((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 0, None))
    size = np.clip(np.nan_to_num(side) / _FULL_SIZE_PX, 0.0, 1.0)
    return sharp * front * size


def choose_observations(clip: Clip, track: FaceTrack, limit: int, *, every_s: float | None = None) -> list[int]:
    """Indices (into the track's observations, in time order) of up to ``limit`` observations to embed: the track cut
    into that many stretches of equal length, the best ``observation_quality`` of each. With ``every_s``, one
    stretch per started ``every_s`` seconds of the track (a face seen for a moment gives one chip)."""
    n = len(track)
    if n == 0 or limit < 1:
        return []
    count = min(limit, n)
    if every_s is not None and every_s > 0 and len(clip.timestamps):
        times = clip.timestamps[np.asarray(track.frame_index, dtype=int)]
        seconds = float(times[-1] - times[0]) + 1.0 / max(clip.fps, 1e-6)
        count = max(1, min(count, int(np.ceil(seconds / every_s - 1e-9))))
    quality = observation_quality(clip, track)
    return [int(part[int(np.argmax(quality[part]))]) for part in np.array_split(np.arange(n), count)]


class FaceEmbedder:
    """dlib's ResNet face descriptor on aligned face chips (CPU; dlib-bin is built without CUDA).

    ``isolated`` (the default): the descriptors are computed in a helper process, so the GIL stays free while the
    ResNet runs; ``False``: in this process. Both give the same numbers. ``close()`` stops the helper."""

    def __init__(self, *, isolated: bool = True) -> None:
        try:
            import dlib
        except ImportError as exc:
            raise ModelError(f"face identity needs dlib, which is not installed: {_INSTALL_HINT}") from exc
        models = _models_dir()
        shape_file = models / "shape_predictor_5_face_landmarks.dat"
        resnet_file = models / "dlib_face_recognition_resnet_model_v1.dat"
        for file in (shape_file, resnet_file):
            if not file.is_file():
                raise ModelError(f"dlib model file {file} is missing: {_INSTALL_HINT}")
        try:
            self._shape = dlib.shape_predictor(str(shape_file))
            self._resnet = dlib.face_recognition_model_v1(str(resnet_file))
        except RuntimeError as exc:
            raise ModelError(f"dlib face models cannot be loaded ({exc}): {_INSTALL_HINT}") from exc
        self._dlib = dlib
        self.version = f"dlib-{dlib.__version__}-resnet-v1-{sha256_file(resnet_file)[:12]}"
        self._lock = threading.Lock()
        self.isolated = isolated
        self.helper = DescriptorHelper(resnet_file)
        self._helper_failures = 0

    def __repr__(self) -> str:
        return f"FaceEmbedder(version={self.version!r}, isolated={self.isolated})"

    def chip(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray | None:
        """The aligned (150, 150, 3) chip of the face in ``box`` (x0, y0, x1, y1) of an RGB ``frame``; None when the
        box is degenerate."""
        x0, y0, x1, y1 = (float(v) for v in box)
        if not np.all(np.isfinite([x0, y0, x1, y1])) or x1 - x0 < 8 or y1 - y0 < 8:
            return None
        height, width = frame.shape[:2]
        rect = self._dlib.rectangle(int(max(0, x0)), int(max(0, y0)), int(min(width - 1, x1)), int(min(height - 1, y1)))
        image = np.ascontiguousarray(frame[..., :3], dtype=np.uint8)
        with self._lock:
            shape = self._shape(image, rect)
            return np.asarray(self._dlib.get_face_chip(image, shape, size=CHIP_SIZE, padding=0.25))

    def track_chips(self, clip: Clip, track: FaceTrack, *, limit: int = 3,
                    every_s: float | None = None) -> list[np.ndarray]:
        """Up to ``limit`` chips of ``track`` (one per started ``every_s`` seconds of it, when given): one per stretch
        of time, the sharpest, most frontal, large enough face of each (``choose_observations``)."""
        chips = []
        for i in choose_observations(clip, track, limit, every_s=every_s):
            chip = self.chip(clip.frames[int(track.frame_index[i])], track.boxes[i])
            if chip is not None:
                chips.append(chip)
        return chips

    def embed(self, chips: list[np.ndarray]) -> np.ndarray:
        """(n, 128) descriptors of aligned chips, in one batched call (in the helper process when isolated)."""
        if not chips:
            return np.zeros((0, DESCRIPTOR_SIZE), dtype=np.float32)
        chips = [np.ascontiguousarray(c, dtype=np.uint8) for c in chips]
        if self.isolated:
            try:
                found = self.helper.descriptors(chips)
            except HelperFailed as exc:
                self._helper_failures += 1
                if self._helper_failures >= HELPER_FAILURES_MAX:
                    self.isolated = False
                then = (", a new helper next time" if self.isolated
                        else f" from now on ({self._helper_failures} failures in a row)")
                logger.warning("%s; computed in this process%s", exc, then)
            else:
                self._helper_failures = 0
                return found
        with self._lock:
            return descriptors(self._resnet, chips)

    def close(self) -> None:
        """Stop the helper process, if one runs (a later ``embed`` starts a new one)."""
        self.helper.close()


_EMBEDDER: FaceEmbedder | None = None
_EMBEDDER_LOCK = threading.Lock()


def get_face_embedder() -> FaceEmbedder:
    """The process-wide face embedder (built on first use; thread-safe)."""
    global _EMBEDDER
    with _EMBEDDER_LOCK:
        if _EMBEDDER is None:
            _EMBEDDER = FaceEmbedder()
        return _EMBEDDER
