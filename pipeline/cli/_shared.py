"""What every `vigil` command module shares: the app, its root options, the consoles, and turning expected
failures into one red line and an exit status."""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

from .._exceptions import ConfigError, VigilError
from .._settings import Settings, get_settings
from rich.console import Console

__all__ = ["app", "console", "err_console", "ACTION_STYLE", "exit_on_error", "settings_or_exit", "serve_logging"]

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


@contextmanager
def exit_on_error(what: str) -> Iterator[None]:
    """Turn a VigilError into one red line on stderr and exit status 1 (no traceback for expected failures)."""
    try:
        yield
    except VigilError as exc:
        from .._text import markup_escape

        err_console.print(f"[red]{what} failed:[/red] {markup_escape(exc)}")
        raise typer.Exit(1) from exc


def settings_or_exit() -> Settings:
    try:
        return get_settings()
    except ConfigError as exc:
        err_console.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc


def serve_logging(settings: Settings) -> None:
    from .._observe import configure_logging

    configure_logging(settings.log_format, level=min(logging.getLogger().level, logging.INFO))
