"""One crawl cycle, as steps the Airflow DAG maps and `vigil crawl` runs in one process:

    load_entries ─▶ discover (per entry) ─▶ triage (dedupe, relevance, caps, rank, budget) ─▶ download (per video)
                                                                                            ─▶ summarize

Every step takes and returns JSON-friendly values. Each video ends with a document in `vigil-videos` whose status
says what happened (queued, skipped, refused, failed) and why; downloaded ones also get a `vigil.job/1` message.
"""
from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .._exceptions import ConfigError, DownloadFailed, DownloadRefused
from .._media_store import MediaStore
from .._settings import Settings
from ._candidate import Candidate
from ._discover import DiscoveryResult, discover_entry
from ._download import check_declared_caps, fetch_to_store
from ._health import entry_runs, record_runs
from ._index import RETRYABLE_REASONS, CrawlIndex, JobQueue, build_job
from ._rank import rank_candidates
from ._relevance import RelevanceScorer, apply_relevance
from ._safety import UrlPolicy
from ._watchlist import Watchlist, WatchlistEntry, load_watchlist

__all__ = ["CrawlSummary", "load_entries", "discover", "triage", "download", "summarize", "run_cycle",
           "TriageResult", "Progress"]

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int, str], None]  # (stage, done, total, what)


def _noop(stage: str, done: int, total: int, what: str) -> None:
    return


def watchlist_path(settings: Settings, path: str | Path | None = None) -> Path:
    chosen = path or settings.watchlist
    if not chosen:
        raise ConfigError("no watchlist: set VIGIL_WATCHLIST (or pass --watchlist)")
    return Path(chosen)


def load_entries(settings: Settings, path: str | Path | None = None) -> list[dict[str, Any]]:
    """The entries to crawl as dicts (one per mapped discovery task), each with its watchlist's name; paused ones
    are left out.

    ``path`` given: that YAML file. Otherwise the watchlists stored in ``<prefix>-watchlists`` (the console's), and
    only where none is stored, the file named by ``VIGIL_WATCHLIST``."""
    if path is None:
        from ._stored import entries_from_store

        stored, entries = entries_from_store(settings)
        if stored:
            return entries
        if not settings.watchlist:
            raise ConfigError("no watchlist: add one in the console (Watchlists), `vigil watchlist import FILE`, "
                              "or set VIGIL_WATCHLIST")
    watchlist = load_watchlist(watchlist_path(settings, path), extractors=settings.ytdlp_extractors,
                               max_entries=settings.watchlist_max_entries)
    return [{"watchlist": watchlist.name, **e.model_dump(mode="json")} for e in watchlist.entries if not e.paused]


def discover(entry: dict[str, Any], settings: Settings, *, index: CrawlIndex | None = None) -> dict[str, Any]:
    """Discover one entry; videos already in the index are skipped before their pages are read."""
    data = dict(entry)
    watchlist = data.pop("watchlist", "watchlist")
    own = index is None
    index = index or CrawlIndex(settings)
    try:
        result = discover_entry(WatchlistEntry(**data), settings, watchlist=watchlist, known_uids=index.known,
                                known_urls=index.known_urls)
    finally:
        if own:
            index.close()
    return result.to_xcom()


def download_budget(settings: Settings, lag: int | None) -> int:
    """Downloads this run may make: enough to top the workers' queue up to ``crawl_queue_target`` jobs, within
    ``crawl_min_downloads``..``crawl_max_downloads``. Workers that keep up get the whole budget; a queue already
    past its target gets the minimum (the most viral videos still go in; the rest wait for the next run, ranked
    again). Without a target, or when the lag cannot be read, ``crawl_max_downloads``."""
    ceiling = settings.crawl_max_downloads
    if not settings.crawl_queue_target or lag is None:
        return ceiling
    return min(ceiling, max(settings.crawl_min_downloads, settings.crawl_queue_target - lag))


def queue_lag(settings: Settings) -> int | None:
    """Jobs on the jobs topic the workers have not taken yet, or None when Kafka cannot say (the constant budget
    then applies; the downloads' own job production reports an outage)."""
    if not settings.crawl_queue_target:
        return None
    from .._kafka import consumer_lag

    try:
        return consumer_lag(settings, settings.worker_group, settings.topic_jobs)
    except Exception as exc:  # noqa: BLE001 - an unknown lag leaves the constant budget, never a failed run
        logger.warning("workers' queue lag unknown (%s): the download budget is crawl_max_downloads", exc)
        return None


