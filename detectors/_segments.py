"""Where a clip is manipulated: the stretches judged manipulated and a fused timeline across detectors.

    per detector:  evidence["stretches"] (a detector that localises itself: lipsync, voice_change)
                   or runs of its timeline at >= 0.5 lasting >= ``min_segment_s`` (any detector with a timeline);
                   an own stretch calibrated under 0.5 is a candidate, kept only where support lifts it to 0.5
    across them:   overlapping stretches merged into one Segment {start_s, end_s, score, detectors, reasons};
                   score = the calibration's weighted noisy-OR of the detectors' stretch scores, plus the timeline
                   of a detector that did not flag the stretch itself but is raised there (>= SUPPORT)
    fused timeline: a 0.5 s grid, per cell the same noisy-OR of each detector's worst window or stretch covering it
    clip score:    raised to the best segment's score where that is higher (a sustained manipulated stretch is
                   not averaged away); the verdict and reasons follow, naming where

A detector's ``evidence["stretches"]`` entries are dicts with ``start_s``, ``end_s``, ``score`` and optionally
``reason`` (a sentence that says where). ``locate`` is the one call ``Suite.analyse`` makes after fusion.

``SUPPORT`` (0.25) and ``MIN_SEGMENT_S`` were chosen on the tuning split of generated long clips (seeds below 1000);
``FLAG`` is the contract's line, not a tuned value.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.contracts import FLAG_THRESHOLD, FusedScore, Segment, TimelineWindow

from ._base import DetectorResult
from ._fusion import BELOW_LINE_REASON, CANNOT_RULE_OUT_REASON, NO_SIGNAL_REASON, Calibration

__all__ = ["Stretch", "detector_stretches", "fused_timeline", "merge_stretches", "locate", "FLAG"]

FLAG = FLAG_THRESHOLD  # a detector flags (a clip or a stretch) at >= 0.5 (DESIGN.md)
GRID_S = 0.5
MIN_SEGMENT_S = 1.0
SUPPORT = 0.25  # a timeline window this high, under another detector's stretch, supports that stretch


@dataclass
class Stretch:
    """One detector's manipulated stretch."""

    start_s: float
    end_s: float
    score: float
    detector: str
    reason: str = ""


@dataclass
class _Merged:
    start_s: float
    end_s: float
    parts: list[Stretch] = field(default_factory=list)


def _span(start: float, end: float) -> str:
    return f"from {start:.1f} s to {end:.1f} s"


def detector_stretches(result: DetectorResult, *, min_segment_s: float = MIN_SEGMENT_S,
                       at_least: float = FLAG) -> list[Stretch]:
    """The stretches one applicable result flags: its own ``evidence["stretches"]`` when it gives them, else the
    runs of its timeline at >= 0.5 lasting at least ``min_segment_s`` (shorter blips do not count). With
    ``at_least`` under 0.5, also its own stretches that calibration put under the flag (candidates: they count only
    where another detector supports them, ``locate``)."""
    if not result.applicable or result.score is None:
        return []
    own = result.evidence.get("stretches")
    if isinstance(own, list):
        return [Stretch(float(s["start_s"]), float(s["end_s"]), float(s["score"]), result.name,
                        str(s.get("reason") or f"{result.name}: manipulated {_span(s['start_s'], s['end_s'])}"))
                for s in own if isinstance(s, Mapping) and float(s.get("score", 0.0)) >= at_least]
    out: list[Stretch] = []
    run: list[Any] = []
    for window in sorted(result.timeline, key=lambda w: w.start_s) + [None]:
        if window is not None and window.score >= FLAG and (not run or window.start_s <= run[-1].end_s + 1e-6):
            run.append(window)
            continue
        if run and run[-1].end_s - run[0].start_s >= min_segment_s:
            start, end = run[0].start_s, max(w.end_s for w in run)
            score = sum(w.score for w in run) / len(run)
            # the detector's own words, placed: "identity: face matches … (from 0.5 s to 5.8 s)"
            reasons = result.evidence.get("reasons")
            said = f"{result.name}: {reasons[0]}" if isinstance(reasons, list) and reasons else f"{result.name} flags"
            out.append(Stretch(start, end, score, result.name, f"{said} ({_span(start, end)})"))
        run = [window] if window is not None and window.score >= FLAG else []
    return out


def _noisy_or(values: Mapping[str, float], calibration: Calibration) -> float:
    if calibration.fusion.method == "max":
        return max((calibration.for_detector(n).weight * v for n, v in values.items()), default=0.0)
    return 1.0 - math.prod(1.0 - calibration.for_detector(n).weight * v for n, v in values.items())


def _support(start: float, end: float, result: DetectorResult) -> float:
    """A detector's own timeline over a segment it did not flag itself: its best window that lies mostly inside the
    segment (at least half of the shorter of the two), when that window reaches ``SUPPORT``; else 0."""
    if not result.applicable or not result.timeline:
        return 0.0
    best = 0.0
    for window in result.timeline:
        inter = min(window.end_s, end) - max(window.start_s, start)
        if inter > 0 and inter >= 0.5 * min(window.end_s - window.start_s, end - start):
            best = max(best, float(window.score))
    return best if best >= SUPPORT else 0.0


