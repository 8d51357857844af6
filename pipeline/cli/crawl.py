"""`vigil crawl`: one crawl cycle now, outside Airflow."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .._exceptions import VigilError

from ._shared import console, err_console, settings_or_exit

__all__ = ["register"]


def crawl(
    watchlist: Annotated[Optional[Path], typer.Option("--watchlist", "-w", help="watchlist YAML (default: "
                                                      "VIGIL_WATCHLIST)", exists=True, dir_okay=False)] = None,
    max_downloads: Annotated[Optional[int], typer.Option(
        "--max-downloads", min=0, help="download budget of this run (default: settings)")] = None,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="write the run's summary here as JSON",
                                                      dir_okay=False)] = None,
) -> None:
    """Run one crawl cycle now, outside Airflow: discover, score relevance, rank, download, queue.

    Prints a summary table (discovered / relevant / downloaded / refused and why). Exit 1 if an entry could not be
    read."""
    import json

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .._text import markup_escape, printable
    from ..crawl import crawl_table, run_cycle

    settings = settings_or_exit()
    if max_downloads is not None:
        settings = settings.model_copy(update={"crawl_max_downloads": max_downloads})
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("[dim]{task.fields[what]}"), console=err_console, transient=True) as progress:
        tasks: dict[str, int] = {}

        def report(stage: str, done: int, total: int, what: str) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total or None, what="")
            # titles are platform text: the column renders markup, so they are escaped
            progress.update(tasks[stage], completed=done, total=total or None, what=markup_escape(printable(what)[:60]))

        try:
            summary = run_cycle(settings, watchlist, progress=report)
        except VigilError as exc:
            progress.stop()
            err_console.print(f"[red]crawl failed:[/red] {markup_escape(exc)}")
            raise typer.Exit(1) from exc
    if json_path is not None:
        # before the table: whatever a title holds, the summary is written
        json_path.write_text(json.dumps(summary.to_dict(), indent=2, default=str, ensure_ascii=False),
                             encoding="utf-8")
    console.print(crawl_table(summary))
    if json_path is not None:
        console.print(f"wrote {markup_escape(json_path)}")
    if summary.entry_errors:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add these commands to the `vigil` app."""
    app.command()(crawl)
