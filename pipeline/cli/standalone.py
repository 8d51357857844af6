"""`vigil standalone`: the whole job on one machine (local stack, setup, a worker, the sink, the crawl, spread and
alert cycles, the console)."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

__all__ = ["register"]


def standalone(
    watchlist: Annotated[Optional[str], typer.Option("--watchlist", "-w", help="watchlist YAML the crawl cycle reads "
                                                     "(default VIGIL_WATCHLIST; none: no crawl)")] = None,
    host: Annotated[Optional[str], typer.Option(help="console address (default VIGIL_CONSOLE_HOST)")] = None,
    port: Annotated[Optional[int], typer.Option(min=1, max=65535, help="console port (default VIGIL_CONSOLE_PORT)")
                    ] = None,
) -> None:
    """Run the main job on this machine: local stack (when VIGIL_ES_URL is unset), setup, a worker, the sink, the
    crawl / spread / alerts cycles on their schedules, and the console. Ctrl-C stops all of it."""
    from ._shared import exit_on_error, settings_or_exit
    from ..standalone import run_standalone

    settings = settings_or_exit()
    with exit_on_error("standalone"):
        code = run_standalone(settings, watchlist=watchlist, host=host, port=port)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add `standalone` to the `vigil` app."""
    app.command("standalone")(standalone)
