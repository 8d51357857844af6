"""The detector interface, shaped like a transformers ``Pipeline``.

    preprocess(clip) -> inputs            CPU, one clip; or NotApplicable(reason) (no face, no speech, too short)
    forward(batch of inputs) -> raws      the only step on the device, batched across videos
    postprocess(raw, clip) -> DetectorResult

Subclasses implement ``preprocess``, ``_forward`` and ``postprocess`` and never move tensors themselves: the public
``forward`` wrapper puts tensors found in the inputs on the detector's device, runs ``_forward`` under
``torch.inference_mode`` and brings tensors in the outputs back to the CPU.
"""
from __future__ import annotations

import dataclasses

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import numpy as np
import torch

from pipeline.contracts import FLAG_THRESHOLD, DetectorOutput, TimelineWindow

from ._clip import Clip
from ._exceptions import DetectorUnavailable, ModelError, is_transient
from .configs import DetectorConfig

if TYPE_CHECKING:
    from typing import Self

    from pipeline.contracts import Settings

__all__ = ["Detector", "DetectorResult", "NotApplicable", "Window", "resolve_device", "run_detector", "to_device"]

logger = logging.getLogger(__name__)

Inputs = TypeVar("Inputs")
Raw = TypeVar("Raw")


@dataclass(frozen=True)
class NotApplicable:
    """What ``preprocess`` returns when the detector has nothing to judge (never a fake low score)."""

    reason: str


@dataclass(frozen=True)
class Window:
    """One window of a per-window timeline."""

    start_s: float
    end_s: float
    score: float


@dataclass
class DetectorResult:
    """One detector's verdict on one clip: a probability-like score in [0, 1] where applicable."""

    name: str
    version: str
    applicable: bool
    score: float | None = None
    timeline: list[Window] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    rank: str | None = None  # high / uncertain / low / not_applicable, from the checkpoint's thresholds
    annotations: dict[str, Any] = field(default_factory=dict)  # fields for the video document (persons, provenance)

    def __post_init__(self) -> None:
        if self.applicable:
            if self.score is None or not (0.0 <= self.score <= 1.0) or np.isnan(self.score):
                raise ValueError(f"{self.name}: an applicable result needs a score in [0, 1], got {self.score}")
        elif self.score is not None:
            raise ValueError(f"{self.name}: a result that is not applicable carries no score")

    @property
    def flagged(self) -> bool:
        """A detector flags a clip when it is applicable and its score is >= 0.5 (DESIGN.md)."""
        return self.applicable and self.score is not None and self.score >= FLAG_THRESHOLD

    @classmethod
    def not_applicable(cls, name: str, version: str, reason: str, **evidence: Any) -> DetectorResult:
        return cls(name=name, version=version, applicable=False, evidence={"reason": reason, **evidence})

    @classmethod
    def failed(cls, name: str, version: str, error: BaseException) -> DetectorResult:
        return cls(name=name, version=version, applicable=False, error=f"{type(error).__name__}: {error}",
                   evidence={"reason": "detector failed"})

    def to_output(self) -> DetectorOutput:
        """The ``vigil.result/1`` form: JSON-friendly evidence (numpy values become lists and floats)."""
        return DetectorOutput(
            version=self.version, applicable=self.applicable,
            score=None if self.score is None else float(self.score),
            rank=self.rank or (None if self.applicable else "not_applicable"),
            timeline=[TimelineWindow(start_s=max(0.0, float(w.start_s)), end_s=max(0.0, float(w.end_s)),
                                     score=float(np.clip(w.score, 0.0, 1.0))) for w in self.timeline],
            evidence=_jsonable(self.evidence), error=self.error)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def resolve_device(setting: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else the CPU; anything else is passed to torch.device."""
    if isinstance(setting, torch.device):
        return setting
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


def to_device(value: Any, device: torch.device, *, non_blocking: bool = False) -> Any:
    """Tensors anywhere inside dicts, lists, tuples and dataclasses, moved to ``device``.

    ``non_blocking`` only for copies onto an accelerator (the stream orders them before the kernels that read
    them); a copy back to the CPU is always blocking, because the CPU reads it right away."""
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=non_blocking and device.type != "cpu")
    if isinstance(value, dict):
        return {k: to_device(v, device, non_blocking=non_blocking) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_device(v, device, non_blocking=non_blocking) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):  # a detector's prepared inputs
        moved = {f.name: to_device(getattr(value, f.name), device, non_blocking=non_blocking)
                 for f in dataclasses.fields(value) if f.init}
        if any(moved[name] is not getattr(value, name) for name in moved):
            return dataclasses.replace(value, **moved)
    return value


class Detector(ABC, Generic[Inputs, Raw]):
    """Base class of every detector. A new detector is a subclass with ``name``, ``version`` and three hooks,
    registered with ``@register``."""

    name: ClassVar[str]
    version: ClassVar[str]
    #: the detector's settings (detectors/configs.py), nested in ``pipeline.Settings`` under the detector's name;
    #: None for a detector that has none
    config_type: ClassVar[type[DetectorConfig] | None] = None

    def __init__(self, *, device: str | torch.device = "auto", batch_size: int = 8) -> None:
        self.device = resolve_device(device)
        self.batch_size = batch_size

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        """The detector as ``settings`` configure it (its section, the device): how a suite builds its detectors.
        A detector never reads the process-wide settings itself."""
        return cls(device=settings.device)

    @abstractmethod
    def preprocess(self, clip: Clip) -> Inputs | NotApplicable:
        """CPU work on one clip; NotApplicable when there is nothing to judge."""

    @abstractmethod
    def _forward(self, batch: list[Inputs]) -> list[Raw]:
        """The device step over inputs of several clips; returns one raw output per input, in order."""

    @abstractmethod
    def postprocess(self, raw: Raw, clip: Clip) -> DetectorResult:
        """Turn one raw output into a calibrated result with timeline and evidence."""

    def forward(self, batch: list[Inputs]) -> list[Raw]:
        """Run ``_forward`` on the device: inputs moved there, inference mode, outputs moved back to the CPU."""
        with torch.inference_mode():
            outputs = self._forward(to_device(batch, self.device, non_blocking=True))
        if len(outputs) != len(batch):
            raise RuntimeError(f"{self.name}: _forward returned {len(outputs)} outputs for {len(batch)} inputs")
        outputs = to_device(outputs, torch.device("cpu"))  # blocking: postprocess reads these at once
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # outputs already on the CPU (numpy, floats) came from async kernels
        return outputs

    def result(self, **kwargs: Any) -> DetectorResult:
        """A DetectorResult already carrying this detector's name and version."""
        return DetectorResult(name=self.name, version=self.version, **kwargs)

    def __call__(self, clips: Clip | Sequence[Clip]) -> DetectorResult | list[DetectorResult]:
        """One clip or several; several are batched through ``forward`` ``batch_size`` at a time."""
        single = isinstance(clips, Clip)
        items = [clips] if single else list(clips)
        results = run_detector(self, items)
        return results[0] if single else results

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, version={self.version!r}, device={self.device})"