@dataclass
class TriageResult:
    """What triage decided: candidates to download (best first) and counts of the rest (already written)."""

    to_download: list[dict[str, Any]] = field(default_factory=list)
    decided: list[dict[str, Any]] = field(default_factory=list)  # uid, status, status_reason
    discovered: int = 0
    known: int = 0
    duplicates: int = 0
    relevant: int = 0
    entry_errors: list[str] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    #: per entry: watchlist, kind, target, name, found, known, error, extractor (its health, see _health)
    entries: list[dict[str, Any]] = field(default_factory=list)
    budget: int = 0  # downloads this run may make (download_budget)
    queue_lag: int | None = None  # jobs waiting for the workers when it was set (None: not known)

    def to_xcom(self) -> dict[str, Any]:
        return asdict(self)


def triage(results: Sequence[dict[str, Any]], settings: Settings, *, index: CrawlIndex | None = None,
           scorer: RelevanceScorer | None = None, progress: Progress = _noop) -> dict[str, Any]:
    """Dedupe, score relevance, check declared caps, rank and spend the download budget; write the decided ones."""
    out = TriageResult()
    own = index is None
    index = index or CrawlIndex(settings)
    try:
        return _triage(results, settings, index, scorer, progress, out).to_xcom()
    finally:
        if own:
            index.close()


def _triage(results: Sequence[dict[str, Any]], settings: Settings, index: CrawlIndex,
            scorer: RelevanceScorer | None, progress: Progress, out: TriageResult) -> TriageResult:
    discovered = [DiscoveryResult.from_xcom(r) for r in results]
    for result in discovered:
        out.known += len(result.known)
        if result.error:
            out.entry_errors.append(f"{result.entry.label}: {result.error}")
        out.entries.append({"watchlist": result.watchlist, "kind": result.entry.kind, "target": result.entry.target,
                            "name": result.entry.name, "found": len(result.candidates) + len(result.known),
                            "known": len(result.known), "error": result.error, "extractor": result.extractor})
    unique: dict[str, Candidate] = {}
    for result in discovered:
        for candidate in result.candidates:
            out.discovered += 1
            if candidate.video_uid in unique:  # the same video from two entries: keep the first, merge tags
                out.duplicates += 1
                first = unique[candidate.video_uid]
                first.tags = sorted(set(first.tags) | set(candidate.tags))
                continue
            unique[candidate.video_uid] = candidate
    existing = index.lookup(unique)
    candidates: list[Candidate] = []
    for uid, candidate in unique.items():
        source = existing.get(uid)
        if source is not None and not str(source.get("status_reason") or "").startswith(RETRYABLE_REASONS):
            out.known += 1
            continue
        if source is not None and source.get("first_seen"):
            candidate.first_seen = source["first_seen"]
        candidates.append(candidate)

    started = time.monotonic()
    progress("relevance", 0, len(candidates), "scoring political relevance")
    scorer = scorer or RelevanceScorer.shared(settings)
    apply_relevance(candidates, scorer, settings.relevance_threshold)
    out.timings_s["relevance"] = round(time.monotonic() - started, 3)
    progress("relevance", len(candidates), len(candidates), "scored")

    started = time.monotonic()
    open_ = [c for c in candidates if not c.decided]
    out.relevant = len(open_) + sum(1 for c in candidates if c.decided and c.relevance_score is not None
                                    and c.status != "skipped")
    for candidate in open_:
        try:
            check_declared_caps(candidate, settings)
        except DownloadRefused as exc:
            candidate.decide("refused", str(exc))
    rankable = [c for c in candidates if c.relevance_score is not None and c.status != "skipped"]
    known_rates = index.channel_rates(c.channel_id for c in rankable if c.channel_id)
    ordered = rank_candidates(rankable, known_rates=known_rates)
    out.queue_lag = queue_lag(settings)
    budget = out.budget = download_budget(settings, out.queue_lag)
    for candidate in ordered:
        if candidate.decided:
            continue
        if len(out.to_download) < budget:
            out.to_download.append(candidate.to_xcom())
        else:
            candidate.decide("skipped", f"download budget of {budget} per run spent (rank {candidate.rank}); "
                                        "tried again next run")
    out.timings_s["rank"] = round(time.monotonic() - started, 3)

    decided = [c for c in candidates if c.decided]
    started = time.monotonic()
    index.write(decided)
    out.timings_s["index"] = round(time.monotonic() - started, 3)
    out.decided = [{"video_uid": c.video_uid, "status": c.status, "status_reason": c.status_reason,
                    "title": c.title, "watchlist": c.watchlist, "entry_target": c.entry_target} for c in decided]
    logger.info("triage: %d discovered, %d known, %d relevant, %d to download (budget %d, workers' queue %s), "
                "%d decided", out.discovered, out.known, out.relevant, len(out.to_download), out.budget,
                out.queue_lag, len(decided))
    return out


