"""Each watchlist entry's health: one document per entry and crawl run in ``<prefix>-watchlist-runs``.

    discover (per entry: extractor, found, known, error) ─▶ triage ─▶ download ─▶ summarize ─▶ entry_runs ─▶ record

A run document holds what the entry yielded (found = listed videos, known = already decided ones, queued, refused,
failed), the entry-level error, the yt-dlp extractor that read it and the yt-dlp version. `last_runs` gives an
entry's latest runs and when it last worked; `failed_last_run` the entries whose latest run failed (`vigil status`).
"""
from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from .._elasticsearch import es_errors, make_es_client
from .._settings import Settings
from ._extractors import ytdlp_version

__all__ = ["entry_id", "entry_runs", "record_runs", "last_runs", "failed_last_run", "runs_index"]

logger = logging.getLogger(__name__)


def runs_index(settings: Settings) -> str:
    return settings.index("watchlist-runs")


def entry_id(watchlist: str, kind: str, target: str) -> str:
    """A stable id of one entry of one watchlist (its health history is kept under it)."""
    return hashlib.sha256(f"{watchlist}\n{kind}\n{target.strip()}".encode()).hexdigest()[:20]


def entry_runs(discovered: Sequence[Mapping[str, Any]], videos: Iterable[Mapping[str, Any]], *,
               when: datetime | None = None) -> list[dict[str, Any]]:
    """One run document per discovered entry, with the statuses its videos ended in this run.

    ``discovered``: triage's per-entry rows (watchlist, kind, target, name, found, known, error, extractor);
    ``videos``: every video decided or downloaded this run (with ``watchlist`` and ``entry_target``)."""
    moment = (when or datetime.now(UTC)).isoformat()
    statuses: dict[tuple[str, str], Counter[str]] = {}
    for video in videos:
        key = (str(video.get("watchlist") or ""), str(video.get("entry_target") or ""))
        statuses.setdefault(key, Counter())[str(video.get("status"))] += 1
    version = ytdlp_version()
    out = []
    for row in discovered:
        counts = statuses.get((row["watchlist"], row["target"]), Counter())
        errors = (1 if row.get("error") else 0) + counts["failed"]
        out.append({
            "@timestamp": moment, "entry_id": entry_id(row["watchlist"], row["kind"], row["target"]),
            "watchlist": row["watchlist"], "kind": row["kind"], "target": row["target"], "name": row.get("name"),
            "found": int(row.get("found") or 0), "known": int(row.get("known") or 0), "queued": counts["queued"],
            "skipped": counts["skipped"], "refused": counts["refused"], "failed": counts["failed"],
            "errors": errors, "error": row.get("error"), "ok": not row.get("error"),
            "extractor": row.get("extractor"), "ytdlp_version": version,
        })
    return out


def record_runs(settings: Settings, runs: Sequence[Mapping[str, Any]], *, es: Any = None) -> None:
    """Write the run documents (idempotent per entry and moment)."""
    if not runs:
        return
    from elasticsearch import helpers

    own = es is None
    es = es or make_es_client(settings)
    try:
        with es_errors(settings):
            helpers.bulk(es, ({"_index": runs_index(settings), "_id": f"{r['entry_id']}-{r['@timestamp']}",
                               "_source": dict(r)} for r in runs), refresh="wait_for")
    finally:
        if own:
            es.close()


def _latest(es: Any, settings: Settings, query: dict[str, Any], size: int, inner: int) -> list[dict[str, Any]]:
    body: dict[str, Any] = {"field": "entry_id"}
    if inner:
        body["inner_hits"] = {"name": "runs", "size": inner, "sort": [{"@timestamp": "desc"}]}
    with es_errors(settings):
        response = es.options(ignore_status=404).search(
            index=runs_index(settings), query=query, collapse=body, sort=[{"@timestamp": "desc"}], size=size)
    if response.meta.status == 404:
        return []
    return list(response["hits"]["hits"])


def last_runs(es: Any, settings: Settings, *, watchlist: str | None = None, per_entry: int = 5
              ) -> dict[str, dict[str, Any]]:
    """{entry id: {"runs": latest runs first, "last_worked": time of the latest run without error}}."""
    query: dict[str, Any] = {"term": {"watchlist": watchlist}} if watchlist else {"match_all": {}}
    out: dict[str, dict[str, Any]] = {}
    for hit in _latest(es, settings, query, 1000, per_entry):
        runs = [h["_source"] for h in hit["inner_hits"]["runs"]["hits"]["hits"]]
        out[hit["_source"]["entry_id"]] = {"runs": runs, "last_worked": None}
    ok_query = {"bool": {"filter": [query, {"term": {"ok": True}}]}}
    for hit in _latest(es, settings, ok_query, 1000, 0):
        if hit["_source"]["entry_id"] in out:
            out[hit["_source"]["entry_id"]]["last_worked"] = hit["_source"]["@timestamp"]
    return out


def failed_last_run(es: Any, settings: Settings) -> list[dict[str, Any]]:
    """The latest run of every entry whose latest run failed."""
    return [hit["_source"] for hit in _latest(es, settings, {"match_all": {}}, 1000, 0) if not hit["_source"]["ok"]]
