"""The analyst console: a triage queue ranked by risk, one page per video with its evidence (the media played with
range requests, each detector's timeline, face crops, provenance, persons, spread, re-upload cluster, alerts),
verdicts that outrank the models, and the same data as JSON for scripts.

    browser ─ session cookie (HttpOnly, SameSite) + CSRF token ─┐
    script  ─ Authorization: Bearer vgl_… ──────────────────────┴─▶ create_app (FastAPI) ─▶ Elasticsearch (its own
                                                                    credentials, never shown), media store (fsspec)

Accounts, tokens, sessions and the session key live in ``<prefix>-console-users`` (`Accounts`, `_sessions`), which
only the console's own Elasticsearch credentials can read; verdicts in ``<prefix>-verdicts`` and on the
video as ``analyst.*``. `serve` runs it with uvicorn. Nothing here imports ``detectors`` (analysts' verdicts as
calibration items are the worker side's: ``pipeline.worker.verdict_training``).
"""
from __future__ import annotations

from typing import Any

from ._accounts import ROLES, Accounts, User, accounts_index, check_password, make_store_client
from ._charts import flagged_windows, spread_svg, timeline_svg
from ._exceptions import AccountError, ConsoleError, LoginThrottled
from ._queries import ANALYST_VERDICTS, QueueFilters, QueueIndex, effective_score
from ._verdicts import record_verdict, verdict_document

__all__ = [
    "create_app", "serve", "Accounts", "User", "ROLES", "accounts_index", "check_password", "make_store_client",
    "QueueIndex", "QueueFilters",
    "effective_score", "ANALYST_VERDICTS", "record_verdict", "verdict_document", "timeline_svg", "spread_svg",
    "flagged_windows", "ConsoleError", "AccountError", "LoginThrottled",
]


def create_app(*args: Any, **kwargs: Any) -> Any:
    """The console's FastAPI application (see `pipeline.console._app.create_app`)."""
    from ._app import create_app as _create

    return _create(*args, **kwargs)


def serve(settings: Any, *, host: str | None = None, port: int | None = None) -> None:
    """Serve the console with uvicorn until SIGINT/SIGTERM."""
    import uvicorn

    app = create_app(settings)
    uvicorn.run(app, host=host or settings.console_host, port=port or settings.console_port, log_level="warning",
                proxy_headers=False, server_header=False)
