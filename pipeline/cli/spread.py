"""Commands of spread tracking and alerts: `vigil spread`, `vigil alerts`.
Registered on the main app by `register`; each imports its package when it runs. Titles, reasons and uids are
platform text: shown with `_text.plain` (no markup, no terminal controls)."""
from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from .._text import plain

__all__ = ["register"]


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def spread() -> None:
    """Run one spread refresh now: re-poll counters (no download), snapshots, metrics, re-upload clusters."""
    from . import _shared as cli
    from ..spread import run_refresh

    settings = cli.settings_or_exit()
    with cli.exit_on_error("spread refresh"):
        summary = run_refresh(settings)
    table = Table(title="vigil spread")
    for column in ("video", "views", "views/h", "accel (views/h²)", "engagement", "overperf.", "risk", "note"):
        table.add_column(column, overflow="fold")
    for row in sorted(summary.rows, key=lambda r: -(r.get("risk") or r.get("views_per_hour") or 0)):
        table.add_row(plain(str(row.get("title") or row["video_uid"])[:60]), _fmt(row.get("views")),
                      _fmt(row.get("views_per_hour"), 1), _fmt(row.get("acceleration"), 1),
                      _fmt(row.get("engagement_rate"), 4), _fmt(row.get("overperformance"), 2),
                      _fmt(row.get("risk"), 1), plain(row.get("error") or ""))
    cli.console.print(table)
    cli.console.print(f"{summary.polled} polled, {summary.failed} failed, {summary.hashed} newly hashed, "
                      f"{summary.clusters_with_reuploads} re-upload clusters ({summary.seconds:.1f} s)")
    observed = summary.polled + summary.failed
    if observed:
        cli.console.print(f"{summary.page_reads:g} page reads for {observed} videos "
                          f"({summary.page_reads / observed:.2f} a video: videos on one page share its read)")
    if summary.due is not None:
        cli.console.print(f"backlog: {summary.due} readings due, {summary.overdue} past their deadline"
                          + (" (missed checkpoints: the refresh is not keeping up)" if summary.overdue else ""))
    if summary.failed and not summary.polled:
        raise typer.Exit(1)


def alerts() -> None:
    """Evaluate the alert rules now; write new alerts and post them to the configured webhooks."""
    from . import _shared as cli
    from ..alerts import run_alerts

    settings = cli.settings_or_exit()
    with cli.exit_on_error("alerts"):
        result = run_alerts(settings)
    table = Table(title="vigil alerts")
    for column in ("rule", "video", "risk", "reasons"):
        table.add_column(column, overflow="fold")
    for alert in result["alerts"]:
        table.add_row(plain(alert["rule"]["id"]), plain(alert["video_uid"]), _fmt(alert.get("risk"), 1),
                      plain("; ".join(alert["reasons"])))
    cli.console.print(table)
    cli.console.print(f"{len(result['alerts'])} new alerts, {result['posted']} webhook deliveries, "
                      f"{result['failed']} failed")


def register(app: typer.Typer) -> None:
    """Add these commands to the `vigil` app."""
    app.command()(spread)
    app.command()(alerts)