def merge_stretches(stretches: list[Stretch], calibration: Calibration, *, join_s: float = 0.5,
                    results: Mapping[str, DetectorResult] | None = None) -> list[Segment]:
    """Stretches of several detectors that overlap (or lie within ``join_s``) merged into segments.

    With ``results``, a detector that did not flag the stretch itself but whose timeline is raised there (a
    window at >= ``SUPPORT``: short of a flag, more than noise) supports it: its window score joins the noisy-OR
    and it is named among the segment's detectors. Two detectors that each see a little of the same stretch add
    up; one alone does not flag below 0.5."""
    merged: list[_Merged] = []
    for stretch in sorted(stretches, key=lambda s: s.start_s):
        if merged and stretch.start_s <= merged[-1].end_s + join_s:
            merged[-1].end_s = max(merged[-1].end_s, stretch.end_s)
            merged[-1].parts.append(stretch)
        else:
            merged.append(_Merged(stretch.start_s, stretch.end_s, [stretch]))
    segments = []
    for group in merged:
        best: dict[str, float] = {}
        for part in group.parts:
            best[part.detector] = max(best.get(part.detector, 0.0), part.score)
        for name, result in (results or {}).items():
            if name not in best and (value := _support(group.start_s, group.end_s, result)) > 0:
                best[name] = value
        score = min(max(_noisy_or(best, calibration), 0.0), 1.0)
        reasons = list(dict.fromkeys(p.reason for p in sorted(group.parts, key=lambda p: -p.score) if p.reason))
        segments.append(Segment(start_s=round(max(0.0, group.start_s), 2), end_s=round(max(0.0, group.end_s), 2),
                                score=round(score, 4), detectors=sorted(best), reasons=reasons))
    return segments


def fused_timeline(results: Mapping[str, DetectorResult], calibration: Calibration, duration_s: float, *,
                   grid_s: float = GRID_S) -> list[TimelineWindow]:
    """The fused score per ``grid_s`` cell: noisy-OR over applicable detectors of each one's worst window (or
    stretch) overlapping the cell; cells no detector's timeline covers are left out."""
    timelines: dict[str, list[Any]] = {n: list(r.timeline) for n, r in results.items() if r.applicable and r.timeline}
    for name, result in results.items():  # a detector's own stretches are part of its timeline
        for stretch in detector_stretches(result):
            timelines.setdefault(name, []).append(stretch)
    if not timelines or duration_s <= 0:
        return []
    cells = max(1, math.ceil(duration_s / grid_s - 1e-9))
    out = []
    for i in range(cells):
        start, end = i * grid_s, min((i + 1) * grid_s, duration_s)
        values = {}
        for name, windows in timelines.items():
            covering = [w.score for w in windows if w.start_s < end and w.end_s > start]
            if covering:
                values[name] = max(covering)
        if values:
            score = min(max(_noisy_or(values, calibration), 0.0), 1.0)
            out.append(TimelineWindow(start_s=round(start, 3), end_s=round(end, 3), score=round(score, 4)))
    return out


def locate(results: Mapping[str, DetectorResult], fused: FusedScore, calibration: Calibration, *,
           duration_s: float) -> tuple[FusedScore, list[Segment]]:
    """The fused score with its timeline and, where a segment scores higher, raised to it (verdict and reasons
    follow); and the segments."""
    # a detector's own stretch under the flag (voice_change on voices it cannot tell apart well) is a candidate: it
    # becomes a segment only where another detector's raised timeline lifts the segment to the flag
    stretches = [s for r in results.values() for s in detector_stretches(r, at_least=SUPPORT)]
    segments = [seg for seg in merge_stretches(stretches, calibration, results=results)
                if seg.score >= FLAG or any(s.score >= FLAG and s.start_s < seg.end_s and s.end_s > seg.start_s
                                            for s in stretches)]
    timeline = fused_timeline(results, calibration, duration_s)
    update: dict[str, Any] = {"timeline": timeline}
    worst = max((s.score for s in segments), default=0.0)
    thresholds = calibration.verdicts
    # a detector's stretch at >= 0.5 is a flag, and a flag is never averaged away (detectors._fusion): the clip is
    # at least suspicious, even where the detector's weight keeps the segment's own score lower
    if segments and fused.score is not None and (worst > fused.score or fused.verdict in _CALM):
        score = max(worst, fused.score)
        verdict = ("likely_manipulated" if score >= thresholds.likely_manipulated else "suspicious")
        top = max(segments, key=lambda s: s.score)
        if verdict == "likely_manipulated" and fused.verdict != "likely_manipulated" and all(
                results[n].evidence.get("decides_alone") is False for n in top.detectors if n in results):
            verdict = "suspicious"  # as fusion does: detectors that cannot decide alone raise suspicion only
        where = [r for s in sorted(segments, key=lambda s: -s.score) for r in s.reasons]
        kept = [r for r in fused.reasons if r not in where and not r.startswith(_CALM_REASONS)]
        update.update(score=round(score, 4), verdict=verdict, reasons=list(dict.fromkeys(where + kept)))
    return fused.model_copy(update=update), segments


_CALM = ("no_signal", "inconclusive")
_CALM_REASONS = (NO_SIGNAL_REASON, CANNOT_RULE_OUT_REASON, BELOW_LINE_REASON)
