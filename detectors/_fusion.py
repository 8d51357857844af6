"""Calibration and fusion: per-detector Platt scaling, one manipulation score, a verdict and readable reasons.

Parameters live in a versioned JSON file (``detectors/calibration/default.json`` unless ``VIGIL_CALIBRATION_FILE``
names another); its ``version`` enters the suite version, so a new calibration yields new detection documents::

    {"version": "…",
     "detectors": {"lipsync": {"platt": {"a": 1.0, "b": 0.0}, "weight": 1.0}, …,
                   "face_forgery": {"rank": {"low": 0.2, "high": 0.8},               # per detector …
                                    "checkpoints": {"org/name": {"rank": {…}}}}},   # … and per checkpoint
     "default": {"platt": null, "weight": 0.5},          # detectors the file does not name
     "fusion": {"method": "noisy_or"},
     "verdicts": {"likely_manipulated": 0.75, "suspicious": 0.5}}

Platt scaling maps a raw score p to ``sigmoid(a * logit(p) + b)`` (``null`` = identity). Fusion is a weighted
noisy-OR of the calibrated scores of the applicable detectors, ``1 - prod(1 - weight_i * p_i)``: the detectors look
for different manipulations, so one confident detector is enough and an in-sync mouth does not clear a swapped
face. Verdicts: ``likely_manipulated`` (fused ≥ upper threshold), ``suspicious`` (≥ lower), ``no_signal`` (below),
``inconclusive`` (no detector could judge the video). A flag is never averaged away: where an applicable detector
scores >= 0.5 (or, in ``detectors._segments.locate``, flags a stretch) the verdict is at least ``suspicious``, with
that detector's reason first, even where its weight keeps the fused score (the calibrated noisy-OR, which alerts and
``vigil calibrate`` use) under the line.

Ranks (``DetectorResult.rank``): a calibrated score at or above the checkpoint's ``rank.high`` is ``high``, at or
below ``rank.low`` is ``low``, between them ``uncertain``; ``not_applicable`` when the detector could not judge.
Thresholds are looked up by the result's ``evidence['checkpoint_id']`` (``org/name@commit``), then its
``evidence['checkpoint']`` (hub id or directory), then the detector's own ``rank``; without any, a flagged score is
``high`` and any other ``low``. A detector may mark a result ``evidence['decides_alone'] = False`` (the face model on
crowds and split screens): it is then ``uncertain`` and may not carry the verdict alone. The verdict becomes
``inconclusive`` instead of ``no_signal`` when no applicable detector that may decide ranked its score ``low``
(nothing could rule manipulation out), and ``suspicious`` at most when only such results flagged it.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline import ConfigError, FusedScore

from ._base import DetectorResult, Window

__all__ = ["Calibration", "DetectorCalibration", "Platt", "Fusion", "DEFAULT_CALIBRATION_FILE", "load_calibration",
           "describe", "RankThresholds", "CheckpointCalibration", "rank_of", "NO_SIGNAL_REASON",
           "CANNOT_RULE_OUT_REASON", "BELOW_LINE_REASON"]

DEFAULT_CALIBRATION_FILE = Path(__file__).with_name("calibration") / "default.json"
_EPS = 1e-6
#: the first words of a calm verdict's reasons; a located stretch contradicts them (``detectors._segments.locate``)
NO_SIGNAL_REASON = "no detector found a sign of manipulation"
BELOW_LINE_REASON = "no finding reached the flag line (0.5)"
CANNOT_RULE_OUT_REASON = "no applicable detector could rule out manipulation"


class Platt(BaseModel):
    """``sigmoid(a * logit(p) + b)``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    a: float = Field(gt=0, description="slope; > 0 keeps the order of scores")
    b: float = 0.0

    def __call__(self, p: float) -> float:
        p = min(max(p, _EPS), 1 - _EPS)
        z = self.a * math.log(p / (1 - p)) + self.b
        return 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0


class RankThresholds(BaseModel):
    """Where a calibrated score is trusted: ``>= high`` → high, ``<= low`` → low, between → uncertain."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    low: float = Field(ge=0, le=1)
    high: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> RankThresholds:
        if self.low > self.high:
            raise ValueError("rank.low must not be above rank.high")
        return self

    def rank(self, score: float) -> str:
        return "high" if score >= self.high else "low" if score <= self.low else "uncertain"


class CheckpointCalibration(BaseModel):
    """What is known about one checkpoint of a model detector (hub id, ``org/name@commit`` or directory)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    rank: RankThresholds | None = None


