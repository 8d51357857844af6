"""Loading transformers checkpoints for the model-based detectors, in one place.

Every model-based detector (``face_forgery``, ``voice_synthetic``, ``nonverbal``) loads its checkpoint through
``load_model``: a Hugging Face hub id at a revision, or a local directory written by ``save_pretrained``. The loader

- resolves the checkpoint to files first (``_hub.resolve_checkpoint``): the hub id at its configured revision
  (``VIGIL_<DETECTOR>_REVISION``; a commit hash pins it) through the hub cache, only config, preprocessor config
  and weights, safetensors where the checkpoint has them; the resolved commit, or a content hash of a local
  directory, is the checkpoint's identity and goes into the detector's version;
- names the setting to fix in every ModelError (``VIGIL_FACE_FORGERY_CHECKPOINT`` …);
- respects ``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``: then only local directories and the hub cache are
  read, never the network;
- refuses checkpoints that need ``trust_remote_code`` (custom classes in the repository);
- picks the dtype: float16 on CUDA, float32 on the CPU (``VIGIL_MODEL_DTYPE`` overrides; half precision on a CPU
  is refused because many CPU kernels lack it);
- keeps one loaded copy per (checkpoint identity, task, device, dtype) in the process, so a worker that builds a
  suite twice does not load twice.

Label handling lives here too: which output of a real/fake classifier means "fake" is read from the checkpoint's
``id2label`` (fake, deepfake, spoof, synthetic, manipulated …) and can be overridden by a setting when ambiguous;
``LABEL_0``-style labels (a fine-tune that lost its label names) are refused with the setting that fixes it.
"""
from __future__ import annotations

import logging
import math
import os
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

import numpy as np
import torch

from pipeline.contracts import Settings

from ._base import Detector
from ._exceptions import ModelError
from ._hub import Checkpoint, is_offline, resolve_checkpoint
from .configs import ModelDetectorConfig

if TYPE_CHECKING:
    from typing import Self

__all__ = [
    "LoadedModel", "Task", "load_model", "is_offline", "resolve_dtype", "fake_label_indices", "event_label_indices",
    "fake_probability", "top_k_mean", "clear_model_cache", "ModelDetector", "chunks",
    "split_by_counts", "Checkpoint",
]

logger = logging.getLogger(__name__)

Inputs = TypeVar("Inputs")
Raw = TypeVar("Raw")
Task = Literal["image-classification", "audio-classification"]

# labels that mean "manipulated" / "genuine" in real-vs-fake checkpoints (matched case-insensitively in id2label)
_FAKE_PATTERN = re.compile(
    r"fake|spoof|synth|manipulat|forg|tamper|generated|artificial|deep.?fake|clone|swap|\bai\b|\bdf\b", re.I)
_REAL_PATTERN = re.compile(r"real|bona.?fide|genuine|authentic|human|original|pristine|natural|\blive\b", re.I)

_cache: dict[tuple[str, str, str, str], LoadedModel] = {}
_cache_lock = threading.Lock()


@dataclass(frozen=True)
class LoadedModel:
    """A model in eval mode on its device, with the processor (image processor or feature extractor) of its
    checkpoint."""

    model: Any
    processor: Any
    checkpoint: str
    device: torch.device
    dtype: torch.dtype
    resolved: Checkpoint | None = None

    @property
    def identity(self) -> str:
        """``org/name@<commit>`` or ``local:sha256-…``: what the detector's version names."""
        return self.resolved.identity if self.resolved is not None else self.checkpoint

    @property
    def id2label(self) -> dict[int, str]:
        return {int(k): str(v) for k, v in self.model.config.id2label.items()}


def resolve_dtype(setting: str | torch.dtype, device: torch.device) -> torch.dtype:
    """``auto`` → float16 on CUDA, float32 elsewhere; half precision is only allowed on CUDA."""
    if isinstance(setting, torch.dtype):
        dtype = setting
    elif setting == "auto":
        dtype = torch.float16 if device.type == "cuda" else torch.float32
    else:
        try:
            dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[setting]
        except KeyError:
            raise ModelError(f"VIGIL_MODEL_DTYPE={setting!r}: use auto, float32, float16 or bfloat16") \
                from None
    if dtype != torch.float32 and device.type != "cuda":
        logger.warning("%s on %s is not supported by every kernel; using float32", dtype, device)
        dtype = torch.float32
    return dtype


def load_model(
    task: Task,
    checkpoint: str | os.PathLike[str] | Checkpoint | None,
    *,
    setting: str,
    device: torch.device,
    dtype: str | torch.dtype = "auto",
    revision: str | None = None,
    revision_setting: str | None = None,
) -> LoadedModel:
    """Load ``checkpoint`` (hub id at ``revision``, local directory, or an already resolved Checkpoint) for ``task``
    on ``device``; ModelError naming ``setting`` when it is not configured, not found (offline or not), needs custom
    code, or is not a checkpoint of that kind."""
    resolved = checkpoint if isinstance(checkpoint, Checkpoint) else resolve_checkpoint(
        checkpoint, revision=revision, setting=setting, revision_setting=revision_setting)
    torch_dtype = resolve_dtype(dtype, device)
    key = (task, resolved.identity, str(device), str(torch_dtype))
    with _cache_lock:
        if key in _cache:
            return _cache[key]
        loaded = _load(task, resolved, setting=setting, device=device, dtype=torch_dtype)
        _cache[key] = loaded
        return loaded


