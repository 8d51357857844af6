"""The `vigil` command line. Each command imports what it needs when it runs, so the Airflow environment (no
detectors) and the worker environment (no Airflow) share one entry point."""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from ._exceptions import ConfigError, VigilError
from ._settings import Settings, get_settings

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
        from ._text import markup_escape

        err_console.print(f"[red]{what} failed:[/red] {markup_escape(exc)}")
        raise typer.Exit(1) from exc


def settings_or_exit() -> Settings:
    try:
        return get_settings()
    except ConfigError as exc:
        err_console.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc


@app.command()
def setup() -> None:
    """Create the Kafka topics and apply the Elasticsearch templates and indices (safe to run again)."""
    from ._setup import run_setup

    settings = settings_or_exit()
    with exit_on_error("setup"):
        report = run_setup(settings)
    table = Table(title="vigil setup", show_lines=False)
    for column in ("kind", "name", "action", "detail"):
        table.add_column(column)
    for change in report.topics:
        table.add_row("kafka-topic", change.topic, f"[{ACTION_STYLE[change.action]}]{change.action}", change.detail)
    for item in report.elasticsearch:
        table.add_row(item.kind, item.name, f"[{ACTION_STYLE[item.action]}]{item.action}", item.detail)
    console.print(table)
    console.print("changed something" if report.changed else "nothing to change: already set up")


def status_checks(settings: Settings) -> list[Any]:
    """What `vigil status` checks here: what both sides share, and the worker side's own (torch device, face mesh,
    model checkpoints) where this is the worker environment, else a line saying they do not apply."""
    from ._setup import not_here_checks, run_status, worker_side

    checks = run_status(settings)
    if not worker_side():
        return checks + not_here_checks()
    from .worker.status import worker_checks

    return checks + worker_checks(settings)


@app.command()
def status() -> None:
    """Check Kafka, Elasticsearch and the media store; say what is wrong and how to fix it. Exit 1 on a problem."""
    settings = settings_or_exit()
    checks = status_checks(settings)
    table = Table(title="vigil status")
    for column in ("", "dependency", "detail", "how to fix"):
        table.add_column(column, overflow="fold")
    for check in checks:
        table.add_row("[green]ok[/green]" if check.ok else "[red]FAIL[/red]", check.name, check.detail, check.hint)
    console.print(table)
    if not all(check.ok for check in checks):
        raise typer.Exit(1)


def _serve_logging(settings: Settings) -> None:
    from ._observe import configure_logging

    configure_logging(settings.log_format, level=min(logging.getLogger().level, logging.INFO))


@app.command()
def worker() -> None:
    """Run a detector worker: jobs from Kafka → decode → detectors (batched across videos) → results. Stop: SIGTERM."""
    settings = settings_or_exit()
    _serve_logging(settings)
    from .worker import run_worker

    with exit_on_error("worker"):
        run_worker(settings)


@app.command()
def sink() -> None:
    """Run the Elasticsearch sink: results from Kafka → vigil-detections and vigil-videos. Stop: SIGTERM."""
    settings = settings_or_exit()
    _serve_logging(settings)
    from .sink import run_sink

    with exit_on_error("sink"):
        run_sink(settings)


@app.command()
def submit(
    target: Annotated[str, typer.Argument(help="a local video file or a video page URL")],
    uid: Annotated[Optional[str], typer.Option("--uid", help="video_uid to use (default: derived)")] = None,
    allow_local: Annotated[bool, typer.Option("--allow-local", help="read a file outside VIGIL_SUBMIT_LOCAL_ROOTS")
                           ] = False,
) -> None:
    """Queue one video for the workers: a file is hashed and copied into the media store, a URL downloaded. Only
    files that decode as video are stored (mode 0640)."""
    from ._submit import submit_target

    settings = settings_or_exit()
    with exit_on_error("submit"):
        job = submit_target(target, settings, video_uid=uid, allow_local=allow_local)
    console.print(f"queued {job.video_uid} on {settings.topic_jobs}: {job.media_uri} (sha256 {job.media_sha256})")


@app.command()
def scan(
    target: Annotated[str, typer.Argument(help="a local video file or a video page URL")],
    json_path: Annotated[Optional[Path], typer.Option("--json", help="write the full vigil.result/1 here",
                                                      dir_okay=False)] = None,
    report: Annotated[Optional[Path], typer.Option("--report", help="write PNG plots of the evidence here",
                                                   file_okay=False)] = None,
) -> None:
    """Analyse one video now, without Kafka or Elasticsearch: download → decode → faces → detectors → verdict."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from .scan import result_table, run_scan, segments_table

    settings = settings_or_exit()
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err_console,
                  transient=True) as progress:
        task = progress.add_task("starting", total=None)
        try:
            outcome = run_scan(target, settings, json_path=json_path, report_dir=report,
                               progress=lambda stage: progress.update(task, description=stage))
        except VigilError as exc:
            progress.stop()
            err_console.print(f"[red]scan failed:[/red] {exc}")
            raise typer.Exit(1) from exc
    console.print(result_table(outcome.message))
    if (stretches := segments_table(outcome.message)) is not None:  # the manipulated stretches, where there are any
        console.print(stretches)
    for path in outcome.files:
        console.print(f"wrote {path}")


from typing import TYPE_CHECKING  # noqa: E402

if TYPE_CHECKING:  # worker-side types, for annotations only
    from detectors import Suite
    from detectors import ItemResult


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


@app.command("eval")
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


@app.command()
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
            from ._elasticsearch import make_es_client
            from .console._training import verdict_items

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


@app.command()
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

    from ._text import markup_escape, printable
    from .crawl import crawl_table, run_cycle

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


@app.command()
def version() -> None:
    """Print Vigil's version."""
    from . import __version__

    console.print(__version__)


def _register_more() -> None:
    """Commands that live in modules of their own (each has a ``register(app)``)."""
    from . import _cli_console, _cli_dlq, _cli_models, _cli_persons, _cli_spread, _cli_watchlist

    for module in (_cli_spread, _cli_dlq, _cli_models, _cli_console, _cli_persons, _cli_watchlist):
        module.register(app)


_register_more()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
