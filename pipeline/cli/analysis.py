"""One video now: `vigil submit` (queue it for the workers) and `vigil scan` (analyse it here)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .._exceptions import VigilError

from ._shared import console, err_console, exit_on_error, settings_or_exit

__all__ = ["register"]


def submit(
    target: Annotated[str, typer.Argument(help="a local video file or a video page URL")],
    uid: Annotated[Optional[str], typer.Option("--uid", help="video_uid to use (default: derived)")] = None,
    allow_local: Annotated[bool, typer.Option("--allow-local", help="read a file outside VIGIL_SUBMIT_LOCAL_ROOTS")
                           ] = False,
) -> None:
    """Queue one video for the workers: a file is hashed and copied into the media store, a URL downloaded. Only
    files that decode as video are stored (mode 0640)."""
    from .._submit import submit_target

    settings = settings_or_exit()
    with exit_on_error("submit"):
        job = submit_target(target, settings, video_uid=uid, allow_local=allow_local)
    console.print(f"queued {job.video_uid} on {settings.topic_jobs}: {job.media_uri} (sha256 {job.media_sha256})")


def scan(
    target: Annotated[str, typer.Argument(help="a local video file or a video page URL")],
    json_path: Annotated[Optional[Path], typer.Option("--json", help="write the full vigil.result/1 here",
                                                      dir_okay=False)] = None,
    report: Annotated[Optional[Path], typer.Option("--report", help="write PNG plots of the evidence here",
                                                   file_okay=False)] = None,
) -> None:
    """Analyse one video now, without Kafka or Elasticsearch: download → decode → faces → detectors → verdict."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from ..worker.scan import result_table, run_scan, segments_table

    settings = settings_or_exit()
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err_console,
                  transient=True) as progress:
        task = progress.add_task("starting", total=None)
        try:
            outcome = run_scan(target, settings, json_path=json_path, report_dir=report,
                               progress=lambda stage: progress.update(task, description=stage))
        except VigilError as exc:
            progress.stop()
            err_console.print(f"[red]scan failed:[/red] {exc}")
            raise typer.Exit(1) from exc
    console.print(result_table(outcome.message))
    if (stretches := segments_table(outcome.message)) is not None:  # the manipulated stretches, where there are any
        console.print(stretches)
    for path in outcome.files:
        console.print(f"wrote {path}")


def register(app: typer.Typer) -> None:
    """Add these commands to the `vigil` app."""
    app.command()(submit)
    app.command()(scan)
