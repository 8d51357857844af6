"""What the model detectors are configured with and what this machine holds of it (``vigil models``, ``vigil status``).

    settings ──▶ per model detector: checkpoint + revision ──▶ resolved from the hub cache (or fetched: ``pull``)
                                                            ──▶ config.json id2label ──▶ which outputs mean fake/event

Nothing here loads weights except ``verify_models``, which loads every configured checkpoint through the detectors'
own loader and runs it on generated media (a talking head with espeak-ng speech, ``detectors.synthetic``).
"""
from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.contracts import Settings

from ._base import DetectorResult, resolve_device
from ._exceptions import ModelError
from ._hub import Checkpoint, is_commit, resolve_checkpoint
from ._models import ModelDetector, resolve_dtype
from ._registry import KNOWN_NAMES, registered

__all__ = ["ModelEntry", "model_detector_names", "inventory", "Verification", "verify_models", "describe_meaning"]

logger = logging.getLogger(__name__)


def model_detector_names() -> list[str]:
    """Registered detectors that run a checkpoint, the contract's names first."""
    classes = {n: c for n, c in registered().items() if issubclass(c, ModelDetector)}
    return [n for n in KNOWN_NAMES if n in classes] + sorted(n for n in classes if n not in KNOWN_NAMES)


@dataclass
class ModelEntry:
    """One model detector's configuration and its state on this machine."""

    name: str
    checkpoint: str | None
    revision: str | None
    checkpoint_setting: str
    revision_setting: str
    device: str
    dtype: str
    resolved: Checkpoint | None = None
    labels: dict[int, str] = field(default_factory=dict)
    meaning: dict[int, str] = field(default_factory=dict)
    problem: str | None = None  # why it cannot run as configured
    note: str | None = None  # not a problem, but worth saying (not pulled yet, not pinned)

    @property
    def configured(self) -> bool:
        return bool(self.checkpoint)

    @property
    def pinned(self) -> bool:
        return self.resolved is not None and self.resolved.pinned

    def as_dict(self) -> dict[str, Any]:
        resolved = self.resolved
        return {"detector": self.name, "checkpoint": self.checkpoint, "revision": self.revision,
                "commit": resolved.commit if resolved else None, "identity": resolved.identity if resolved else None,
                "path": str(resolved.path) if resolved else None, "size_bytes": resolved.size_bytes if resolved else None,
                "safetensors": resolved.safetensors if resolved else None, "labels": self.labels,
                "meaning": self.meaning, "device": self.device, "dtype": self.dtype, "problem": self.problem,
                "note": self.note}


def _detector(name: str, settings: Settings) -> ModelDetector[Any, Any]:
    cls: type[ModelDetector[Any, Any]] = registered()[name]  # type: ignore[assignment]
    return cls(settings.detector_config(cls.config_type), device=settings.device, dtype=settings.model_dtype,
               load=False)


def inventory(settings: Settings, names: Sequence[str] | None = None, *, download: bool = False,
              cache_dir: str | Path | None = None) -> list[ModelEntry]:
    """Every model detector (or ``names``): configuration, resolved checkpoint, label meaning. ``download`` fetches
    missing checkpoints at their revisions (``vigil models pull``); otherwise only the local cache is read."""
    wanted = list(names) if names else model_detector_names()
    unknown = [n for n in wanted if n not in model_detector_names()]
    if unknown:
        raise ModelError(f"not a model detector: {', '.join(unknown)} (model detectors: "
                         f"{', '.join(model_detector_names())})")
    entries = []
    for name in wanted:
        detector = _detector(name, settings)
        device = resolve_device(settings.device)
        try:
            dtype = str(resolve_dtype(settings.model_dtype, device)).replace("torch.", "")
        except ModelError as exc:
            dtype = f"invalid ({exc})"
        entry = ModelEntry(name=name, checkpoint=detector.checkpoint, revision=detector.revision,
                           checkpoint_setting=detector.checkpoint_setting, revision_setting=detector.revision_setting,
                           device=str(device), dtype=dtype)
        entries.append(entry)
        if not entry.configured:
            entry.note = f"not configured: set {entry.checkpoint_setting} (left out of the default suite)"
            continue
        try:
            entry.resolved = resolve_checkpoint(detector.checkpoint, revision=detector.revision,
                                                setting=entry.checkpoint_setting,
                                                revision_setting=entry.revision_setting, cache_dir=cache_dir,
                                                download=download, offline=None if download else False)
        except ModelError as exc:
            if download:
                entry.problem = str(exc)
            else:
                entry.note = f"not on this machine yet: run `vigil models pull` ({exc})"
            continue
        entry.labels = {int(k): str(v) for k, v in (entry.resolved.config().get("id2label") or {}).items()}
        try:
            entry.meaning = detector.meaning(entry.labels)
        except ModelError as exc:
            entry.problem = str(exc)
        if entry.resolved.source == "hub" and not is_commit(entry.revision):
            entry.note = (f"revision not pinned: set {entry.revision_setting}={entry.resolved.commit} to keep "
                          "exactly these weights")
    return entries


