"""Vigil's manipulation detectors (worker side: torch, transformers, face landmarks, PyAV).

Every detector follows one interface shaped like a transformers ``Pipeline`` (``preprocess`` → ``forward`` →
``postprocess``, see ``_base.py``) and is found through a registry keyed by name. Other packages import what they
need from here (``__all__``), never a private module. Nothing in ``pipeline`` that the Airflow side imports may
import this package (``.importlinter``).
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
from ._gallery import Gallery, GalleryError, EnrolmentError, enroll
from ._face_embed import get_face_embedder
from ._speaker import get_speaker_encoder
# what `vigil eval`, `vigil calibrate`, `vigil models` and `vigil status` use (worker side)
from ._evaluate import (Item, ItemResult, fit_calibration, load_dataset, read_items_csv, run_items, write_calibration,
                        write_report)
from ._hub import export_checkpoints, hub_cache_dir, is_offline
from ._inventory import describe_meaning, inventory, verify_models

__all__ = [
    "AUDIO_RATE", "Clip", "FaceTrack", "decode_clip",
    "MediaError", "NotAVideo", "CorruptMedia", "MediaTooLarge", "ModelError", "DetectorUnavailable", "is_transient",
    "Detector", "DetectorResult", "NotApplicable", "Window", "resolve_device", "run_detector", "to_device",
    "KNOWN_NAMES", "register", "registered", "create", "suite_version",
    "LoadedModel", "ModelDetector", "load_model", "FaceForgery", "NonVerbal", "VoiceSynthetic",
    "FaceTracker", "track_faces", "Calibration", "Fusion", "load_calibration", "Suite", "SuiteResult",
    "LipSync", "Spectral", "VoiceChange", "FaceDynamics", "Identity", "Provenance", "Gallery", "GalleryError", "EnrolmentError",
    "enroll", "get_face_embedder", "get_speaker_encoder",
    "Item", "ItemResult", "load_dataset", "run_items", "write_report", "fit_calibration", "read_items_csv",
    "write_calibration", "export_checkpoints", "hub_cache_dir", "is_offline", "describe_meaning", "inventory",
    "verify_models",
]
