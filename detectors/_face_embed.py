"""Face identity embeddings: dlib's ResNet face descriptor (128 numbers), with dlib's 5-point landmark model for
alignment; both model files ship inside the ``face-recognition-models`` package (CC0), dlib comes as ``dlib-bin``.

    face box of a track (mediapipe) ─ dlib 5-point shape ─ aligned 150 x 150 chip ─ ResNet ─ (128,) descriptor

Two descriptors of one person lie within Euclidean distance 0.6 of each other (dlib's documented threshold,
99.38 % on LFW); ``similarity`` is ``1 - distance``, so larger is more alike.
"""
from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any

import numpy as np

from pipeline._media_store import sha256_file

from ._clip import Clip, FaceTrack
from ._exceptions import ModelError

__all__ = ["FaceEmbedder", "get_face_embedder", "face_similarity", "DESCRIPTOR_SIZE", "CHIP_SIZE"]

DESCRIPTOR_SIZE = 128
CHIP_SIZE = 150
_INSTALL_HINT = ("run `infra/install worker` (it installs dlib-bin==20.0.1.post1 and "
                 "face-recognition-models==0.3.0)")


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


class FaceEmbedder:
    """dlib's ResNet face descriptor on aligned face chips (CPU; dlib-bin is built without CUDA)."""

    def __init__(self) -> None:
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

    def __repr__(self) -> str:
        return f"FaceEmbedder(version={self.version!r})"

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

    def track_chips(self, clip: Clip, track: FaceTrack, *, limit: int = 5) -> list[np.ndarray]:
        """Up to ``limit`` chips spread over ``track``, larger faces preferred within each stretch."""
        n = len(track)
        if n == 0:
            return []
        chips = []
        for part in np.array_split(np.arange(n), min(limit, n)):
            areas = [(track.boxes[i, 2] - track.boxes[i, 0]) * (track.boxes[i, 3] - track.boxes[i, 1]) for i in part]
            i = int(part[int(np.argmax(areas))])
            chip = self.chip(clip.frames[int(track.frame_index[i])], track.boxes[i])
            if chip is not None:
                chips.append(chip)
        return chips

    def embed(self, chips: list[np.ndarray]) -> np.ndarray:
        """(n, 128) descriptors of aligned chips, in one batched call."""
        if not chips:
            return np.zeros((0, DESCRIPTOR_SIZE), dtype=np.float32)
        with self._lock:
            found: Any = self._resnet.compute_face_descriptor([np.ascontiguousarray(c) for c in chips])
        return np.asarray([np.asarray(d) for d in found], dtype=np.float32)


_EMBEDDER: FaceEmbedder | None = None
_EMBEDDER_LOCK = threading.Lock()


def get_face_embedder() -> FaceEmbedder:
    """The process-wide face embedder (built on first use; thread-safe)."""
    global _EMBEDDER
    with _EMBEDDER_LOCK:
        if _EMBEDDER is None:
            _EMBEDDER = FaceEmbedder()
        return _EMBEDDER
