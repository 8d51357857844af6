"""Researchers' commands: `vigil eval` (a labelled set through the suite) and `vigil calibrate` (fit the fusion
from labelled results or analysts' verdicts)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.table import Table

from .._exceptions import ConfigError
from .._settings import Settings

from ._shared import console, err_console, exit_on_error, settings_or_exit

__all__ = ["register"]


if TYPE_CHECKING:  # worker-side types, for annotations only
    from detectors import ItemResult, Suite


def _dataset_suite(settings: Settings, detectors: Optional[str]) -> Suite:
    from detectors import ModelError, Suite

    names = [n.strip() for n in detectors.split(",") if n.strip()] if detectors else None
    try:
        return Suite.from_settings(settings, names=names)
    except (ModelError, ConfigError) as exc:
        err_console.print(f"[red]cannot build the detector suite:[/red] {exc}")
        raise typer.Exit(2) from exc


def _run_dataset(dataset: Path, settings: Settings, detectors: Optional[str], batch: int
                 ) -> tuple[list[ItemResult], list[str]]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from detectors import load_dataset, run_items

    items = load_dataset(dataset)
    suite = _dataset_suite(settings, detectors)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err_console) as progress:
        task = progress.add_task(f"{dataset.name}: {', '.join(suite.names)}", total=len(items))
        results = run_items(items, suite, batch_size=batch,
                            on_progress=lambda done, total: progress.update(task, completed=done))
    return results, suite.names


def eval_(
    dataset: Annotated[Path, typer.Argument(help="folder with real/ and fake/, or a CSV path,label[,group]",
                                            exists=True)],
    out: Annotated[Path, typer.Option("--out", help="where report.json, roc.png and items.csv go", file_okay=False)],
    detectors: Annotated[Optional[str], typer.Option(help="detectors to run, comma-separated (default: the suite)")
                         ] = None,
    batch: Annotated[int, typer.Option(min=1, help="videos analysed together on the device")] = 4,
) -> None:
    """Run the detectors over labelled media; write report.json (AUC, EER, TPR at 1 % FPR per detector and fused,
    with bootstrap intervals; false-flag and flag rates; the same per group), roc.png, items.csv."""
    from detectors import write_report

    settings = settings_or_exit()
    try:
        results, names = _run_dataset(dataset, settings, detectors, batch)
    except ConfigError as exc:
        err_console.print(f"[red]eval failed:[/red] {exc}")
        raise typer.Exit(2) from exc
    report = write_report(results, out, names=names)
    table = Table(title=f"vigil eval: {report['n']} items")
    for column in ("", "AUC", "EER", "TPR@1%FPR", "applicable"):
        table.add_column(column)
    fmt = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
    for name, row in report["detectors"].items():
        table.add_row(name, fmt(row["auc"]), fmt(row["eer"]), fmt(row["tpr_at_1pct_fpr"]), str(row["n_applicable"]))
    fused = report["fused"]
    table.add_row("[bold]fused", fmt(fused["auc"]), fmt(fused["eer"]), fmt(fused["tpr_at_1pct_fpr"]),
                  f"accuracy {fmt(fused['accuracy'])}")
    console.print(table)
    if report["groups"]:
        groups = Table(title="fused, per group (flagged: fused ≥ 0.5)")
        for column in ("group", "real", "fake", "AUC", "reals flagged", "fakes flagged"):
            groups.add_column(column)
        for name, row in report["groups"].items():
            fused = row["fused"]
            groups.add_row(name, str(row["n_real"]), str(row["n_fake"]), fmt(fused["auc"]),
                           fmt(fused["false_flag_rate"]), fmt(fused["flag_rate"]))
        console.print(groups)
    console.print(f"wrote {out / 'report.json'}, {out / 'roc.png'}, {out / 'items.csv'}")


def calibrate(
    dataset: Annotated[Optional[Path], typer.Argument(
        help="folder with real/ and fake/, a CSV path,label[,group], or the items.csv of `vigil eval`", exists=True)
                       ] = None,
    out: Annotated[Path, typer.Option("--out", help="calibration JSON to write", dir_okay=False)
                   ] = Path("calibration.json"),
    base: Annotated[Optional[Path], typer.Option(help="calibration whose thresholds and unfitted parts are kept "
                                                      "(default: VIGIL_CALIBRATION_FILE or the packaged one)",
                                                 exists=True, dir_okay=False)] = None,
    detectors: Annotated[Optional[str], typer.Option(help="detectors to run, comma-separated (default: the suite)")
                         ] = None,
    batch: Annotated[int, typer.Option(min=1, help="videos analysed together on the device")] = 4,
    from_verdicts: Annotated[bool, typer.Option("--from-verdicts", help="fit on the analysts' verdicts in "
                                                "vigil-verdicts (the console) instead of a dataset")] = False,
) -> None:
    """Fit per-detector Platt scaling and fusion weights on labelled media; write the versioned calibration JSON
    (use it with VIGIL_CALIBRATION_FILE)."""
    from detectors import fit_calibration, read_items_csv, write_calibration
    from detectors import load_calibration

    settings = settings_or_exit()
    try:
        base_calibration = load_calibration(base or settings.calibration_file)
        if from_verdicts:
            from .._elasticsearch import make_es_client
            from ..worker.verdict_training import verdict_items

            with exit_on_error("calibrate"):
                results, names = verdict_items(make_es_client(settings), settings)
            dataset = Path(settings.index("verdicts"))
        elif dataset is None:
            raise ConfigError("give a DATASET, or --from-verdicts")
        elif dataset.is_file() and dataset.suffix == ".csv" and "fused_score" in dataset.read_text().split("\n", 1)[0]:
            results, names = read_items_csv(dataset)
        else:
            results, names = _run_dataset(dataset, settings, detectors, batch)
        calibration = fit_calibration(results, names, base=base_calibration, source=dataset.name)
    except ConfigError as exc:
        err_console.print(f"[red]calibrate failed:[/red] {exc}")
        raise typer.Exit(2) from exc
    write_calibration(calibration, out)
    table = Table(title=f"vigil calibrate: {calibration.version}")
    for column in ("detector", "Platt a", "Platt b", "weight"):
        table.add_column(column)
    for name, entry in calibration.detectors.items():
        platt = entry.platt
        table.add_row(name, "—" if platt is None else f"{platt.a:.3f}", "—" if platt is None else f"{platt.b:.3f}",
                      f"{entry.weight:.3f}")
    console.print(table)
    console.print(f"wrote {out}; use it with VIGIL_CALIBRATION_FILE={out}")


def register(app: typer.Typer) -> None:
    """Add these commands to the `vigil` app."""
    app.command("eval")(eval_)
    app.command()(calibrate)