def clear_model_cache() -> None:
    """Forget every loaded model (tests; a worker reloading its configuration)."""
    with _cache_lock:
        _cache.clear()


def _load(task: Task, resolved: Checkpoint, *, setting: str, device: torch.device, dtype: torch.dtype
          ) -> LoadedModel:
    from transformers import (
        AutoFeatureExtractor,
        AutoImageProcessor,
        AutoModelForAudioClassification,
        AutoModelForImageClassification,
    )

    model_cls, processor_cls = {
        "image-classification": (AutoModelForImageClassification, AutoImageProcessor),
        "audio-classification": (AutoModelForAudioClassification, AutoFeatureExtractor),
    }[task]
    logger.info("loading %s checkpoint %s from %s (%s, %s, safetensors=%s)", task, resolved.identity, resolved.path,
                device, dtype, resolved.safetensors)
    try:
        model = model_cls.from_pretrained(str(resolved.path), dtype=dtype, local_files_only=True,
                                          use_safetensors=resolved.safetensors)
        processor = processor_cls.from_pretrained(str(resolved.path), local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"{setting}={resolved.name!r}: cannot load a {task} checkpoint "
                         f"({resolved.identity}): {exc}") from exc
    model.eval()
    model.to(device)
    return LoadedModel(model=model, processor=processor, checkpoint=resolved.name, device=device, dtype=dtype,
                       resolved=resolved)


def _override_labels(override: str | Sequence[str]) -> list[str]:
    parts = override.split(",") if isinstance(override, str) else list(override)
    return [part.strip() for part in parts if part.strip()]


def fake_label_indices(id2label: Mapping[int, str], override: str | Sequence[str] | None, *,
                       setting: str, checkpoint: str = "") -> list[int]:
    """Indices of the outputs that mean "fake".

    With ``override`` (label names or indices, comma-separated) those are used. Otherwise every label must be
    recognisable: the fake set is the labels that look fake and not real, and every other label must look real
    (``Realism``/``Deepfake``, ``bonafide``/``spoof``, ``real``/``fake``). Anything else (``LABEL_0``/``LABEL_1``,
    three unrelated classes) raises a ModelError naming ``setting``, the override.
    """
    labels = {int(k): str(v) for k, v in id2label.items()}
    what = f"{checkpoint!r} has labels {sorted(labels.values())}"
    if override:
        wanted = _override_labels(override)
        by_name = {v.lower(): k for k, v in labels.items()}
        indices: list[int] = []
        for item in wanted:
            if item.lower() in by_name:
                indices.append(by_name[item.lower()])
            elif item.isdigit() and int(item) in labels:
                indices.append(int(item))
            else:
                raise ModelError(f"{setting}={item!r} is not a label of the checkpoint: {what}")
        return sorted(set(indices))
    fake = [k for k, v in labels.items() if _FAKE_PATTERN.search(v) and not _REAL_PATTERN.search(v)]
    rest = [k for k in labels if k not in fake]
    if fake and all(_REAL_PATTERN.search(labels[k]) for k in rest):
        return sorted(fake)
    raise ModelError(f"cannot tell which label means fake: {what}; set {setting} to the fake label(s)")


def event_label_indices(id2label: Mapping[int, str], wanted: Iterable[str], *, setting: str,
                        checkpoint: str = "") -> dict[int, str]:
    """{index: label} of the wanted event labels present in the checkpoint (matched case-insensitively)."""
    by_name = {str(v).strip().lower(): int(k) for k, v in id2label.items()}
    wanted = list(wanted)
    found = {by_name[w.strip().lower()]: w for w in wanted if w.strip().lower() in by_name}
    missing = [w for w in wanted if w.strip().lower() not in by_name]
    if not found:
        raise ModelError(f"none of the event labels {wanted} is a label of {checkpoint!r}; set {setting} "
                         f"(JSON list) to labels it has, e.g. {sorted(by_name)[:8]}")
    if missing:
        logger.info("%s lacks event labels %s; using %s", checkpoint, missing, sorted(found.values()))
    return found


def fake_probability(logits: torch.Tensor, fake_indices: Sequence[int]) -> torch.Tensor:
    """P(fake) per row: the softmax mass on the fake outputs, or the sigmoid of a single-logit head."""
    logits = logits.float()
    if logits.shape[-1] == 1:
        return torch.sigmoid(logits[..., 0])
    return torch.softmax(logits, dim=-1)[..., list(fake_indices)].sum(dim=-1)


def top_k_mean(values: Sequence[float] | np.ndarray, fraction: float = 0.25) -> float:
    """Mean of the highest ``fraction`` of the values (at least one): sensitive to a manipulated stretch, robust
    to a single outlier in long clips."""
    array = np.sort(np.asarray(values, dtype=np.float64))[::-1]
    if array.size == 0:
        raise ValueError("top_k_mean of nothing")
    k = max(1, math.ceil(fraction * array.size))
    return float(np.clip(array[:k].mean(), 0.0, 1.0))


