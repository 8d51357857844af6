"""Crawl trending political video: watchlists → discovery (yt-dlp metadata) → relevance → trending rank →
download within caps → media store → `vigil-videos`, `vigil-spread` and `vigil.jobs`.

The Airflow DAG ``dags/crawl_trending.py`` maps `discover` over a watchlist's entries and `download` over the
videos `triage` picks; `run_cycle` does the same in one process for `vigil crawl`. Nothing here imports
``detectors``; the relevance encoder (numpy, no torch) loads when relevance is first scored.
"""
from __future__ import annotations

from .._exceptions import CrawlError, DownloadFailed, DownloadRefused, UnsafeURL, WatchlistError
from ._candidate import Candidate, url_uid
from ._cycle import (
    CrawlSummary,
    TriageResult,
    crawl_table,
    discover,
    download,
    download_budget,
    load_entries,
    queue_lag,
    run_cycle,
    summarize,
    triage,
)
from ._discover import DiscoveryResult, discover_entry, video_uid
from ._download import DownloadedMedia, check_declared_caps, download_media, fetch_to_store, probe_media
from ._index import CrawlIndex, JobQueue, build_job, spread_snapshot, video_document
from ._rank import growth, rank_candidates
from ._relevance import DEFAULT_KEYWORDS, DEFAULT_TOPICS, Relevance, RelevanceScorer, apply_relevance
from ._safety import UrlPolicy, address_problem
from ._watchlist import Watchlist, WatchlistEntry, load_watchlist, parse_watchlist

__all__ = [
    # errors (also in pipeline._exceptions)
    "CrawlError", "DownloadRefused", "UnsafeURL", "DownloadFailed", "WatchlistError",
    # watchlists
    "Watchlist", "WatchlistEntry", "load_watchlist", "parse_watchlist",
    # the cycle's steps
    "load_entries", "discover", "triage", "download", "summarize", "run_cycle", "CrawlSummary", "TriageResult",
    "crawl_table", "download_budget", "queue_lag",
    # the pieces
    "Candidate", "url_uid", "video_uid", "DiscoveryResult", "discover_entry", "Relevance", "RelevanceScorer",
    "apply_relevance", "DEFAULT_TOPICS", "DEFAULT_KEYWORDS", "growth", "rank_candidates", "UrlPolicy",
    "address_problem", "DownloadedMedia", "check_declared_caps", "download_media", "probe_media", "fetch_to_store",
    "CrawlIndex", "JobQueue", "build_job", "video_document", "spread_snapshot",
]
