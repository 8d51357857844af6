"""Each configurable detector's settings, with their defaults, as one small pydantic model per detector.

``pipeline.Settings`` nests them (``settings.face_forgery.checkpoint``); a detector takes its own (``config=``) and
never reads the process-wide settings. This module imports pydantic only, so the Airflow side may import it through
``Settings`` (``.importlinter`` allows ``detectors.configs`` and nothing else of this package there).

Environment names are unchanged: ``VIGIL_`` + section + field, e.g. ``VIGIL_FACE_FORGERY_CHECKPOINT`` (the nested
form ``VIGIL_FACE_FORGERY__CHECKPOINT`` works too). In ``VIGIL_CONFIG``'s YAML a section is a mapping
(``face_forgery: {checkpoint: …}``) or the flat key (``face_forgery_checkpoint: …``).
"""
from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DetectorConfig", "ModelDetectorConfig", "FaceForgeryConfig", "VoiceSyntheticConfig", "NonverbalConfig",
           "IdentityConfig"]


class DetectorConfig(BaseModel):
    """Base of a detector's settings: frozen like ``Settings``; unknown keys are refused (a typo is an error)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: the detector's registry name, which is also the name of its section of ``Settings``
    section: ClassVar[str]

    @classmethod
    def env_name(cls, field: str) -> str:
        """The documented environment variable of one of this config's fields: ``VIGIL_FACE_FORGERY_CHECKPOINT``."""
        if field not in cls.model_fields:
            raise KeyError(f"{cls.__name__} has no field {field!r}")
        return f"VIGIL_{cls.section}_{field}".upper()


class ModelDetectorConfig(DetectorConfig):
    """What every detector that runs a transformers checkpoint is configured with.

    A checkpoint is a Hugging Face hub id or a local directory (saved with ``save_pretrained``); with
    ``HF_HUB_OFFLINE=1`` only local directories and the hub cache are used. A detector without one is left out of the
    default suite (none is preset: each must be validated first; docs/operators/models.md suggests public ones). It
    is loaded at its revision (a commit hash pins it; a branch or tag follows it); the resolved commit (or, for a
    local directory, a hash of its weights) is part of the detector's version, so of the suite version and the
    detection id."""

    checkpoint: str | None = Field(None, description="checkpoint: hub id or local directory")
    revision: str | None = Field(
        None, description="revision of the checkpoint: commit hash (pinned), tag or branch; empty = main")
    batch_size: int = Field(16, ge=1, description="inputs per model call")


class FaceForgeryConfig(ModelDetectorConfig):
    """``face_forgery``: an image classifier of face crops (real vs fake)."""

    section = "face_forgery"

    checkpoint: str | None = Field(
        None, description="image classifier of face crops (real vs fake); hub id or local directory")
    fake_label: str | None = Field(
        None, description="label(s) of the checkpoint that mean fake, comma-separated, when id2label is ambiguous")
    batch_size: int = Field(32, ge=1, description="face crops per model call")
    max_crops: int = Field(32, ge=1, description="face crops sampled per face track")
    max_faces: int = Field(
        1, ge=1, description="most faces on screen at once for face_forgery to decide alone (crowds, split screens)")


class VoiceSyntheticConfig(ModelDetectorConfig):
    """``voice_synthetic``: an audio classifier of speech windows (bona fide vs spoof)."""

    section = "voice_synthetic"

    checkpoint: str | None = Field(
        None, description="audio classifier of speech (bona fide vs spoof); hub id or local directory")
    fake_label: str | None = Field(
        None, description="label(s) of the checkpoint that mean synthetic, comma-separated, when ambiguous")
    batch_size: int = Field(16, ge=1, description="speech windows per model call")
    window_s: float = Field(4.0, gt=0, description="length of one speech window (seconds)")


class NonverbalConfig(ModelDetectorConfig):
    """``nonverbal``: an AudioSet-style audio event classifier, for coughs, sneezes and laughs out of step."""

    section = "nonverbal"

    checkpoint: str | None = Field(
        None, description="AudioSet-style audio event classifier, e.g. MIT/ast-finetuned-audioset-10-10-0.4593")
    event_labels: list[str] = Field(
        default_factory=lambda: ["Cough", "Sneeze", "Laughter", "Throat clearing", "Giggle", "Snicker",
                                 "Belly laugh", "Chuckle, chortle"],
        description="labels of the checkpoint counted as non-verbal events (JSON list)")
    event_threshold: float = Field(0.3, gt=0, lt=1, description="event probability that counts as an event")
    batch_size: int = Field(16, ge=1, description="audio windows per model call")


class IdentityConfig(DetectorConfig):
    """``identity``: faces against the enrolled persons, then the speech against the matched person's voice.

    Face similarity is 1 - Euclidean distance of dlib ResNet descriptors (dlib's documented same-person distance is
    < 0.6); voice similarity is the cosine of GE2E speaker embeddings. How the defaults were chosen:
    docs/detectors/identity.md."""

    section = "identity"

    face_threshold: float = Field(
        0.45, gt=0, lt=1, description="face similarity from which a face is taken to be an enrolled person")
    voice_threshold: float = Field(
        0.80, gt=0, lt=1, description="voice similarity from which the speech matches the person's enrolled voice")
    min_speech_s: float = Field(
        1.0, gt=0, description="least speech (seconds) during a matched face's track for a voice comparison")
    faces_per_track: int = Field(
        3, ge=1, le=64, description="most face crops embedded per face track: the track cut into that many stretches "
        "of time, the sharpest, most frontal face of each (dlib's ResNet costs ~65 ms of CPU a crop; was 5, the "
        "largest face of each stretch)")
    face_every_s: float = Field(
        8.0, ge=0, description="one face crop per started this many seconds of a face track, at most "
        "faces_per_track (a face seen for a moment gives one); 0: always faces_per_track")

