"""Vigil's manipulation detectors (worker side: torch, transformers, face landmarks, PyAV).

Every detector follows one interface shaped like a transformers ``Pipeline`` (``preprocess`` → ``forward`` →
``postprocess``, see ``_base.py``) and is found through a registry keyed by name. Nothing in ``pipeline`` that
DAGs import may import this package.
"""
from __future__ import annotations

from ._base import Detector, DetectorResult, NotApplicable, Window, resolve_device, run_detector, to_device
from ._clip import AUDIO_RATE, Clip, FaceTrack
from ._decode import decode_clip
from ._exceptions import (
    CorruptMedia,
    DetectorUnavailable,
    MediaError,
    MediaTooLarge,
    ModelError,
    NotAVideo,
    is_transient,
)
from ._faces import FaceTracker, track_faces
from ._fusion import Calibration, Fusion, load_calibration
from ._registry import KNOWN_NAMES, create, register, registered, suite_version
from ._suite import Suite, SuiteResult
from .lipsync import LipSync
from .spectral import Spectral
from .voice_change import VoiceChange
from .face_dynamics import FaceDynamics
from ._models import LoadedModel, ModelDetector, load_model
# model-based detectors: importing registers them; their checkpoints load at first use, never at import
from .face_forgery import FaceForgery
from .nonverbal import NonVerbal
from .voice_synthetic import VoiceSynthetic
# persons of interest (face + voice against the gallery) and provenance (C2PA, container tags); models load lazily
from .identity import Identity
from .provenance import Provenance
from ._gallery import Gallery, GalleryError, EnrolmentError

__all__ = [
    "AUDIO_RATE", "Clip", "FaceTrack", "decode_clip",
    "MediaError", "NotAVideo", "CorruptMedia", "MediaTooLarge", "ModelError", "DetectorUnavailable", "is_transient",
    "Detector", "DetectorResult", "NotApplicable", "Window", "resolve_device", "run_detector", "to_device",
    "KNOWN_NAMES", "register", "registered", "create", "suite_version",
    "LoadedModel", "ModelDetector", "load_model", "FaceForgery", "NonVerbal", "VoiceSynthetic",
    "FaceTracker", "track_faces", "Calibration", "Fusion", "load_calibration", "Suite", "SuiteResult",
    "LipSync", "Spectral", "VoiceChange", "FaceDynamics", "Identity", "Provenance", "Gallery", "GalleryError", "EnrolmentError",
]
