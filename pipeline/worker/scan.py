"""`vigil scan URL|FILE`: one video through the detector suite in one process, no Kafka or Elasticsearch.

    target ─ download (a URL: the crawler's yt-dlp download, with its caps and private-address refusal)
           ─ decode ─ faces ─ detectors ─ fusion ─ table in the terminal
           ─ --json PATH: the full ``vigil.result/1`` message;  --report DIR: PNG plots of the evidence

Worker side: ``detectors`` and the crawler's download code are ordinary imports (the worker environment has both).
"""
from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from detectors import Suite, SuiteResult

from .._exceptions import VigilError
from ..crawl import Candidate, download_media, url_uid
from .._media_store import sha256_file
from .._messages import FLAG_THRESHOLD, ResultMessage, SourceMetadata, encode
from .._settings import Settings

__all__ = ["ScanError", "ScanOutcome", "run_scan", "write_report", "result_table", "persons_on_screen",
           "segments_table"]

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]


class ScanError(VigilError):
    """The target cannot be scanned: neither a file nor an http(s) URL."""


@dataclass
class ScanOutcome:
    """What a scan produced: the message, the suite's result and the files written."""

    message: ResultMessage
    result: SuiteResult
    files: list[Path] = field(default_factory=list)


def _download(url: str, settings: Settings, workdir: Path) -> Path:
    """The crawler's download: yt-dlp within ``max_download_mb`` / ``max_duration_s`` / ``max_height``, refusing
    hosts that resolve to private addresses unless ``allowed_private_networks`` exempts them."""
    media = download_media(Candidate(video_uid=url_uid(url), url=url), settings, workdir=workdir)
    return media.path


def run_scan(target: str, settings: Settings, *, json_path: Path | None = None, report_dir: Path | None = None,
             suite: Suite | None = None, progress: Progress | None = None) -> ScanOutcome:
    """Scan one local file or URL. Raises ScanError, the crawler's DownloadRefused / DownloadFailed, or the
    detectors' MediaError / ModelError."""
    say = progress or (lambda stage: None)
    path = Path(target).expanduser()
    scheme = urlsplit(target).scheme.lower()
    workdir: Path | None = None
    timings: dict[str, float] = {}
    try:
        if path.is_file():
            source_url = path.resolve().as_uri()
            platform = "file"
        elif scheme in ("http", "https"):
            say("downloading")
            workdir = Path(tempfile.mkdtemp(prefix="vigil-scan-"))
            start = time.perf_counter()
            path = _download(target, settings, workdir)
            timings["download"] = round((time.perf_counter() - start) * 1000, 2)
            source_url, platform = target, "url"
        else:
            raise ScanError(f"{target!r} is neither a file nor an http(s) URL")

        sha = sha256_file(path)

        uid = f"file:{sha[:16]}" if platform == "file" else url_uid(target)
        say("loading detectors")
        suite = suite or Suite.from_settings(settings)
        say("decoding and tracking faces")
        clip, prepared = suite.prepare(path, media_sha256=sha)
        timings.update(prepared)
        say(f"running {', '.join(suite.names)}")
        result = suite.analyse([clip])[0]
        source = SourceMetadata(platform=platform, url=source_url, title=Path(target).name if platform == "file"
                                else None)
        message = result.to_message(video_uid=uid, suite_version=suite.version, source=source,
                                    extra_timings=timings)
        files: list[Path] = []
        if report_dir is not None:
            say("plotting the report")
            files = write_report(result, Path(report_dir), message=message)
            message = message.model_copy(update={"evidence_uris": [f.resolve().as_uri() for f in files]})
        if json_path is not None:
            json_path = Path(json_path)
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps(json.loads(encode(message)), indent=2) + "\n", encoding="utf-8")
            files.append(json_path)
        return ScanOutcome(message=message, result=result, files=files)
    finally:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


