"""Detectors are found by name. Registering is plain data: ``@register`` on the class.

Registry names are a contract (configuration, results, dashboards): ``face_forgery``, ``lipsync``,
``voice_synthetic``, ``nonverbal``, ``spectral``, ``identity``, ``provenance``.
"""
from __future__ import annotations

import hashlib
import importlib
from collections.abc import Iterable
from typing import Any, TypeVar

from ._base import Detector

__all__ = ["register", "registered", "create", "suite_version", "KNOWN_NAMES"]

#: every built-in detector, in the order a suite lists them (results, status, the inventory)
KNOWN_NAMES = ("face_forgery", "lipsync", "voice_synthetic", "nonverbal", "spectral", "identity", "provenance",
               "face_dynamics", "voice_change")
_REGISTRY: dict[str, type[Detector[Any, Any]]] = {}
_BUILTINS_LOADED = False
D = TypeVar("D", bound=type)


def register(cls: D) -> D:
    """Class decorator: make a Detector subclass available under its ``name``."""
    name = cls.name  # type: ignore[attr-defined]
    if cls.__module__ == "__main__":
        return cls  # a detector module run as a script (``python -m detectors.spectral fit``): the package's own
        # import of it registered the class already
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"detector name {name!r} is registered twice: {_REGISTRY[name]} and {cls}")
    _REGISTRY[name] = cls  # type: ignore[assignment]
    return cls


def _load_builtins() -> None:
    """Import every built-in detector's module once (each registers its class): the package itself imports them
    lazily, so the registry is filled when it is first asked, not when ``detectors`` is imported."""
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        for module in KNOWN_NAMES:  # a built-in detector's module has its registry name
            importlib.import_module(f"{__package__}.{module}")
        _BUILTINS_LOADED = True


def registered() -> dict[str, type[Detector[Any, Any]]]:
    """{name: class} of every registered detector: the built-in ones and any registered since."""
    _load_builtins()
    return dict(_REGISTRY)


def create(name: str, **config: Any) -> Detector[Any, Any]:
    """Instantiate the detector registered as ``name`` with its configuration."""
    _load_builtins()
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no detector named {name!r}; registered: {', '.join(sorted(_REGISTRY)) or 'none'}") from None
    return cls(**config)


def suite_version(detectors: Iterable[Detector[Any, Any]], calibration_version: str = "uncalibrated") -> str:
    """A short, stable identifier of a suite: detector names and versions plus the calibration version.

    Part of a detection document's id, so re-processing the same file with the same suite is idempotent and a
    new detector version or calibration yields a new document. A model detector's version names its checkpoint
    (``1.1+org/name@<commit>`` or ``1.1+local:sha256-…``, see ``ModelDetector.version``): another checkpoint, or
    another commit of the same one, is another suite; the same checkpoint at the same commit is the same suite on
    every machine (no paths or hosts enter it).
    """
    parts = sorted(f"{d.name}={d.version}" for d in detectors)
    digest = hashlib.sha256(("|".join(parts) + f"|cal={calibration_version}").encode()).hexdigest()[:12]
    return f"suite-{digest}"
