"""Evidence plots for analysts, drawn from stored data where they are viewed: PNGs for `vigil scan --report`
(and anything else that wants files), from a ``vigil.result/1`` or the ``vigil-detections`` document the sink
stored from it. The console draws the same timelines as inline SVG (pipeline/console/_charts.py); the worker stores
data only (scores, timelines, evidence, segments, face-crop URIs), no pictures.

Two plots per result: ``timeline.png`` (every applicable detector's per-window score along the video, the fused
timeline when there is one, the manipulated segments shaded, the 0.5 flag line, the fused verdict in the title) and
``scores.png`` (each detector's score, not-applicable ones greyed with their reason). `write_report` writes both.

Rendering uses matplotlib's object API with the Agg canvas (no pyplot, no global state: safe in threads).
matplotlib is a worker-side dependency; nothing on the Airflow side imports this module.
"""
from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._messages import FLAG_THRESHOLD, ResultMessage

ResultLike = ResultMessage | Mapping[str, Any]

__all__ = ["render_timeline", "render_scores", "write_report", "as_result"]




def _figure(width: float = 8.0, height: float = 3.2) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def as_result(result: ResultLike) -> ResultMessage:
    """A ResultMessage from itself or from a stored ``vigil-detections`` document (its index-only fields dropped)."""
    if isinstance(result, ResultMessage):
        return result
    fields = set(ResultMessage.model_fields) | {"schema"}
    return ResultMessage.model_validate({k: v for k, v in result.items() if k in fields and k != "schema"})


def render_timeline(result: ResultLike) -> bytes | None:
    """PNG of the per-window scores of every detector that has a timeline (and the fused timeline), manipulated
    segments shaded; None when nothing has a timeline."""
    result = as_result(result)
    series = {name: out.timeline for name, out in sorted(result.detectors.items()) if out.applicable and out.timeline}
    if result.fused.timeline:
        series = {"fused": result.fused.timeline, **series}
    if not series:
        return None
    figure, axes = _figure()
    for segment in result.segments:
        axes.axvspan(segment.start_s, segment.end_s, color="firebrick", alpha=0.12, linewidth=0)
    for name, windows in series.items():
        xs, ys = [], []
        for window in windows:
            xs += [window.start_s, window.end_s]
            ys += [window.score, window.score]
        axes.plot(xs, ys, label=name, linewidth=2.4 if name == "fused" else 1.6)
    axes.axhline(FLAG_THRESHOLD, color="firebrick", linestyle="--", linewidth=1, label="flag threshold")
    axes.set_xlim(0, max(result.duration_s, max(w.end_s for ws in series.values() for w in ws)))
    axes.set_ylim(0, 1)
    axes.set_xlabel("seconds into the video" + (" (shaded: manipulated segments)" if result.segments else ""))
    axes.set_ylabel("manipulation score")
    fused = result.fused
    score = "n/a" if fused.score is None else f"{fused.score:.2f}"
    axes.set_title(f"{result.video_uid}: {fused.verdict} (fused {score})", fontsize=10)
    axes.legend(loc="upper right", fontsize=8)
    axes.grid(alpha=0.3)
    return _png(figure)


def render_scores(result: ResultLike) -> bytes:
    """PNG bar chart of each detector's score; detectors that did not apply are grey and say why."""
    result = as_result(result)
    names = sorted(result.detectors)
    figure, axes = _figure(6.0, 0.5 + 0.45 * max(len(names), 1))
    for i, name in enumerate(names):
        out = result.detectors[name]
        if out.applicable and out.score is not None:
            colour = "firebrick" if out.score >= FLAG_THRESHOLD else "steelblue"
            axes.barh(i, out.score, color=colour)
            axes.text(min(out.score + 0.02, 0.9), i, f"{out.score:.2f}", va="center", fontsize=8)
        else:
            reason = str(out.evidence.get("reason") or out.error or "not applicable")
            axes.barh(i, 1.0, color="lightgrey")
            axes.text(0.02, i, reason[:60], va="center", fontsize=8, color="dimgrey")
    axes.set_yticks(range(len(names)), names)
    axes.set_xlim(0, 1)
    axes.axvline(FLAG_THRESHOLD, color="firebrick", linestyle="--", linewidth=1)
    axes.set_xlabel("score")
    return _png(figure)


def write_report(result: ResultLike, directory: str | Path) -> list[Path]:
    """Write ``timeline.png`` (when there is a timeline) and ``scores.png`` into ``directory``; returns the files."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in (("timeline.png", render_timeline(result)), ("scores.png", render_scores(result))):
        if data is not None:
            (directory / name).write_bytes(data)
            written.append(directory / name)
    return written
