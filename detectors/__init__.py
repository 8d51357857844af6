"""Vigil's manipulation detectors (worker side: torch, transformers, face landmarks, PyAV).

Every detector follows one interface shaped like a transformers ``Pipeline`` (``preprocess`` → ``forward`` →
``postprocess``, see ``_base.py``) and is found through a registry keyed by name. Other packages import what they
need from here (``__all__``), never a private module. The names below load on first use (PEP 562), so
``detectors.configs`` (each configurable detector's settings, nested in ``pipeline.Settings``) can be imported
without torch. Nothing in ``pipeline`` that the Airflow side imports may reach anything else of this package
(``.importlinter``). The built-in detectors register themselves when the registry is first asked
(``registered``, ``create``, ``Suite.from_settings``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.lazy import lazy_exports

#: public name -> the module that defines it (imported on first use)
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(("AUDIO_RATE", "Clip", "FaceTrack"), "._clip"),
    "decode_clip": "._decode",
    **dict.fromkeys(("MediaError", "NotAVideo", "CorruptMedia", "MediaTooLarge", "ModelError", "DetectorUnavailable",
                     "is_transient"), "._exceptions"),
    **dict.fromkeys(("Detector", "DetectorResult", "NotApplicable", "Window", "resolve_device", "run_detector",
                     "to_device"), "._base"),
    **dict.fromkeys(("KNOWN_NAMES", "register", "registered", "create", "suite_version"), "._registry"),
    **dict.fromkeys(("LoadedModel", "ModelDetector", "load_model"), "._models"),
    "FaceForgery": ".face_forgery", "NonVerbal": ".nonverbal", "VoiceSynthetic": ".voice_synthetic",
    **dict.fromkeys(("FaceTracker", "track_faces"), "._faces"),
    **dict.fromkeys(("Calibration", "Fusion", "load_calibration"), "._fusion"),
    **dict.fromkeys(("Suite", "SuiteResult"), "._suite"),
    "LipSync": ".lipsync", "Spectral": ".spectral", "VoiceChange": ".voice_change", "FaceDynamics": ".face_dynamics",
    "Identity": ".identity", "Provenance": ".provenance",
    **dict.fromkeys(("Gallery", "GalleryError", "EnrolmentError", "enroll"), "._gallery"),
    "get_face_embedder": "._face_embed", "get_speaker_encoder": "._speaker",
    # what `vigil eval`, `vigil calibrate`, `vigil models` and `vigil status` use (worker side)
    **dict.fromkeys(("Item", "ItemResult", "load_dataset", "run_items", "write_report", "fit_calibration",
                     "read_items_csv", "write_calibration"), "._evaluate"),
    **dict.fromkeys(("export_checkpoints", "hub_cache_dir", "is_offline"), "._hub"),
    **dict.fromkeys(("describe_meaning", "inventory", "verify_models"), "._inventory"),
    # each configurable detector's settings (no torch)
    **dict.fromkeys(("DetectorConfig", "ModelDetectorConfig", "FaceForgeryConfig", "VoiceSyntheticConfig",
                     "NonverbalConfig", "IdentityConfig"), ".configs"),
}

__all__ = list(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


if TYPE_CHECKING:  # what type checkers and IDEs see
    from ._base import Detector, DetectorResult, NotApplicable, Window, resolve_device, run_detector, to_device
    from ._clip import AUDIO_RATE, Clip, FaceTrack
    from ._decode import decode_clip
    from ._evaluate import (Item, ItemResult, fit_calibration, load_dataset, read_items_csv, run_items,
                            write_calibration, write_report)
    from ._exceptions import (CorruptMedia, DetectorUnavailable, MediaError, MediaTooLarge, ModelError, NotAVideo,
                              is_transient)
    from ._face_embed import get_face_embedder
    from ._faces import FaceTracker, track_faces
    from ._fusion import Calibration, Fusion, load_calibration
    from ._gallery import EnrolmentError, Gallery, GalleryError, enroll
    from ._hub import export_checkpoints, hub_cache_dir, is_offline
    from ._inventory import describe_meaning, inventory, verify_models
    from ._models import LoadedModel, ModelDetector, load_model
    from ._registry import KNOWN_NAMES, create, register, registered, suite_version
    from ._speaker import get_speaker_encoder
    from ._suite import Suite, SuiteResult
    from .configs import (DetectorConfig, FaceForgeryConfig, IdentityConfig, ModelDetectorConfig, NonverbalConfig,
                          VoiceSyntheticConfig)
    from .face_dynamics import FaceDynamics
    from .face_forgery import FaceForgery
    from .identity import Identity
    from .lipsync import LipSync
    from .nonverbal import NonVerbal
    from .provenance import Provenance
    from .spectral import Spectral
    from .voice_change import VoiceChange
    from .voice_synthetic import VoiceSynthetic
