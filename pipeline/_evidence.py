"""Evidence plots for analysts: PNGs rendered from a ``vigil.result/1`` and stored beside the media they describe.

Two plots per result: ``timeline.png`` (every applicable detector's per-window score along the video, the 0.5 flag
line, the fused verdict in the title) and ``scores.png`` (each detector's score, not-applicable ones greyed with
their reason). They go to ``<store>/<sha[:2]>/<sha>.evidence/<suite_version>/`` and their URIs into
``evidence_uris``, which the sink copies into the detection document for Kibana's drill-down.

Rendering uses matplotlib's object API with the Agg canvas (no pyplot, no global state: safe in worker threads).
matplotlib is a worker-side dependency; nothing on the Airflow side imports this module.

The worker's hook, one line after the result message is built::

    message = attach_evidence(message, store)   # store = MediaStore.from_settings(settings)
"""
from __future__ import annotations

import io
import logging
import re
from typing import Any

from ._exceptions import ServiceUnavailable
from ._media_store import MediaStore
from ._messages import ResultMessage

__all__ = ["render_timeline", "render_scores", "store_evidence", "attach_evidence", "evidence_dir", "mark_segments"]

logger = logging.getLogger(__name__)

FLAG_THRESHOLD = 0.5
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


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


def mark_segments(axes: Any, segments: Any) -> None:
    """Shade the result's manipulated stretches (``segments``: items with start_s, end_s, score, detectors) on a
    time axis, labelled once; any timeline plot can call it."""
    for i, segment in enumerate(segments):
        axes.axvspan(segment.start_s, segment.end_s, color="firebrick", alpha=0.15, linewidth=0,
                     label="manipulated stretch" if i == 0 else None)
        axes.text((segment.start_s + segment.end_s) / 2, 0.97, f"{segment.score:.2f} {'+'.join(segment.detectors)}",
                  ha="center", va="top", fontsize=7, color="firebrick", transform=axes.get_xaxis_transform())


def render_timeline(result: ResultMessage) -> bytes | None:
    """PNG of the per-window scores of every detector that has a timeline; None when none has one."""
    series = {name: out.timeline for name, out in sorted(result.detectors.items()) if out.applicable and out.timeline}
    if not series:
        return None
    figure, axes = _figure()
    for name, windows in series.items():
        xs, ys = [], []
        for window in windows:
            xs += [window.start_s, window.end_s]
            ys += [window.score, window.score]
        axes.plot(xs, ys, label=name, linewidth=1.6)
    axes.axhline(FLAG_THRESHOLD, color="firebrick", linestyle="--", linewidth=1, label="flag threshold")
    mark_segments(axes, result.segments)
    axes.set_xlim(0, max(result.duration_s, max(w.end_s for ws in series.values() for w in ws)))
    axes.set_ylim(0, 1)
    axes.set_xlabel("seconds into the video")
    axes.set_ylabel("manipulation score")
    fused = result.fused
    score = "n/a" if fused.score is None else f"{fused.score:.2f}"
    axes.set_title(f"{result.video_uid}: {fused.verdict} (fused {score})", fontsize=10)
    axes.legend(loc="upper right", fontsize=8)
    axes.grid(alpha=0.3)
    return _png(figure)


def render_scores(result: ResultMessage) -> bytes:
    """PNG bar chart of each detector's score; detectors that did not apply are grey and say why."""
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


def evidence_dir(store: MediaStore, result: ResultMessage) -> str:
    """The store path evidence of this result goes to (beside the media file)."""
    sha = result.media_sha256
    return f"{store.root}/{sha[:2]}/{sha}.evidence/{_SAFE.sub('_', result.suite_version)}"


def store_evidence(result: ResultMessage, store: MediaStore) -> list[str]:
    """Render and store the plots; returns their URIs (idempotent: same result, same paths)."""
    plots = {"timeline.png": render_timeline(result), "scores.png": render_scores(result)}
    directory = evidence_dir(store, result)
    uris = []
    try:
        store.fs.makedirs(directory, exist_ok=True)
        for name, data in plots.items():
            if data is None:
                continue
            path = f"{directory}/{name}"
            store.fs.pipe_file(path, data)
            uris.append(store.fs.unstrip_protocol(path))
    except OSError as exc:
        raise ServiceUnavailable(f"cannot write evidence plots to the media store {store.location}: {exc}",
                                 service="media-store", hint="check VIGIL_MEDIA_STORE and its permissions") from exc
    logger.debug("stored %d evidence plots for %s", len(uris), result.video_uid)
    return uris


def attach_evidence(result: ResultMessage, store: MediaStore) -> ResultMessage:
    """The result with its evidence plots stored and their URIs in ``evidence_uris`` (a failure is logged, the
    result goes on without plots: evidence never costs a score)."""
    try:
        uris = store_evidence(result, store)
    except Exception as exc:  # noqa: BLE001 - plots are a convenience; the score must not be lost over them
        logger.warning("no evidence plots for %s: %s", result.video_uid, exc)
        return result
    return result.model_copy(update={"evidence_uris": [*result.evidence_uris, *uris]})