class ModelDetector(Detector[Inputs, Raw]):
    """Base of the detectors that run a transformers checkpoint, configured by their section of the settings
    (``config``: checkpoint, revision, batch size and the detector's own fields; the defaults when not given).

    Subclasses load the model at the end of their ``__init__`` (``load=False`` defers it to first use), never at
    import, so a suite built from settings fails, or leaves the detector out, at start-up rather than on the first
    video. Loaded models are shared within the process (``load_model``).

    ``version`` is ``<code_version>+<checkpoint identity>`` (``1.0+org/name@<commit>``,
    ``1.0+local:sha256-…``): the checkpoint is part of the detection's identity. Reading it resolves the checkpoint
    (files only; the model itself loads with ``load``)."""

    task: ClassVar[Task]
    #: the version of the detector's own code; ``version`` adds the checkpoint
    code_version: ClassVar[str]
    config_type: ClassVar[type[ModelDetectorConfig]]

    def __init__(self, config: ModelDetectorConfig | None = None, *, dtype: str = "auto",
                 device: str | torch.device = "auto", batch_size: int = 8, load: bool = False) -> None:
        super().__init__(device=device, batch_size=batch_size)
        if config is not None and not isinstance(config, self.config_type):
            raise TypeError(f"{type(self).__name__} takes a {self.config_type.__name__}, got {type(config).__name__}")
        self.config = config if config is not None else self.config_type()
        self.checkpoint = self.config.checkpoint
        self.revision = self.config.revision
        self.dtype_setting = dtype
        self._resolved: Checkpoint | None = None
        self._loaded: LoadedModel | None = None
        if load:
            self.load()

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls(settings.detector_config(cls.config_type), device=settings.device,  # type: ignore[call-arg]
                   dtype=settings.model_dtype)

    @property
    def checkpoint_setting(self) -> str:
        """The environment variable that names the checkpoint, for messages: ``VIGIL_FACE_FORGERY_CHECKPOINT``."""
        return self.config_type.env_name("checkpoint")

    @property
    def revision_setting(self) -> str:
        return self.config_type.env_name("revision")

    def resolve(self) -> Checkpoint:
        """The configured checkpoint as files on this machine (fetched at its revision when missing and online)."""
        if self._resolved is None:
            self._resolved = resolve_checkpoint(self.checkpoint, revision=self.revision,
                                                setting=self.checkpoint_setting,
                                                revision_setting=self.revision_setting)
        return self._resolved

    @property
    def version(self) -> str:  # type: ignore[override]
        return f"{self.code_version}+{self.resolve().identity}"

    def load(self) -> LoadedModel:
        """Load the checkpoint now (a worker calls this at start so a bad configuration fails at once)."""
        if self._loaded is None:
            loaded = load_model(self.task, self.resolve(), setting=self.checkpoint_setting, device=self.device,
                                dtype=self.dtype_setting)
            self._on_load(loaded)
            self._loaded = loaded
        return self._loaded

    def _on_load(self, loaded: LoadedModel) -> None:
        """Hook: read what the detector needs from the checkpoint (labels, input sizes)."""

    def meaning(self, id2label: Mapping[int, str]) -> dict[int, str]:
        """{index: label} of the outputs the detector reads (fake, synthetic or event labels); ModelError naming the
        setting when the labels do not say (``LABEL_0``/``LABEL_1``, ambiguous names). Subclasses implement it."""
        raise NotImplementedError

    def label_map(self) -> dict[str, Any]:
        """What the loaded checkpoint's outputs mean: {"labels": id2label, "meaning": {index: label}}."""
        labels = self.loaded.id2label
        return {"labels": labels, "meaning": self.meaning(labels)}

    def checkpoint_evidence(self) -> dict[str, Any]:
        """Evidence keys every result of this detector carries: which checkpoint, at which commit."""
        resolved = self.resolve()
        return {"checkpoint": resolved.name, "checkpoint_id": resolved.identity,
                **({"revision": resolved.revision, "commit": resolved.commit} if resolved.source == "hub" else {})}

    @property
    def loaded(self) -> LoadedModel:
        return self.load()

    def run_model(self, model_inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Logits of one model call; floating inputs are cast to the model's dtype (half precision on CUDA)."""
        loaded = self.loaded
        cast = {k: (v.to(loaded.dtype) if torch.is_floating_point(v) else v) for k, v in model_inputs.items()}
        return loaded.model(**cast).logits.float()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, checkpoint={self.checkpoint!r}, device={self.device})"


def chunks(n: int, size: int) -> Iterable[slice]:
    """Slices cutting ``range(n)`` into pieces of at most ``size``."""
    for start in range(0, n, max(1, size)):
        yield slice(start, min(n, start + size))


def split_by_counts(values: torch.Tensor, counts: Sequence[int]) -> list[torch.Tensor]:
    """Cut the concatenated outputs of several clips back into one tensor per clip."""
    return list(torch.split(values, list(counts), dim=0))
