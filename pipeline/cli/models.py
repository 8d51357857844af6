"""`vigil models list|pull|verify|export`: checkpoints as managed, verified artefacts.

    list     what each model detector is configured with and what this machine holds of it (no download, no weights)
    pull     fetch the configured checkpoints at their revisions into the hub cache (or --to DIR), with progress bars
    verify   load each through the detectors' own loader, run it on generated media, print the label mapping;
             exit 1 on any problem (LABEL_0-style labels, custom code, not applicable on a talking head, …)
    export   copy the pulled checkpoints into DIR for a node without network (HF_HUB_CACHE=DIR HF_HUB_OFFLINE=1)

Registered on the main app by `register`; each command imports the detectors when it runs (worker side only).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

__all__ = ["register"]

Names = Annotated[Optional[list[str]], typer.Argument(help="model detectors (default: all)", show_default=False)]


def _size(n: int | None) -> str:
    if n is None:
        return "—"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _inventory(names: list[str] | None, **kwargs: Any) -> list[Any]:
    from . import _shared as cli
    from detectors import inventory

    settings = cli.settings_or_exit()
    with cli.exit_on_error("models"):
        return inventory(settings, names, **kwargs)


def list_models(
    names: Names = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """Each model detector: checkpoint, revision, resolved commit, local path, size, labels and which mean
    fake/event, device and dtype. Reads the local hub cache only."""
    from . import _shared as cli
    from detectors import describe_meaning

    entries = _inventory(names)
    if as_json:
        cli.console.print_json(json.dumps([e.as_dict() for e in entries]))
        return
    table = Table(title="vigil models")
    for column in ("detector", "checkpoint", "revision", "commit / hash", "local path", "size", "labels (◀ read)",
                   "device", "note"):
        table.add_column(column, overflow="fold")
    for e in entries:
        r = e.resolved
        table.add_row(e.name, e.checkpoint or "—", e.revision or ("main" if e.configured else "—"),
                      (r.commit or r.identity) if r else "—", str(r.path) if r else "—",
                      _size(r.size_bytes) if r else "—", describe_meaning(e) if e.labels else "—",
                      f"{e.device} {e.dtype}", f"[red]{e.problem}[/red]" if e.problem else (e.note or ""))
    cli.console.print(table)
    if any(e.problem for e in entries):
        raise typer.Exit(1)


def pull(
    names: Names = None,
    to: Annotated[Optional[Path], typer.Option("--to", help="hub-cache directory to fill instead of the HF cache",
                                               file_okay=False)] = None,
) -> None:
    """Fetch the configured checkpoints at their pinned revisions (config, preprocessor config, weights; safetensors
    where present) into the hub cache or --to DIR."""
    from . import _shared as cli
    from detectors import hub_cache_dir, is_offline

    if is_offline():
        cli.err_console.print("[red]pull needs the hub:[/red] HF_HUB_OFFLINE is set (unset it, or use "
                              "`vigil models export` from a machine that pulled)")
        raise typer.Exit(1)
    entries = [e for e in _inventory(names, download=True, cache_dir=to) if e.configured]
    if not entries:
        cli.err_console.print("no model detector is configured: set VIGIL_FACE_FORGERY_CHECKPOINT, "
                              "VIGIL_VOICE_SYNTHETIC_CHECKPOINT or VIGIL_NONVERBAL_CHECKPOINT")
        raise typer.Exit(1)
    table = Table(title=f"vigil models pull → {to or hub_cache_dir()}")
    for column in ("detector", "checkpoint", "revision", "commit / hash", "files", "size", "note"):
        table.add_column(column, overflow="fold")
    for e in entries:
        r = e.resolved
        table.add_row(e.name, e.checkpoint or "", e.revision or "main", (r.commit or r.identity) if r else "—",
                      ", ".join(r.files) if r else "—", _size(r.size_bytes) if r else "—",
                      f"[red]{e.problem}[/red]" if e.problem else (e.note or "ok"))
    cli.console.print(table)
    if any(e.problem for e in entries):
        raise typer.Exit(1)


def verify(names: Names = None) -> None:
    """Load each configured checkpoint through the detectors' own loader, run it on generated media and print its
    label mapping; exit 1 on any problem."""
    from . import _shared as cli
    from detectors import describe_meaning, verify_models

    settings = cli.settings_or_exit()
    with cli.exit_on_error("models verify"):
        findings = verify_models(settings, names)
    if not findings:
        cli.err_console.print("[red]nothing to verify:[/red] no model detector is configured")
        raise typer.Exit(1)
    table = Table(title="vigil models verify")
    for column in ("", "detector", "version", "labels (◀ read)", "on a generated talking head"):
        table.add_column(column, overflow="fold")
    for f in findings:
        outcome = "—"
        if f.result is not None:
            outcome = (f"score {f.result.score:.3f}, rank {f.result.rank}" if f.result.applicable
                       else f"not applicable ({f.result.evidence.get('reason')})")
        table.add_row("[green]ok[/green]" if f.ok else "[red]FAIL[/red]", f.name, f.version or "—",
                      describe_meaning(f) if f.label_map else "—", f.problem or outcome)
    cli.console.print(table)
    if not all(f.ok for f in findings):
        raise typer.Exit(1)


def export(
    dest: Annotated[Path, typer.Argument(help="directory to write (mount it on the offline node)", file_okay=False)],
    names: Names = None,
) -> None:
    """Copy the pulled checkpoints into DIR (hub-cache layout, plain files, a manifest) for a node without network."""
    from . import _shared as cli
    from detectors import export_checkpoints

    entries = [e for e in _inventory(names) if e.configured]
    missing = [e for e in entries if e.resolved is None]
    if not entries or missing:
        what = "; ".join(f"{e.name}: {e.note}" for e in missing) or "no model detector is configured"
        cli.err_console.print(f"[red]nothing to export:[/red] {what}")
        raise typer.Exit(1)
    manifest = export_checkpoints([(e.name, e.resolved) for e in entries], dest)
    cli.console.print(f"wrote {len(entries)} checkpoint(s) to {dest} ({manifest.name})")
    cli.console.print(f"on the offline node:  HF_HUB_CACHE={dest} HF_HUB_OFFLINE=1 (same checkpoint and revision "
                      "settings)")
    for e in entries:
        if e.resolved is not None and e.resolved.source == "local":
            cli.console.print(f"  {e.checkpoint_setting}={dest}/local/{(e.resolved.content_hash or '')[:16]}")


def register(app: typer.Typer) -> None:
    models = typer.Typer(name="models", no_args_is_help=True,
                         help="Model checkpoints: list, pull at pinned revisions, verify, export for offline nodes.")
    models.command("list")(list_models)
    models.command("pull")(pull)
    models.command("verify")(verify)
    models.command("export")(export)
    app.add_typer(models, name="models")
