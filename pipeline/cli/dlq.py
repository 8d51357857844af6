"""`vigil dlq list|show|replay`: read the dead-letter topic and send chosen messages back to their topic.

Dead letters hold the original record (key and value unchanged) with the error in ``__connect.errors.*`` headers
(pipeline.consume). ``replay`` is for messages whose cause was fixed upstream (the media put back in the store, a
mapping corrected): each goes back to the topic it came from and is processed like any new message.
"""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Optional

import typer
from rich.table import Table
from rich.text import Text

from .._time import parse_moment

__all__ = ["register"]

dlq_app = typer.Typer(help="Read the dead-letter topic; replay messages whose cause was fixed.", no_args_is_help=True)

SinceOption = Annotated[Optional[str], typer.Option(
    "--since", help="only dead letters from this time on: an ISO time (2026-12-01T08:00Z) or an age (30m, 6h, 2d)")]
ClassOption = Annotated[Optional[str], typer.Option("--error-class", help="only this error class (e.g. MediaMissing)")]
StageOption = Annotated[Optional[str], typer.Option("--stage", help="only this stage (parse, fetch, analyse, index…)")]


def parse_since(value: str | None) -> datetime | None:
    """``30m``, ``6h``, ``2d`` (ago) or an ISO 8601 time; None for None."""
    if not value:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if value[-1:] in units and value[:-1].isdigit():
        return datetime.now(UTC) - timedelta(seconds=int(value[:-1]) * units[value[-1]])
    try:
        return parse_moment(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is neither an age (30m, 6h, 2d) nor an ISO time") from exc


def _where(letter: Any) -> str:
    return f"{letter.dlq_partition}:{letter.dlq_offset}"


def _select(settings: Any, since: str | None, error_class: str | None, stage: str | None,
            ids: list[str] | None = None, limit: int | None = None) -> list[tuple[Any, Any]]:
    from ..consume import read_dead_letters

    picked = read_dead_letters(settings, since=parse_since(since), error_class=error_class, stage=stage)
    if ids:
        wanted = set(ids)
        picked = [(m, letter) for m, letter in picked if _where(letter) in wanted]
        missing = wanted - {_where(letter) for _, letter in picked}
        if missing:
            raise typer.BadParameter(f"no dead letter at {', '.join(sorted(missing))} (PARTITION:OFFSET, see "
                                     "`vigil dlq list`)")
    return picked[:limit] if limit else picked


@dlq_app.command("list")
def list_(since: SinceOption = None, error_class: ClassOption = None, stage: StageOption = None,
          limit: Annotated[int, typer.Option(help="at most this many, oldest first")] = 200,
          as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False) -> None:
    """List dead letters: where they came from, what went wrong, how often it was tried."""
    from . import _shared as cli

    settings = cli.settings_or_exit()
    with cli.exit_on_error("reading the dead-letter topic"):
        picked = _select(settings, since, error_class, stage, limit=limit)
    if as_json:
        for _, letter in picked:
            typer.echo(letter.model_dump_json(by_alias=True, exclude={"original_value"}))
        return
    table = Table(title=f"{settings.topic_dlq}: {len(picked)} dead letters")
    for column in ("id", "failed at", "from", "key", "stage", "error", "tries"):
        table.add_column(column, overflow="fold")
    for _, letter in picked:
        origin = f"{letter.original_topic}:{letter.original_partition}:{letter.original_offset}"
        table.add_row(_where(letter), letter.failed_at.strftime("%Y-%m-%d %H:%M:%S"), Text(origin),
                      Text((letter.original_key or "")[:60]), letter.stage,
                      Text(f"{letter.error_class}: {letter.error_message[:160]}"), str(letter.attempts))
    cli.console.print(table)


@dlq_app.command()
def show(dead_letter: Annotated[str, typer.Argument(help="PARTITION:OFFSET of the dead letter (`vigil dlq list`)")]
         ) -> None:
    """Show one dead letter in full: origin, error, headers and the original message."""
    from . import _shared as cli

    settings = cli.settings_or_exit()
    with cli.exit_on_error("reading the dead-letter topic"):
        picked = _select(settings, None, None, None, ids=[dead_letter])
    message, letter = picked[0]
    body = letter.model_dump(mode="json", by_alias=True)
    if letter.original_encoding == "utf-8":
        try:
            body["original_value"] = json.loads(letter.original_value)
        except ValueError:
            pass
    body["headers"] = {k: v.decode("utf-8", "replace") for k, v in (message.headers or [])}
    typer.echo(json.dumps(body, indent=2, ensure_ascii=False))


@dlq_app.command()
def replay(ids: Annotated[Optional[list[str]], typer.Argument(help="PARTITION:OFFSET of each dead letter; none: "
                                                                   "every one the filters select")] = None,
           since: SinceOption = None, error_class: ClassOption = None, stage: StageOption = None,
           dry_run: Annotated[bool, typer.Option("--dry-run", help="say what would be sent, send nothing")] = False,
           ) -> None:
    """Send dead letters back to the topic they came from (after their cause was fixed upstream)."""
    from . import _shared as cli
    from ..consume import replay as replay_letters

    settings = cli.settings_or_exit()
    if not ids and not (since or error_class or stage):
        raise typer.BadParameter("name dead letters (PARTITION:OFFSET) or select them with --since, --error-class "
                                 "or --stage; replaying the whole topic by accident is not allowed")
    with cli.exit_on_error("replay"):
        outcomes = replay_letters(settings, _select(settings, since, error_class, stage, ids=ids), dry_run=dry_run)
    table = Table(title="vigil dlq replay" + (" (dry run)" if dry_run else ""))
    for column in ("id", "to", "key", "outcome"):
        table.add_column(column, overflow="fold")
    for outcome in outcomes:
        state = "sent" if outcome.sent else (outcome.detail or "not sent")
        table.add_row(_where(outcome.letter), outcome.to_topic, Text(outcome.letter.original_key or ""), Text(state))
    cli.console.print(table)
    failed = [o for o in outcomes if not o.sent and not dry_run]
    cli.console.print(f"{sum(o.sent for o in outcomes)} sent, {len(failed)} not sent")
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(dlq_app, name="dlq")
