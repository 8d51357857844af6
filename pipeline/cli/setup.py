"""`vigil setup`, `vigil status` and `vigil version`."""
from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from .._settings import Settings

from ._shared import ACTION_STYLE, console, exit_on_error, settings_or_exit

__all__ = ["register", "status_checks"]


def setup() -> None:
    """Create the Kafka topics and apply the Elasticsearch templates and indices (safe to run again)."""
    from .._setup import run_setup

    settings = settings_or_exit()
    with exit_on_error("setup"):
        report = run_setup(settings)
    table = Table(title="vigil setup", show_lines=False)
    for column in ("kind", "name", "action", "detail"):
        table.add_column(column)
    for change in report.topics:
        table.add_row("kafka-topic", change.topic, f"[{ACTION_STYLE[change.action]}]{change.action}", change.detail)
    for item in report.elasticsearch:
        table.add_row(item.kind, item.name, f"[{ACTION_STYLE[item.action]}]{item.action}", item.detail)
    console.print(table)
    console.print("changed something" if report.changed else "nothing to change: already set up")


def status_checks(settings: Settings) -> list[Any]:
    """What `vigil status` checks here: what both sides share, and the worker side's own (torch device, face mesh,
    model checkpoints) where this is the worker environment, else a line saying they do not apply."""
    from .._setup import not_here_checks, run_status, worker_side

    checks = run_status(settings)
    if not worker_side():
        return checks + not_here_checks()
    from ..worker.status import worker_checks

    return checks + worker_checks(settings)


def status() -> None:
    """Check Kafka, Elasticsearch and the media store; say what is wrong and how to fix it. Exit 1 on a problem."""
    settings = settings_or_exit()
    checks = status_checks(settings)
    table = Table(title="vigil status")
    for column in ("", "dependency", "detail", "how to fix"):
        table.add_column(column, overflow="fold")
    for check in checks:
        table.add_row("[green]ok[/green]" if check.ok else "[red]FAIL[/red]", check.name, check.detail, check.hint)
    console.print(table)
    if not all(check.ok for check in checks):
        raise typer.Exit(1)


def version() -> None:
    """Print Vigil's version."""
    from .. import __version__

    console.print(__version__)


def register(app: typer.Typer) -> None:
    """Add these commands to the `vigil` app."""
    app.command()(setup)
    app.command()(status)
    app.command()(version)
