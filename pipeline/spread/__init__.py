"""Spread tracking: re-poll public counters of active videos (yt-dlp metadata, no download), snapshots in
``vigil-spread``, latest counters and derived metrics (views per hour, acceleration, engagement rate, overperformance,
risk) on ``vigil-videos``, and re-upload clusters from perceptual hashes of keyframes.

The Airflow DAG ``dags/refresh_spread.py`` maps `poll` over hosts; `run_refresh` does the same in one process for
`vigil spread`. When a video is read again: ``_schedule`` (checkpoints by age, promoted by risk). Nothing here
imports ``detectors``. Metric definitions: ``_metrics``; clustering: ``_cluster``.
"""
from __future__ import annotations

from ._cluster import Member, assign_clusters, cluster_id_of, cluster_stats
from ._cycle import (
    RefreshSummary,
    backlog,
    report_backlog,
    hash_media,
    poll,
    run_refresh,
    select_active,
    summarize,
    update_clusters,
    update_metrics,
)
from ._index import SpreadIndex
from ._metrics import (
    Snapshot,
    SpreadMetrics,
    compute_metrics,
    engagement_rate,
    expected_views,
    overperformance,
    risk_of,
    trimmed_mean,
    views_at_age,
)
from ._phash import PhashError, phash_distance, video_phash
from ._poll import HostRateLimiter, Observation, host_key, poll_videos, settings_for_host
from ._schedule import NextPoll, PollSchedule

__all__ = [
    # the refresh's steps
    "select_active", "poll", "update_metrics", "hash_media", "update_clusters", "backlog", "report_backlog",
    "summarize", "run_refresh", "RefreshSummary", "PollSchedule", "NextPoll",
    # metrics
    "Snapshot", "SpreadMetrics", "compute_metrics", "engagement_rate", "views_at_age", "trimmed_mean",
    "expected_views", "overperformance", "risk_of",
    # perceptual hash and clusters
    "video_phash", "phash_distance", "PhashError", "Member", "assign_clusters", "cluster_id_of", "cluster_stats",
    # polling and storage
    "Observation", "HostRateLimiter", "poll_videos", "settings_for_host", "host_key", "SpreadIndex",
]
