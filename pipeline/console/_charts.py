"""Evidence drawn from stored data, as inline SVG (no plotting library, no images to store): the per-window score
timeline of each detector and of the fused score with the flagged windows shaded, and the spread chart (views and
views per hour over time). Every text that reaches the SVG is escaped."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup, escape

from ._queries import FLAG_THRESHOLD
from .._time import parse_moment

__all__ = ["timeline_svg", "spread_svg", "flagged_windows"]

WIDTH, ROW_H, PAD_L, PAD_R = 760, 46, 130, 28


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def flagged_windows(windows: Sequence[Mapping[str, Any]], threshold: float = FLAG_THRESHOLD) -> list[tuple[float, float]]:
    """Windows with a score ≥ threshold, overlapping ones merged: [(start_s, end_s)]."""
    spans = sorted((float(w["start_s"]), float(w["end_s"])) for w in windows
                   if _num(w.get("score")) is not None and w["score"] >= threshold)
    merged: list[tuple[float, float]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def timeline_svg(rows: Sequence[tuple[str, Sequence[Mapping[str, Any]]]], duration_s: float,
                 segments: Sequence[Mapping[str, Any]] = ()) -> Markup:
    """One band per (label, windows): the score as a step line (0 at the bottom, 1 at the top), the 0.5 line, the
    flagged windows shaded; the manipulated segments across all bands; a seconds axis below."""
    duration = max(duration_s or 0.0, max((float(w["end_s"]) for _, ws in rows for w in ws), default=0.0), 0.001)
    plot_w = WIDTH - PAD_L - PAD_R
    height = ROW_H * max(len(rows), 1) + 26
    x = lambda t: PAD_L + plot_w * min(max(t, 0.0), duration) / duration  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" viewBox="0 0 {WIDTH} {height}" '
             f'width="100%" role="img" aria-label="detector timelines">']
    for seg in segments:
        parts.append(f'<rect class="segment" x="{x(float(seg["start_s"])):.1f}" y="0" '
                     f'width="{max(x(float(seg["end_s"])) - x(float(seg["start_s"])), 1):.1f}" '
                     f'height="{ROW_H * len(rows)}"><title>{escape(_segment_title(seg))}</title></rect>')
    for i, (label, windows) in enumerate(rows):
        top = i * ROW_H + 4
        bottom = top + ROW_H - 10
        y = lambda s: bottom - (bottom - top) * min(max(s, 0.0), 1.0)  # noqa: E731,B023
        parts.append(f'<text class="label" x="4" y="{top + (ROW_H - 10) / 2 + 4:.1f}">{escape(label)}</text>')
        parts.append(f'<rect class="band" x="{PAD_L}" y="{top}" width="{plot_w}" height="{bottom - top}"/>')
        for start, end in flagged_windows(windows):
            parts.append(f'<rect class="flagged" x="{x(start):.1f}" y="{top}" width="{max(x(end) - x(start), 1):.1f}"'
                         f' height="{bottom - top}"><title>{start:.1f}–{end:.1f} s flagged</title></rect>')
        parts.append(f'<line class="threshold" x1="{PAD_L}" x2="{WIDTH - PAD_R}" y1="{y(FLAG_THRESHOLD):.1f}" '
                     f'y2="{y(FLAG_THRESHOLD):.1f}"/>')
        points = []
        for w in sorted(windows, key=lambda w: float(w["start_s"])):
            score = _num(w.get("score"))
            if score is None:
                continue
            points += [f"{x(float(w['start_s'])):.1f},{y(score):.1f}", f"{x(float(w['end_s'])):.1f},{y(score):.1f}"]
        if points:
            parts.append(f'<polyline class="score" points="{" ".join(points)}"/>')
        else:
            parts.append(f'<text class="none" x="{PAD_L + 6}" y="{top + 20}">no timeline</text>')
    axis_y = ROW_H * max(len(rows), 1) + 4
    step = _nice_step(duration)
    t = 0.0
    while t <= duration + 1e-9:
        parts.append(f'<text class="tick" x="{x(t):.1f}" y="{axis_y + 14}">{t:g} s</text>')
        t += step
    parts.append("</svg>")
    return Markup("".join(parts))


def _segment_title(seg: Mapping[str, Any]) -> str:
    who = ", ".join(str(d) for d in seg.get("detectors") or [])
    why = "; ".join(str(r) for r in seg.get("reasons") or [])
    return f"{float(seg['start_s']):.1f}–{float(seg['end_s']):.1f} s, score {float(seg.get('score') or 0):.2f}" + (
        f" ({who})" if who else "") + (f": {why}" if why else "")


def _nice_step(span: float) -> float:
    for step in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600):
        if span / step <= 8:
            return float(step)
    return span / 8


def spread_svg(snapshots: Sequence[Mapping[str, Any]]) -> Markup | None:
    """Views (line) and views per hour (bars) over time; None with fewer than one snapshot."""
    points = []
    for snap in snapshots:
        try:
            moment = parse_moment(snap["@timestamp"]).timestamp()  # type: ignore[union-attr]
        except (KeyError, ValueError, AttributeError):
            continue
        points.append((moment, _num(snap.get("views")), _num(snap.get("views_per_hour"))))
    if not points:
        return None
    height, plot_w, top, bottom = 180, WIDTH - 70 - PAD_R, 10, 150
    t0, t1 = points[0][0], max(points[-1][0], points[0][0] + 1)
    vmax = max((p[1] or 0 for p in points), default=0) or 1
    rmax = max((p[2] or 0 for p in points), default=0) or 1
    bar_w = max(plot_w / max(len(points), 1) * 0.6, 2)
    margin = bar_w / 2 + 2  # bars stay inside the plot
    x = lambda t: 70 + margin + (plot_w - 2 * margin) * (t - t0) / (t1 - t0)  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="spread" viewBox="0 0 {WIDTH} {height}" width="100%" '
             f'role="img" aria-label="spread over time">',
             f'<rect class="band" x="70" y="{top}" width="{plot_w}" height="{bottom - top}"/>']
    for moment, _, rate in points:
        if rate is not None:
            h = (bottom - top) * max(rate, 0) / rmax
            parts.append(f'<rect class="rate" x="{x(moment) - bar_w / 2:.1f}" y="{bottom - h:.1f}" width="{bar_w:.1f}" '
                         f'height="{h:.1f}"><title>{rate:,.0f} views/hour</title></rect>')
    line = [f"{x(m):.1f},{bottom - (bottom - top) * v / vmax:.1f}" for m, v, _ in points if v is not None]
    if line:
        parts.append(f'<polyline class="views" points="{" ".join(line)}"/>')
    parts += [f'<text class="tick" x="2" y="{top + 10}">{vmax:,.0f} views</text>',
              f'<text class="tick rate-label" x="2" y="{top + 26}">{rmax:,.0f} /h</text>',
              f'<text class="tick" x="70" y="{bottom + 16}">{escape(_when(t0))}</text>',
              f'<text class="tick" x="{WIDTH - PAD_R - 130}" y="{bottom + 16}">{escape(_when(t1))}</text>',
              "</svg>"]
    return Markup("".join(parts))


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")