def write_report(result: SuiteResult, directory: Path, *, message: ResultMessage | None = None) -> list[Path]:
    """PNG plots of a result: score timeline per detector and per-detector scores (`pipeline._evidence`, the same
    renderer for any stored result), lip-sync offset over time, correlation vs lag, and the spectrum against the
    camera band. Returns the files written."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from .._evidence import write_report as write_evidence

    directory.mkdir(parents=True, exist_ok=True)
    if message is None:
        message = result.to_message(video_uid="file:report", suite_version="report")
    written: list[Path] = write_evidence(message, directory)

    def save(fig: Any, name: str) -> None:
        path = directory / name
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)

    lipsync = result.results.get("lipsync")
    if lipsync is not None and lipsync.applicable:
        ev = lipsync.evidence
        series = ev.get("offsets") or []
        fig, ax = plt.subplots(figsize=(9, 3.5))
        if series:
            ax.plot([p["t_s"] for p in series], [p["offset_ms"] for p in series], marker="o", label="window offset")
        ax.axhline(ev.get("offset_ms", 0.0), color="red", label=f"clip offset {ev.get('offset_ms', 0):.0f} ms")
        ax.axhspan(-125, 45, color="green", alpha=0.12, label="imperceptible (ITU-R BT.1359)")
        ax.set(xlabel="time (s)", ylabel="offset (ms, > 0: audio later)", title="Lip-sync offset over time",
               xlim=(0, max(result.clip.duration_s, 1e-3)), ylim=(-1050, 1050))
        ax.legend(loc="upper right", fontsize=8)
        save(fig, "lipsync_offset.png")

        fig, ax = plt.subplots(figsize=(9, 3.5))
        ax.plot(ev.get("lag_ms", []), ev.get("correlation", []))
        ax.axvline(ev.get("offset_ms", 0.0), color="red", linestyle="--", label="peak")
        ax.set(xlabel="lag (ms, > 0: audio later than mouth)", ylabel="correlation",
               title="Mouth opening vs speech envelope: correlation by lag")
        ax.legend(loc="upper right", fontsize=8)
        save(fig, "lipsync_correlation.png")

    spectral = result.results.get("spectral")
    if spectral is not None and spectral.applicable:
        ev = spectral.evidence
        fig, ax = plt.subplots(figsize=(9, 3.5))
        freq = ev.get("frequency", [])
        ax.fill_between(freq, ev.get("reference_low_db", []), ev.get("reference_high_db", []), color="grey",
                        alpha=0.3, label="camera-like frames (mean ± 2 sd)")
        ax.plot(freq, ev.get("spectrum_db", []), color="black", label=f"this video's {ev.get('crop_source')} crops")
        ax.set(xlabel="frequency (cycles/pixel)", ylabel="power (dB, vs reference band)",
               title=f"Azimuthally averaged spectrum (score {spectral.score:.2f})")
        ax.legend(loc="lower left", fontsize=8)
        save(fig, "spectral_spectrum.png")
    return written


def result_table(message: ResultMessage) -> Any:
    """A rich table of a result: one row per detector, the fused verdict in the title, reasons in the caption."""
    from rich.table import Table

    colour = {"likely_manipulated": "red", "suspicious": "yellow", "no_signal": "green", "inconclusive": "dim"}
    fused = message.fused
    score = "n/a" if fused.score is None else f"{fused.score:.2f}"
    table = Table(title=f"[{colour[fused.verdict]}]{fused.verdict}[/] (score {score}) — {message.video_uid}",
                  caption="\n".join(fused.reasons), caption_justify="left")
    for column in ("detector", "score", "flag", "key evidence"):
        table.add_column(column, overflow="fold")
    for name, out in message.detectors.items():
        if not out.applicable:
            detail = out.error or str(out.evidence.get("reason", ""))
            table.add_row(name, "—", "[dim]n/a[/]", detail)
            continue
        ev = out.evidence
        reasons = ev.get("reasons")
        if isinstance(reasons, list) and reasons:  # each detector words its own findings
            detail = str(reasons[0])
        else:
            detail = ", ".join(f"{k}={v}" for k, v in list(ev.items())[:3] if not isinstance(v, (list, dict)))
        flagged = out.score is not None and out.score >= FLAG_THRESHOLD
        table.add_row(name, f"{out.score:.2f}", "[red]FLAG[/]" if flagged else "[green]ok[/]", detail)
    on_screen = persons_on_screen(message)
    if on_screen:
        table.add_section()
        table.add_row("on screen", "", "", on_screen)
    timing = ", ".join(f"{k} {v:.0f}" for k, v in message.timings_ms.items())
    table.add_section()
    table.add_row("timings (ms)", "", "", timing)
    return table


def persons_on_screen(message: ResultMessage) -> str:
    """Who is on screen, from the ``persons`` annotation (enrolled persons the identity detector recognised):
    ``Jane Doe (candidate): face 0.62, voice 0.41 — not her enrolled voice``; empty when nobody enrolled was seen."""
    lines = []
    for person in (message.annotations or {}).get("persons") or []:
        said = f"{person.get('name')} ({person.get('role') or 'no role'}): face {person.get('face_similarity', 0):.2f}"
        voice = person.get("voice_similarity")
        if voice is not None:
            said += f", voice {voice:.2f} — {'matches' if person.get('voice_match') else 'does not match'} the " \
                    f"enrolled voice"
        lines.append(said)
    return "\n".join(lines)


def segments_table(message: ResultMessage) -> Any:
    """A rich table of the manipulated stretches (where, score, which detectors, why); None when there are none."""
    if not message.segments:
        return None
    from rich.table import Table

    table = Table(title="[red]manipulated stretches[/]", title_justify="left")
    for column in ("from (s)", "to (s)", "score", "detectors", "why"):
        table.add_column(column, overflow="fold")
    for segment in message.segments:
        table.add_row(f"{segment.start_s:.1f}", f"{segment.end_s:.1f}", f"{segment.score:.2f}",
                      ", ".join(segment.detectors), "\n".join(segment.reasons))
    return table