@dataclass
class Verification:
    """``verify_models``' finding for one detector."""

    name: str
    ok: bool
    version: str | None = None
    label_map: dict[str, Any] = field(default_factory=dict)
    result: DetectorResult | None = None
    problem: str | None = None


#: a detector's result on the generated talking head must be applicable (it has a face and speech)
_MUST_APPLY = {"face_forgery", "voice_synthetic"}


def verify_models(settings: Settings, names: Sequence[str] | None = None) -> list[Verification]:
    """Load each configured model detector (or ``names``) through its own loader and run it on a generated talking
    head: the checkpoint loads, its labels say which output means fake/event, and it yields a result."""
    from ._fusion import Fusion
    from ._suite import Suite
    from .synthetic import SENTENCES, make_talking_clip

    wanted = list(names) if names else [e.name for e in inventory(settings) if e.configured]
    findings: list[Verification] = []
    loaded: list[ModelDetector[Any, Any]] = []
    for name in wanted:
        try:
            detector = registered()[name].from_settings(settings)  # model detectors load in their __init__
            findings.append(Verification(name=name, ok=True, version=detector.version,
                                         label_map=detector.label_map()))  # type: ignore[attr-defined]
            loaded.append(detector)  # type: ignore[arg-type]
        except ModelError as exc:
            findings.append(Verification(name=name, ok=False, problem=str(exc)))
    if not loaded:
        return findings
    with tempfile.TemporaryDirectory(prefix="vigil-verify-") as tmp:
        try:
            clip = make_talking_clip(Path(tmp) / "talking.mp4", SENTENCES[0])
            suite = Suite(loaded, fusion=Fusion())
            outcome = suite.scan(clip.path)
        except Exception as exc:  # noqa: BLE001 - reported per detector, the command exits non-zero
            for finding in findings:
                if finding.ok:
                    finding.ok, finding.problem = False, f"could not run on generated media: {exc}"
            return findings
    for finding in findings:
        if not finding.ok:
            continue
        result = outcome.results.get(finding.name)
        finding.result = result
        if result is None or result.error:
            finding.ok, finding.problem = False, f"failed on generated media: {result.error if result else 'no result'}"
        elif finding.name in _MUST_APPLY and not result.applicable:
            finding.ok = False
            finding.problem = f"not applicable on a generated talking head: {result.evidence.get('reason')}"
    return findings


def describe_meaning(entry: ModelEntry | Verification) -> str:
    """``0 Deepfake = fake, 1 Real``: the labels with the ones the detector reads marked."""
    if isinstance(entry, Verification):
        labels, meaning = entry.label_map.get("labels", {}), entry.label_map.get("meaning", {})
    else:
        labels, meaning = entry.labels, entry.meaning
    if len(labels) > 8:
        marked = ", ".join(f"{i} {labels[i]}" for i in sorted(meaning))
        return f"{len(labels)} labels; read: {marked or 'none'}"
    return ", ".join(f"{i} {label}" + (" ◀" if i in meaning else "") for i, label in sorted(labels.items()))

