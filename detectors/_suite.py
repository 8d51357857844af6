"""The detector suite: the one runtime behind `vigil scan` and the Kafka worker.

    prepare(source)   CPU, one video: decode (PyAV) → face tracks (mediapipe); raises MediaError for bad media
    analyse(clips)    every detector over all clips at once (``run_detector``: preprocess → batched forward on the
                      device → postprocess), calibration, fusion → one SuiteResult per clip

``prepare`` is safe to call from several threads at once (each call builds its own face mesh graph); ``analyse``
belongs to the one thread that owns the device.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipeline.contracts import FusedScore, ResultMessage, Segment, SourceMetadata, sha256_file

from ._base import Detector, DetectorResult, _jsonable, run_detector
from ._clip import Clip
from ._decode import DEFAULT_FPS, DEFAULT_MAX_SIDE, LUMA_KEY, decode_clip
from ._exceptions import ModelError
from ._faces import FaceTracker
from ._fusion import Fusion, load_calibration
from ._registry import KNOWN_NAMES, registered, suite_version
from ._segments import locate

if TYPE_CHECKING:
    from pipeline import Settings

__all__ = ["Suite", "SuiteResult", "default_detector_names"]

logger = logging.getLogger(__name__)


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 2)


@dataclass
class SuiteResult:
    """The suite's verdict on one clip: calibrated per-detector results, the fused score and stage timings."""

    clip: Clip
    results: dict[str, DetectorResult]
    fused: FusedScore
    timings_ms: dict[str, float] = field(default_factory=dict)
    segments: list[Segment] = field(default_factory=list)

    @property
    def annotations(self) -> dict[str, Any]:
        """The video-document fields the detectors contributed (persons, provenance), merged by top-level name."""
        merged: dict[str, Any] = {}
        for result in self.results.values():
            merged.update(result.annotations)
        return merged

    def to_message(self, *, video_uid: str, suite_version: str, source: SourceMetadata | None = None,
                   extra_timings: dict[str, float] | None = None) -> ResultMessage:
        """The ``vigil.result/1`` message. ``extra_timings`` (download, decode, faces …) come first; the media hash
        is the clip's, or computed from the file when the clip has none."""
        sha = self.clip.media_sha256 or sha256_file(self.clip.source)
        timings = {**(extra_timings or {}), **self.timings_ms}
        return ResultMessage(video_uid=video_uid, media_sha256=sha, suite_version=suite_version,
                             duration_s=max(0.0, float(self.clip.duration_s)), fused=self.fused,
                             detectors={name: r.to_output() for name, r in self.results.items()},
                             segments=self.segments, annotations=_jsonable(self.annotations),
                             timings_ms=timings, source=source)


def default_detector_names() -> list[str]:
    """Every registered detector, the contract's names first, without test-only ones marked ``enabled_by_default =
    False``."""
    classes = registered()
    names = [n for n in KNOWN_NAMES if n in classes] + sorted(n for n in classes if n not in KNOWN_NAMES)
    return [n for n in names if getattr(classes[n], "enabled_by_default", True)]