def download(candidate: dict[str, Any], settings: Settings, *, index: CrawlIndex | None = None,
             jobs: JobQueue | None = None, store: MediaStore | None = None,
             policy: UrlPolicy | None = None) -> dict[str, Any]:
    """Download, store, queue and index one candidate. Video problems are recorded; service outages raise."""
    c = Candidate(**candidate)
    own_index, own_jobs = index is None, jobs is None
    index = index or CrawlIndex(settings)
    try:
        store = store or MediaStore.from_settings(settings)
        try:
            fetch_to_store(c, settings, store, policy=policy)
        except DownloadRefused as exc:
            c.decide("refused", str(exc))
        except DownloadFailed as exc:
            c.decide("failed", str(exc))
        if not c.decided:
            jobs = jobs or JobQueue(settings)
            started = time.monotonic()
            jobs.send(build_job(c))  # durable before the document says queued
            c.timings_ms["queue"] = round((time.monotonic() - started) * 1000, 1)
            c.decide("queued", f"downloaded ({c.media_bytes:,} bytes), waiting for the detectors")
        else:
            logger.warning("%s %s", c.video_uid, c.status_reason)
        index.write([c])
    finally:
        if own_jobs and jobs is not None:
            jobs.close()
        if own_index:
            index.close()
    return {"video_uid": c.video_uid, "status": c.status, "status_reason": c.status_reason, "title": c.title,
            "media_sha256": c.media_sha256, "media_uri": c.media_uri, "timings_ms": c.timings_ms,
            "watchlist": c.watchlist, "entry_target": c.entry_target}


def _reason_kind(reason: str | None) -> str:
    """"refused: larger than 200 MB cap (350 MB)" → "refused: larger than 200 MB cap"."""
    return re.sub(r"\s*\([^()]*\)(;.*)?$", "", reason or "").strip() or "(no reason)"


@dataclass
class CrawlSummary:
    """Counts of one cycle and the reasons behind each status."""

    entries: int = 0
    discovered: int = 0
    known: int = 0
    duplicates: int = 0
    relevant: int = 0
    downloaded: int = 0
    skipped: int = 0
    refused: int = 0
    failed: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    entry_errors: list[str] = field(default_factory=list)
    videos: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    timings_s: dict[str, float] = field(default_factory=dict)
    entry_runs: list[dict[str, Any]] = field(default_factory=list)  # one health row per entry (see _health)
    budget: int | None = None  # downloads the run could make (download_budget)
    queue_lag: int | None = None  # jobs waiting for the workers when the budget was set

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(triaged: dict[str, Any], downloads: Sequence[dict[str, Any]], *, entries: int = 0,
              seconds: float = 0.0, timings_s: dict[str, float] | None = None,
              settings: Settings | None = None) -> dict[str, Any]:
    """The cycle's summary (also logged): counts per status and per reason, and each entry's run (recorded in
    ``<prefix>-watchlist-runs`` when ``settings`` are given)."""
    videos = list(triaged["decided"]) + list(downloads)
    runs = entry_runs(triaged.get("entries") or [], videos)
    if settings is not None:
        record_runs(settings, runs)
    statuses = Counter(v["status"] for v in videos)
    reasons = Counter(_reason_kind(v["status_reason"]) for v in videos if v["status"] != "queued")
    summary = CrawlSummary(
        entries=entries, discovered=triaged["discovered"], known=triaged["known"],
        duplicates=triaged["duplicates"], relevant=triaged["relevant"], downloaded=statuses["queued"],
        skipped=statuses["skipped"], refused=statuses["refused"], failed=statuses["failed"],
        reasons=dict(reasons.most_common()), entry_errors=list(triaged["entry_errors"]), videos=videos,
        seconds=round(seconds, 3), timings_s={**triaged.get("timings_s", {}), **(timings_s or {})}, entry_runs=runs,
        budget=triaged.get("budget"), queue_lag=triaged.get("queue_lag"))
    logger.info("crawl: %d discovered, %d already known, %d relevant, %d downloaded, %d skipped, %d refused, "
                "%d failed; reasons %s", summary.discovered, summary.known, summary.relevant, summary.downloaded,
                summary.skipped, summary.refused, summary.failed, summary.reasons)
    for error in summary.entry_errors:
        logger.warning("watchlist entry not read: %s", error)
    return summary.to_dict()


