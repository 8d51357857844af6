"""`vigil watchlist check FILE...`: which extractor of the installed yt-dlp reads each entry; exit 1 when an entry
cannot be read (a removed search key, a URL no allowed extractor claims), with what to write instead.
Registered on the main app by `register`."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ._text import plain

__all__ = ["register"]

watchlist_app = typer.Typer(name="watchlist", help="Check, import and export watchlists.", no_args_is_help=True)


@watchlist_app.command("check")
def check(files: Annotated[list[Path], typer.Argument(help="watchlist YAML files", exists=True, dir_okay=False)]
          ) -> None:
    """Check every entry against the installed yt-dlp: the extractor that reads it, or why none does."""
    from . import cli
    from .crawl._extractors import check_entry, ytdlp_version
    from .crawl._watchlist import load_watchlist

    settings = cli.settings_or_exit()
    failed = False
    for path in files:
        with cli.exit_on_error(f"checking {path}"):
            watchlist = load_watchlist(path, extractors=None)  # the file's own validity; extractors below
        table = Table(title=f"{plain(str(path))}: {watchlist.name} (yt-dlp {ytdlp_version()})")
        for column in ("", "entry", "kind", "target", "read by"):
            table.add_column(column, overflow="fold")
        problems = []
        for index, entry in enumerate(watchlist.entries, 1):
            found = check_entry(entry.kind, entry.target, settings.ytdlp_extractors)
            where = f"{index}" + (f" (line {entry.line})" if entry.line else "")
            table.add_row("[green]ok[/green]" if found.ok else "[red]FAIL[/red]", where, entry.kind,
                          plain(entry.target), plain(found.extractor or "—"))
            if not found.ok:
                problems.append(f"{path}: entry {where} {entry.target!r}: {found.problem}")
        cli.console.print(table)
        for problem in problems:
            cli.err_console.print(plain(problem, "red"))
        failed = failed or bool(problems)
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(watchlist_app, name="watchlist")
