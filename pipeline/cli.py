"""The `vigil` command line. Each command imports what it needs when it runs, so the Airflow environment (no
detectors) and the worker environment (no Airflow) share one entry point."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from ._exceptions import ConfigError, VigilError
from ._settings import Settings, get_settings

app = typer.Typer(name="vigil", help="Find manipulated political video while it is still spreading.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_show_locals=False)
console = Console()
err_console = Console(stderr=True)

ACTION_STYLE = {"created": "green", "updated": "yellow", "unchanged": "dim", "skipped": "dim", "warning": "red"}


@app.callback()
def _root(
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML settings file (sets VIGIL_CONFIG)",
                                                   exists=True, dir_okay=False)] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="more log output (-vv for debug)")] = 0,
) -> None:
    if config is not None:
        os.environ["VIGIL_CONFIG"] = str(config)
        get_settings.cache_clear()
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # kafka-python logs every refused connection; Vigil reports the outcome itself (-vv shows them)
    for noisy in ("kafka", "elastic_transport"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose >= 2 else logging.CRITICAL)


def settings_or_exit() -> Settings:
    try:
        return get_settings()
    except ConfigError as exc:
        err_console.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc


@app.command()
def setup() -> None:
    """Create the Kafka topics and apply the Elasticsearch templates and indices (safe to run again)."""
    from ._setup import run_setup

    settings = settings_or_exit()
    try:
        report = run_setup(settings)
    except VigilError as exc:
        err_console.print(f"[red]setup failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    table = Table(title="vigil setup", show_lines=False)
    for column in ("kind", "name", "action", "detail"):
        table.add_column(column)
    for change in report.topics:
        table.add_row("kafka-topic", change.topic, f"[{ACTION_STYLE[change.action]}]{change.action}", change.detail)
    for item in report.elasticsearch:
        table.add_row(item.kind, item.name, f"[{ACTION_STYLE[item.action]}]{item.action}", item.detail)
    console.print(table)
    console.print("changed something" if report.changed else "nothing to change: already set up")


@app.command()
def status() -> None:
    """Check Kafka, Elasticsearch and the media store; say what is wrong and how to fix it. Exit 1 on a problem."""
    from ._setup import run_status

    settings = settings_or_exit()
    checks = run_status(settings)
    table = Table(title="vigil status")
    for column in ("", "dependency", "detail", "how to fix"):
        table.add_column(column, overflow="fold")
    for check in checks:
        table.add_row("[green]ok[/green]" if check.ok else "[red]FAIL[/red]", check.name, check.detail, check.hint)
    console.print(table)
    if not all(check.ok for check in checks):
        raise typer.Exit(1)


def _serve_logging(settings: Settings) -> None:
    from ._observe import configure_logging

    configure_logging(settings.log_format, level=min(logging.getLogger().level, logging.INFO))


@app.command()
def worker() -> None:
    """Run a detector worker: jobs from Kafka → decode → detectors (batched across videos) → results. Stop: SIGTERM."""
    settings = settings_or_exit()
    _serve_logging(settings)
    from .worker import run_worker

    try:
        run_worker(settings)
    except VigilError as exc:
        err_console.print(f"[red]worker failed:[/red] {exc}")
        raise typer.Exit(1) from exc


@app.command()
def sink() -> None:
    """Run the Elasticsearch sink: results from Kafka → vigil-detections and vigil-videos. Stop: SIGTERM."""
    settings = settings_or_exit()
    _serve_logging(settings)
    from .sink import run_sink

    try:
        run_sink(settings)
    except VigilError as exc:
        err_console.print(f"[red]sink failed:[/red] {exc}")
        raise typer.Exit(1) from exc


@app.command()
def submit(
    target: Annotated[str, typer.Argument(help="a local video file or a video page URL")],
    uid: Annotated[Optional[str], typer.Option("--uid", help="video_uid to use (default: derived)")] = None,
) -> None:
    """Queue one video for the workers: a file is hashed and copied into the media store, a URL downloaded."""
    from ._submit import submit_target

    settings = settings_or_exit()
    try:
        job = submit_target(target, settings, video_uid=uid)
    except VigilError as exc:
        err_console.print(f"[red]submit failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    console.print(f"queued {job.video_uid} on {settings.topic_jobs}: {job.media_uri} (sha256 {job.media_sha256})")


@app.command()
def version() -> None:
    """Print Vigil's version."""
    from . import __version__

    console.print(__version__)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