def run_cycle(settings: Settings, watchlist: str | Path | Watchlist | None = None, *,
              progress: Progress = _noop, scorer: RelevanceScorer | None = None) -> CrawlSummary:
    """One whole cycle in this process (what `vigil crawl` runs): the same steps as the DAG, one after another."""
    started = time.monotonic()
    if isinstance(watchlist, Watchlist):
        entries = [{"watchlist": watchlist.name, **e.model_dump(mode="json")} for e in watchlist.entries
                   if not e.paused]
    else:
        entries = load_entries(settings, watchlist)
    index = CrawlIndex(settings)
    jobs: JobQueue | None = None
    timings: dict[str, float] = {}
    try:
        results = []
        t = time.monotonic()
        for i, entry in enumerate(entries):
            progress("discover", i, len(entries), entry["target"])
            results.append(discover(entry, settings, index=index))
        progress("discover", len(entries), len(entries), "done")
        timings["discover"] = round(time.monotonic() - t, 3)
        triaged = triage(results, settings, index=index, scorer=scorer, progress=progress)
        downloads = []
        todo = triaged["to_download"]
        t = time.monotonic()
        store = MediaStore.from_settings(settings)
        policy = UrlPolicy.from_settings(settings)
        for i, candidate in enumerate(todo):
            progress("download", i, len(todo), candidate.get("title") or candidate["url"])
            if jobs is None:
                jobs = JobQueue(settings)
            downloads.append(download(candidate, settings, index=index, jobs=jobs, store=store, policy=policy))
        progress("download", len(todo), len(todo), "done")
        timings["download"] = round(time.monotonic() - t, 3)
    finally:
        if jobs is not None:
            jobs.close()
        index.close()
    summary = summarize(triaged, downloads, entries=len(entries), seconds=time.monotonic() - started,
                        timings_s=timings, settings=settings)
    return CrawlSummary(**summary)


def crawl_table(summary: CrawlSummary) -> Any:
    """A rich table of one cycle: counts, then each reason with how many videos it applies to (platform text is
    shown as it is, never as markup or terminal controls)."""
    from rich.table import Table

    from .._text import plain

    table = Table(title=f"vigil crawl: {summary.entries} watchlist entries in {summary.seconds:.1f} s")
    table.add_column("", overflow="fold")
    table.add_column("videos", justify="right")
    budget = "" if summary.budget is None else f" (budget {summary.budget}" + (
        "" if summary.queue_lag is None else f"; {summary.queue_lag} jobs were waiting for the workers") + ")"
    rows = [("discovered", summary.discovered), ("already known (skipped before reading)", summary.known),
            ("relevant", summary.relevant), (f"[green]downloaded and queued[/green]{budget}", summary.downloaded),
            ("skipped", summary.skipped), ("[yellow]refused[/yellow]", summary.refused),
            ("[red]failed[/red]", summary.failed)]
    for label, count in rows:
        table.add_row(label, str(count))
    if summary.reasons:
        table.add_section()
        for reason, count in summary.reasons.items():
            style = {"refused": "yellow", "failed": "red"}.get(reason.split(":", 1)[0], "dim")
            table.add_row(plain(reason, style), str(count))
    if summary.entry_errors:
        table.add_section()
        for error in summary.entry_errors:
            table.add_row(plain(f"entry {error}", "red"), "")
    return table
