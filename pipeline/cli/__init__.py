"""The `vigil` command line: one module per command group, what they share in ``_shared``; each command imports
what it needs when it runs, so the Airflow environment (no detectors) and the worker environment (no Airflow) share
one entry point (`vigil = pipeline.cli:main`).

    setup      setup, status, version           services   worker, sink
    analysis   submit, scan                     research   eval, calibrate
    crawl      crawl                            spread     spread, alerts
    kibana     kibana import|export             console    console (serve, adduser, token)
    standalone standalone                       dlq        dlq list|show|replay
    models     models list|pull|verify|export   persons    persons enroll|list|remove
    watchlist  watchlist check|import|export|list
"""
from __future__ import annotations

from . import (analysis, console, crawl, dlq, kibana, models, persons, research, services, setup, spread, standalone,
               watchlist)
from ._shared import app
from .setup import status_checks

__all__ = ["app", "main", "status_checks"]

for _module in (setup, services, analysis, research, crawl, spread, kibana, dlq, models, console, standalone, persons,
                watchlist):
    _module.register(app)


def main() -> None:
    app()
