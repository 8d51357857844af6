"""The long-running services: `vigil worker` and `vigil sink`."""
from __future__ import annotations


import typer


from ._shared import exit_on_error, serve_logging, settings_or_exit

__all__ = ["register"]


def worker() -> None:
    """Run a detector worker: jobs from Kafka → decode → detectors (batched across videos) → results. Stop: SIGTERM."""
    settings = settings_or_exit()
    serve_logging(settings)
    from ..worker import run_worker

    with exit_on_error("worker"):
        run_worker(settings)


def sink() -> None:
    """Run the Elasticsearch sink: results from Kafka → vigil-detections and vigil-videos. Stop: SIGTERM."""
    settings = settings_or_exit()
    serve_logging(settings)
    from ..sink import run_sink

    with exit_on_error("sink"):
        run_sink(settings)


def register(app: typer.Typer) -> None:
    """Add these commands to the `vigil` app."""
    app.command()(worker)
    app.command()(sink)