class Suite:
    """Detectors, a face tracker and a fusion, run as one."""

    #: bytes of luma planes ``prepare`` keeps from the decode for the probes (the mouth patches read every frame at
    #: the file's own resolution): a file whose frames fit is decoded once, a larger one again by the probe that
    #: needs it (26 s at 256 x 256 and 25 fps: 42 MB; 640 x 360: 230 kB a frame)
    luma_budget: int = 96 * 2**20

    def __init__(self, detectors: Sequence[Detector[Any, Any]], *, fusion: Fusion | None = None,
                 tracker: FaceTracker | None = None, fps: float = DEFAULT_FPS, max_side: int = DEFAULT_MAX_SIDE,
                 max_duration_s: float | None = None) -> None:
        names = [d.name for d in detectors]
        if len(set(names)) != len(names):
            raise ValueError(f"a suite runs each detector once, got {names}")
        self.detectors = list(detectors)
        self.fusion = fusion or Fusion()
        self.tracker = tracker or FaceTracker()
        self.fps = fps
        self.max_side = max_side
        self.max_duration_s = max_duration_s
        self.version: str = suite_version(self.detectors, self.fusion.version)

    @classmethod
    def from_settings(cls, settings: Settings, names: Sequence[str] | None = None) -> Suite:
        """The suite the settings describe. ``names`` None: ``settings.detectors`` or, when that is empty, every
        registered default detector, leaving out (with a warning) those whose model is not configured. Named
        detectors must load."""
        explicit = list(names) if names else list(settings.detectors)
        wanted = explicit or default_detector_names()
        detectors: list[Detector[Any, Any]] = []
        for name in wanted:
            try:
                detector = _create(name, settings)
                load = getattr(detector, "load", None)
                if callable(load):  # model-based detectors: load now, so a missing checkpoint shows at start
                    load()
                detectors.append(detector)
            except ModelError as exc:
                if explicit:
                    raise
                logger.warning("detector %s left out of the default suite: %s", name, exc)
            except KeyError as exc:
                raise ModelError(f"unknown detector {name!r} in VIGIL_DETECTORS: {exc.args[0]}") from exc
        if not detectors:
            raise ModelError("no detector could be loaded; set VIGIL_DETECTORS (e.g. lipsync,spectral)")
        fusion = Fusion(load_calibration(settings.calibration_file))
        return cls(detectors, fusion=fusion, fps=settings.sample_fps, max_side=settings.sample_max_side,
                   max_duration_s=float(settings.max_duration_s))

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.detectors]

    def prepare(self, source: str | os.PathLike[str], *, media_sha256: str | None = None
                ) -> tuple[Clip, dict[str, float]]:
        """Decode and track faces (CPU). Returns the clip and ``{"decode": ms, "faces": ms}``; raises MediaError."""
        start = time.perf_counter()
        clip = decode_clip(source, fps=self.fps, max_side=self.max_side, max_duration_s=self.max_duration_s,
                           media_sha256=media_sha256, luma_budget=self.luma_budget)
        decode_ms = _ms(start)
        start = time.perf_counter()
        self.tracker(clip)
        timings = {"decode": decode_ms, "faces": _ms(start)}
        for detector in self.detectors:  # detectors that read the file itself (headers, manifests), while it exists
            probe = getattr(detector, "probe", None)
            if callable(probe):
                start = time.perf_counter()
                try:
                    probe(clip, str(source))
                except Exception:  # noqa: BLE001 - the detector then reads clip.source, or reports its own failure
                    logger.exception("%s: probe failed on %s", detector.name, source)
                timings[f"probe_{detector.name}"] = _ms(start)
        clip.probes.pop(LUMA_KEY, None)  # the probes have read the frames: the clip waits for analyse without them
        return clip, timings

    def analyse(self, clips: Sequence[Clip]) -> list[SuiteResult]:
        """Every detector batched across ``clips``, calibrated, fused. A detector's timing is its batch's wall time
        shared equally by the clips of the batch. Raises DetectorUnavailable when a detector fails in a way that
        may clear (the caller retries: the worker splits the batch, backs off and finally requeues the job)."""
        clips = list(clips)
        if not clips:
            return []
        per_clip: list[dict[str, DetectorResult]] = [{} for _ in clips]
        timings: list[dict[str, float]] = [{} for _ in clips]
        for detector in self.detectors:
            start = time.perf_counter()
            # a permanent error fails that detector on that clip (run_detector); a transient one (out of memory,
            # CUDA error, timeout) raises DetectorUnavailable out of here: no result is made from it
            results = run_detector(detector, clips)
            share = _ms(start) / len(clips)
            for i, result in enumerate(results):
                per_clip[i][detector.name] = self.fusion.calibrate(result)
                timings[i][detector.name] = round(share, 2)
        out = []
        for clip, results, timing in zip(clips, per_clip, timings, strict=True):
            start = time.perf_counter()
            fused = self.fusion.fuse(results)
            fused, segments = locate(results, fused, self.fusion.calibration, duration_s=clip.duration_s)
            timing["fusion"] = _ms(start)
            out.append(SuiteResult(clip=clip, results=results, fused=fused, timings_ms=timing, segments=segments))
        return out

    def scan(self, source: str | os.PathLike[str], *, media_sha256: str | None = None) -> SuiteResult:
        """prepare + analyse for one file; the timings hold every stage."""
        clip, prep = self.prepare(source, media_sha256=media_sha256)
        result = self.analyse([clip])[0]
        result.timings_ms = {**prep, **result.timings_ms}
        return result

    def __repr__(self) -> str:
        return f"Suite({self.names}, version={self.version!r}, fps={self.fps:g})"


def _create(name: str, settings: Settings) -> Detector[Any, Any]:
    cls = registered().get(name)
    if cls is None:
        raise KeyError(f"no detector named {name!r}; registered: {', '.join(sorted(registered())) or 'none'}")
    return cls.from_settings(settings)
