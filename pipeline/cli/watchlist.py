"""`vigil watchlist check [FILE...]`: which extractor of the installed yt-dlp reads each entry (of the files, or of
the stored watchlists); exit 1 when an entry cannot be read (a removed search key, a URL no allowed extractor claims),
with what to write instead. `vigil watchlist import FILE`, `export NAME`, `list`: the stored watchlists
(``<prefix>-watchlists``, what the console edits and the crawl reads). Registered on the main app by `register`."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from .._text import plain

__all__ = ["register"]

watchlist_app = typer.Typer(name="watchlist", help="Check, import and export watchlists.", no_args_is_help=True)


@watchlist_app.command("check")
def check(files: Annotated[Optional[list[Path]], typer.Argument(
        help="watchlist YAML files (default: the stored watchlists)", exists=True, dir_okay=False)] = None) -> None:
    """Check every entry against the installed yt-dlp: the extractor that reads it, or why none does."""
    from . import _shared as cli
    from ..crawl._extractors import check_entry, ytdlp_version
    from ..crawl._stored import WatchlistStore
    from ..crawl._watchlist import Watchlist, load_watchlist

    settings = cli.settings_or_exit()
    lists: list[tuple[str, Watchlist]] = []
    with cli.exit_on_error("checking watchlists"):
        if files:
            # the file's own validity first; the extractors per entry below
            lists = [(str(path), load_watchlist(path, extractors=None)) for path in files]
        else:
            with WatchlistStore(settings) as store:
                lists = [(settings.index("watchlists"), w) for w in store.all()]
    if not lists:
        cli.err_console.print("no watchlist is stored: `vigil watchlist import FILE` or the console's Watchlists page")
        raise typer.Exit(1)
    failed = False
    for path, watchlist in lists:
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


@watchlist_app.command("import")
def import_(file: Annotated[Path, typer.Argument(help="watchlist YAML", exists=True, dir_okay=False)],
            name: Annotated[Optional[str], typer.Option(help="store it under this name (default: the file's)")
                            ] = None) -> None:
    """Store a YAML watchlist in Elasticsearch (replaces the stored one of that name); the crawl reads it next run."""
    from . import _shared as cli
    from ..crawl._stored import WatchlistStore

    settings = cli.settings_or_exit()
    with cli.exit_on_error(f"importing {file}"), WatchlistStore(settings) as store:
        text = file.read_text(encoding="utf-8")
        saved = store.import_yaml(text, by="vigil watchlist import", name=name, default_name=file.stem)
    cli.console.print(plain(f"stored {saved.name} ({len(saved.entries)} entries) in {settings.index('watchlists')}"))


@watchlist_app.command("export")
def export(name: Annotated[str, typer.Argument(help="a stored watchlist")],
           out: Annotated[Optional[Path], typer.Option("--out", "-o", help="write here (default: stdout)",
                                                       dir_okay=False)] = None) -> None:
    """Write a stored watchlist in the YAML format."""
    from . import _shared as cli
    from ..crawl._stored import WatchlistStore, watchlist_yaml

    settings = cli.settings_or_exit()
    with cli.exit_on_error("export"), WatchlistStore(settings) as store:
        watchlist = store.get(name)
    if watchlist is None:
        cli.err_console.print(plain(f"no stored watchlist {name!r}", "red"))
        raise typer.Exit(1)
    text = watchlist_yaml(watchlist)
    if out is None:
        print(text, end="")
    else:
        out.write_text(text, encoding="utf-8")
        cli.console.print(plain(f"wrote {out}"))


@watchlist_app.command("list")
def list_() -> None:
    """The stored watchlists and their entries (paused ones marked)."""
    from . import _shared as cli
    from ..crawl._stored import WatchlistStore

    settings = cli.settings_or_exit()
    with cli.exit_on_error("list"), WatchlistStore(settings) as store:
        lists = store.all()
    table = Table(title=f"{settings.index('watchlists')}")
    for column in ("watchlist", "kind", "target", "limit", "tags", ""):
        table.add_column(column, overflow="fold")
    for watchlist in lists:
        for entry in watchlist.entries:
            table.add_row(plain(watchlist.name), entry.kind, plain(entry.target), str(entry.limit or "—"),
                          plain(", ".join(entry.tags)), "paused" if entry.paused else "")
    cli.console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(watchlist_app, name="watchlist")