def _unavailable(detector: Detector[Any, Any], exc: BaseException, batch_size: int) -> DetectorUnavailable:
    return DetectorUnavailable(f"{detector.name}: {type(exc).__name__}: {exc}", detector=detector.name,
                               batch_size=batch_size)


def run_detector(detector: Detector[Any, Any], clips: Sequence[Clip]) -> list[DetectorResult]:
    """preprocess each clip, forward the applicable ones in batches, postprocess each.

    A permanent error stays with its clip: that clip's result is ``failed`` (a batch whose device step fails is
    run again clip by clip to find which). A transient error (``is_transient``: out of memory, CUDA/driver error,
    timeout) raises DetectorUnavailable: no result is made up for it, the caller retries."""
    results: list[DetectorResult | None] = [None] * len(clips)
    pending: list[tuple[int, Any]] = []
    for i, clip in enumerate(clips):
        try:
            inputs = detector.preprocess(clip)
        except ModelError:
            raise  # a checkpoint that cannot be loaded is the configuration's fault, not this clip's
        except Exception as exc:  # noqa: BLE001 - one clip's failure must not sink the batch
            if is_transient(exc):
                raise _unavailable(detector, exc, 1) from exc
            logger.exception("%s: preprocess failed on %s", detector.name, clip.source)
            results[i] = DetectorResult.failed(detector.name, detector.version, exc)
            continue
        if isinstance(inputs, NotApplicable):
            results[i] = DetectorResult.not_applicable(detector.name, detector.version, inputs.reason)
        else:
            pending.append((i, inputs))
    for start in range(0, len(pending), max(1, detector.batch_size)):
        chunk = pending[start:start + detector.batch_size]
        for (i, _), (raw, error) in zip(chunk, _forward_isolating(detector, [x for _, x in chunk]), strict=True):
            if error is not None:
                results[i] = DetectorResult.failed(detector.name, detector.version, error)
                continue
            try:
                results[i] = detector.postprocess(raw, clips[i])
            except Exception as exc:  # noqa: BLE001
                if is_transient(exc):
                    raise _unavailable(detector, exc, 1) from exc
                logger.exception("%s: postprocess failed on %s", detector.name, clips[i].source)
                results[i] = DetectorResult.failed(detector.name, detector.version, exc)
    return [r for r in results if r is not None]


def _forward_isolating(detector: Detector[Any, Any], inputs: list[Any]) -> list[tuple[Any, BaseException | None]]:
    """``forward`` on a batch; when it fails permanently, each input alone, so one bad input fails only itself."""
    try:
        return [(raw, None) for raw in detector.forward(inputs)]
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001
        if is_transient(exc):
            raise _unavailable(detector, exc, len(inputs)) from exc
        if len(inputs) == 1:
            logger.warning("%s: device step failed on one input: %s: %s", detector.name, type(exc).__name__, exc)
            return [(None, exc)]
        logger.warning("%s: device step failed on a batch of %d (%s); running its inputs one by one",
                       detector.name, len(inputs), exc)
    out: list[tuple[Any, BaseException | None]] = []
    for single in inputs:
        out.extend(_forward_isolating(detector, [single]))
    return out