class DetectorCalibration(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    platt: Platt | None = None
    weight: float = Field(1.0, ge=0, le=1, description="trust in this detector's flag (noisy-OR weight)")
    rank: RankThresholds | None = None
    checkpoints: dict[str, CheckpointCalibration] = Field(default_factory=dict)

    def rank_thresholds(self, result: DetectorResult) -> RankThresholds | None:
        """The thresholds of the result's checkpoint, else the detector's own, else None."""
        for key in (result.evidence.get("checkpoint_id"), result.evidence.get("checkpoint")):
            if isinstance(key, str) and key in self.checkpoints and self.checkpoints[key].rank is not None:
                return self.checkpoints[key].rank
        return self.rank


class Verdicts(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    likely_manipulated: float = Field(gt=0, le=1)
    suspicious: float = Field(gt=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> Verdicts:
        if self.suspicious > self.likely_manipulated:
            raise ValueError("verdicts.suspicious must not be above verdicts.likely_manipulated")
        return self


class FusionMethod(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    method: Literal["noisy_or", "max"] = "noisy_or"


class Calibration(BaseModel):
    """The calibration file's content."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    version: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
    description: str = ""
    detectors: dict[str, DetectorCalibration] = Field(default_factory=dict)
    default: DetectorCalibration = DetectorCalibration(weight=0.5)
    fusion: FusionMethod = FusionMethod()
    verdicts: Verdicts = Verdicts(likely_manipulated=0.75, suspicious=0.5)

    def for_detector(self, name: str) -> DetectorCalibration:
        return self.detectors.get(name, self.default)


def load_calibration(path: str | Path | None = None) -> Calibration:
    """Read and validate a calibration file (the packaged default when ``path`` is None); ConfigError naming the
    file and every problem otherwise."""
    file = Path(path) if path is not None else DEFAULT_CALIBRATION_FILE
    where = f"calibration file {file} (VIGIL_CALIBRATION_FILE)"
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{where} does not exist") from exc
    except OSError as exc:
        raise ConfigError(f"{where} cannot be read: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where} is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must hold a JSON object, not {type(data).__name__}")
    if "version" not in data:
        raise ConfigError(f"{where} has no 'version' field")
    try:
        return Calibration.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{where} is invalid: {problems}") from exc


def describe(result: DetectorResult) -> str:
    """One human-readable sentence on what a detector found: its first ``evidence["reasons"]`` entry (each detector
    words its own findings in postprocess), else its score."""
    e = result.evidence
    if result.error:
        return f"{result.name}: failed ({result.error})"
    if not result.applicable:
        return f"{result.name}: not applicable ({e.get('reason') or 'no reason given'})"
    reasons = e.get("reasons")
    if isinstance(reasons, list) and reasons:
        return f"{result.name}: {reasons[0]}"
    return f"{result.name}: score {result.score:.2f}"


class Fusion:
    """Applies per-detector calibration and fuses the applicable results into a verdict with reasons."""

    def __init__(self, calibration: Calibration | None = None) -> None:
        self.calibration = calibration or load_calibration()

    @classmethod
    def from_file(cls, path: str | Path | None) -> Fusion:
        return cls(load_calibration(path))

    @property
    def version(self) -> str:
        return self.calibration.version

    def calibrate(self, result: DetectorResult) -> DetectorResult:
        """The result with its score, timeline and stretches (``evidence['stretches']``) mapped through the detector's
        Platt scaling (raw scores kept in ``evidence['raw_score']`` and each stretch's ``raw_score``); unchanged
        without scaling or when not applicable."""
        if not result.applicable:
            return result  # rank not_applicable (DetectorResult.to_output)
        calibration = self.calibration.for_detector(result.name)
        platt = calibration.platt
        if platt is not None and result.applicable and result.score is not None:
            timeline = [Window(w.start_s, w.end_s, platt(w.score)) for w in result.timeline]
            evidence = {**result.evidence, "raw_score": result.score}
            stretches = result.evidence.get("stretches")
            if isinstance(stretches, list):  # a stretch is a flag on the same scale as the score (DESIGN.md)
                evidence["stretches"] = [{**st, "score": round(platt(float(st["score"])), 4), "raw_score": st["score"]}
                                         if isinstance(st, Mapping) and "score" in st else st for st in stretches]
            result = replace(result, score=platt(result.score), timeline=timeline, evidence=evidence)
        return replace(result, rank=_rank(result, calibration.rank_thresholds(result)))

    def fuse(self, results: Mapping[str, DetectorResult]) -> FusedScore:
        """One score, a verdict and reasons from (calibrated) results keyed by detector name."""
        applicable = {n: r for n, r in results.items() if r.applicable and r.score is not None}
        if not applicable:
            why = "; ".join(describe(r) for r in results.values()) or "no detectors ran"
            return FusedScore(score=None, verdict="inconclusive", reasons=[f"no detector could judge this video: {why}"])
        contributions: dict[str, float] = {}
        for name, result in applicable.items():
            contributions[name] = self.calibration.for_detector(name).weight * float(result.score)  # type: ignore[arg-type]
        if self.calibration.fusion.method == "max":
            score = max(contributions.values())
        else:
            score = 1.0 - math.prod(1.0 - c for c in contributions.values())
        score = min(max(score, 0.0), 1.0)
        thresholds = self.calibration.verdicts
        if score >= thresholds.likely_manipulated:
            verdict = "likely_manipulated"
        elif score >= thresholds.suspicious:
            verdict = "suspicious"
        else:
            verdict = "no_signal"
        verdict, caveat = _judge(verdict, applicable)
        if verdict in ("no_signal", "inconclusive") and any(r.flagged for r in applicable.values()):
            # a flag is never averaged away: a detector at >= 0.5 makes the clip suspicious, whatever its weight
            # (the fused score stays the calibrated noisy-OR: the weight still says how far the flag is trusted)
            verdict, caveat = _judge("suspicious", applicable)
        ranked = sorted(applicable, key=lambda n: contributions[n], reverse=True)
        if verdict in ("inconclusive", "no_signal"):
            # a calm verdict: a finding that calibration put under the line, or a cue a detector names without
            # scoring it (lipsync's whole-clip dub), is named with its calibrated score, and the first reason does
            # not say that nothing was found
            below = [n for n in ranked if _stretches(applicable[n]) or applicable[n].evidence.get("manipulation")]
            words = [f"{n}: under the flag line ({applicable[n].score:.2f}): {describe(applicable[n])[len(n) + 2:]}"
                     if n in below else describe(applicable[n]) for n in ranked]
            first = caveat if verdict == "inconclusive" else BELOW_LINE_REASON if below else NO_SIGNAL_REASON
            reasons = [first] + words
        else:
            reasons = [describe(applicable[n]) for n in ranked if applicable[n].flagged] or \
                      [describe(applicable[n]) for n in ranked[:1]]
        if caveat and verdict != "inconclusive":
            reasons.append(caveat)
        skipped = [describe(r) for n, r in results.items() if n not in applicable]
        return FusedScore(score=round(score, 4), verdict=verdict, reasons=reasons + skipped)

    def __call__(self, results: Mapping[str, DetectorResult]) -> FusedScore:
        return self.fuse(results)


def _stretches(result: DetectorResult) -> bool:
    """Whether the result located stretches of its own (``evidence['stretches']``, whatever their calibrated score)."""
    stretches = result.evidence.get("stretches")
    return isinstance(stretches, list) and bool(stretches)


def _rank(result: DetectorResult, thresholds: RankThresholds | None) -> str:
    if not result.applicable or result.score is None:
        return "not_applicable"
    if result.rank == "uncertain" or result.evidence.get("decides_alone") is False:
        return "uncertain"  # the detector itself says its score cannot be trusted here
    if thresholds is None:
        return "high" if result.flagged else "low"
    return thresholds.rank(float(result.score))


def rank_of(result: DetectorResult) -> str:
    """The result's rank, or without one (not calibrated) the flag: high when flagged, else low."""
    if result.rank is not None:
        return result.rank
    return _rank(result, None)


def _judge(verdict: str, applicable: Mapping[str, DetectorResult]) -> tuple[str, str]:
    """The verdict after asking who may decide: (verdict, caveat or "")."""
    deciders = {n: r for n, r in applicable.items() if r.evidence.get("decides_alone") is not False}
    others = sorted(n for n in set(applicable) - set(deciders) if applicable[n].flagged)
    if verdict in ("likely_manipulated", "suspicious") and others and not any(r.flagged for r in deciders.values()):
        why = "; ".join(str(applicable[n].evidence.get("rank_reason") or n) for n in others)
        return "suspicious", f"only detectors that cannot decide alone flagged it ({why})"
    if verdict == "no_signal" and not any(rank_of(r) == "low" for r in deciders.values()):
        ranks = ", ".join(f"{n} {rank_of(r)}" for n, r in applicable.items())
        return "inconclusive", f"{CANNOT_RULE_OUT_REASON} ({ranks})"
    return verdict, ""
