"""`vigil kibana import|export`: Kibana dashboards and alerting rules as code."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


__all__ = ["register"]


kibana_app = typer.Typer(name="kibana", help="Kibana dashboards and alerting rules as code.", no_args_is_help=True)


@kibana_app.command("import")
def kibana_import(
    url: Annotated[Optional[str], typer.Option("--url", help="Kibana URL (default: VIGIL_KIBANA_URL)")] = None,
) -> None:
    """Import the data views, searches, visualizations and dashboards, and create or update the alerting rules."""
    from . import _shared as cli
    from ..kibana import run_import

    settings = cli.settings_or_exit()
    with cli.exit_on_error("kibana import"):
        report = run_import(settings, url)
    cli.console.print(f"imported {report.imported} of {report.objects} saved objects")
    for error in report.errors:
        cli.err_console.print(f"[red]{error}[/red]")
    for rule, action in report.rules.items():
        cli.console.print(f"rule {rule}: {action}")
    if not report.ok:
        raise typer.Exit(1)


@kibana_app.command("export")
def kibana_export(
    out: Annotated[Path, typer.Option("--out", help="directory for saved_objects.ndjson and rules.json")],
) -> None:
    """Write the saved objects (NDJSON) and rule bodies that `import` sends, for review or a manual import."""
    from . import _shared as cli
    from ..kibana import export_files

    settings = cli.settings_or_exit()
    for path in export_files(settings, out):
        cli.console.print(f"wrote {path}")


def register(app: typer.Typer) -> None:
    """Add the `kibana` group to the `vigil` app."""
    app.add_typer(kibana_app)
