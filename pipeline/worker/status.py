"""The worker side's lines of `vigil status`: the torch device the detectors would use, the face mesh, and each
model detector's checkpoint (configured, resolved in the local cache, what its labels mean; no download, no weights
loaded). The checks both sides share are ``pipeline._setup.run_status``; `vigil status` runs both where this
environment is the worker's.
"""
from __future__ import annotations

import torch

from detectors import inventory, is_offline

from .._settings import Settings
from .._setup import Check

__all__ = ["device_check", "face_mesh_check", "model_checks", "worker_checks"]


def device_check(settings: Settings) -> Check:
    """The torch device the detectors would use: CUDA name and memory, or the CPU."""
    if torch.cuda.is_available():
        index = torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        detail = (f"cuda:{index} {props.name}, {props.total_memory / 2**30:.1f} GiB "
                  f"({torch.cuda.device_count()} device(s)); VIGIL_DEVICE={settings.device}")
        return Check("torch device", True, detail)
    wants_cuda = settings.device.startswith("cuda")
    return Check("torch device", not wants_cuda, f"cpu (no CUDA device); VIGIL_DEVICE={settings.device}",
                 "VIGIL_DEVICE names CUDA but none is visible: check the driver and CUDA_VISIBLE_DEVICES"
                 if wants_cuda else "")


def face_mesh_check() -> Check:
    """mediapipe's face mesh (a broken install is reported, not raised)."""
    try:
        import mediapipe as mp
    except Exception as exc:  # noqa: BLE001 - a broken install is reported, not raised
        return Check("face mesh", False, f"mediapipe fails to import: {exc}", "run `infra/install worker`")
    available = hasattr(getattr(mp, "solutions", None), "face_mesh")
    return Check("face mesh", available,
                 f"mediapipe {getattr(mp, '__version__', '?')} face mesh " + ("available" if available else "missing"),
                 "" if available else "install mediapipe==0.10.21 (`infra/install worker`)")


def model_checks(settings: Settings) -> list[Check]:
    """Each model detector: configured checkpoint, resolved commit in the local cache, label meaning."""
    checks = []
    for entry in inventory(settings):
        name = f"model {entry.name}"
        if not entry.configured:
            checks.append(Check(name, True, "not configured (left out of the default suite)"))
        elif entry.problem:
            checks.append(Check(name, False, entry.problem, "see `vigil models verify`"))
        elif entry.resolved is None:
            checks.append(Check(name, not is_offline(), f"{entry.checkpoint}: not on this machine yet",
                                "run `vigil models pull` (or mount an export: docs/operators/models.md)"))
        else:
            read = ", ".join(entry.meaning.values())
            checks.append(Check(name, True, f"{entry.resolved.identity} ({entry.dtype} on {entry.device}; reads {read})",
                                entry.note or ""))
    return checks


def worker_checks(settings: Settings) -> list[Check]:
    """Every worker-side line of `vigil status`."""
    return [device_check(settings), face_mesh_check(), *model_checks(settings)]
