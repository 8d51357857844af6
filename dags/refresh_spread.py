"""
### Refresh spread

Every run re-reads the public counters (views, likes, comments, reposts) of the videos Vigil still follows (first
seen within `VIGIL_SPREAD_ACTIVE_DAYS`, status queued or scored) whose next reading is due: checkpoints at fixed ages
after publication (`VIGIL_SPREAD_CHECKPOINTS_H`, default 15 min, 1 h, 5 h, 24 h; then every `VIGIL_SPREAD_DAILY_H`),
sooner for a risky video or one an analyst judged manipulated (`VIGIL_SPREAD_PROMOTE_RISK`, every
`VIGIL_SPREAD_PROMOTE_INTERVAL_H`), most overdue first, at most `VIGIL_SPREAD_MAX_VIDEOS` a run. `summarize` reports
the backlog: readings due and checkpoints missed (later than `VIGIL_SPREAD_DEADLINE_SHARE` of their age), a warning
when any were, and a message to `VIGIL_ALERT_WEBHOOKS` from `VIGIL_SPREAD_BACKLOG_ALERT` missed ones on. Counters are
read from listings first where several followed videos share one that shows them (`VIGIL_SPREAD_LISTINGS`: their
channel's page, the feed they were found on; it also takes the videos inside their early window), then from each
video's page, with yt-dlp for metadata only (nothing is downloaded), one mapped task per host so per-host rate limits
(`VIGIL_SPREAD_MIN_INTERVAL_S`, `VIGIL_SPREAD_HOST_INTERVALS`) hold; cookies files and proxies can be set per host
(`VIGIL_SPREAD_COOKIES_FILES`, `VIGIL_SPREAD_PROXIES`).

`update_metrics` writes one `vigil-spread` snapshot per video and the video's latest counters and metrics
(`spread.*` in `vigil-videos`): views per hour, acceleration, engagement rate, overperformance against the channel's
usual views at the same age, and risk (manipulation score × views per hour). Counters a platform withholds are
null, never 0. `hash_media` takes a perceptual hash of newly stored media; `update_clusters` groups re-uploads across
platforms and accounts (`cluster.*`) over the whole index, and updates the `vigil_spread` asset (the alerts DAG
runs on it). Re-polls run as one mapped task per platform family (`poll_youtube`, ..., named after their host), each
in that family's pool `vigil-platform-<family>`, shared with crawl_trending.

Schedule: `VIGIL_SPREAD_SCHEDULE` (default every 5 minutes: the 1 h checkpoint is read within 6 minutes).
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import dag, task

from pipeline.airflow import FAMILIES, SPREAD, of_family, pool_name, spread_schedule


@dag(
    dag_id="refresh_spread",
    schedule=spread_schedule(),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=55),
    tags=["vigil", "spread"],
    doc_md=__doc__,
    default_args={"owner": "vigil", "retries": 2, "retry_delay": timedelta(minutes=1),
                  "retry_exponential_backoff": True, "max_retry_delay": timedelta(minutes=10)},
)
def refresh_spread() -> None:
    """Re-poll, measure, hash, cluster (the module docstring is the doc_md)."""
    @task
    def select_active() -> dict[str, list[list[dict[str, Any]]]]:
        """Videos still followed: one batch per host, grouped by platform family."""
        from pipeline import load_settings
        from pipeline.airflow import by_family, host_family
        from pipeline.spread import select_active

        return by_family(select_active(load_settings()), lambda batch: host_family(batch[0]["url"]))

    @task(max_active_tis_per_dagrun=4, map_index_template="{{ host_label }}")
    def poll(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One host's videos: read their counters (metadata only), rate-limited."""
        from airflow.sdk import get_current_context

        from pipeline import load_settings
        from pipeline.spread import poll
        from pipeline.spread import host_key

        label = f"{host_key(batch[0]['url'])} ({len(batch)} videos)" if batch else "no videos"
        get_current_context()["host_label"] = label  # type: ignore[typeddict-unknown-key]
        return poll(batch, load_settings())

    @task(trigger_rule="none_failed")
    def update_metrics(*per_family: list[list[dict[str, Any]]] | None) -> list[dict[str, Any]]:
        """Snapshots and the videos' latest counters and metrics."""
        from pipeline import load_settings
        from pipeline.airflow import gather
        from pipeline.spread import update_metrics

        flat = [o for batch in gather(per_family) for o in batch]
        return update_metrics(flat, load_settings())

    @task
    def hash_media() -> list[str]:
        """Perceptual hashes of newly stored media."""
        from pipeline import load_settings
        from pipeline.spread import hash_media

        return hash_media(load_settings())

    @task(outlets=[SPREAD])
    def update_clusters(hashed: list[str]) -> dict[str, Any]:
        """Re-upload clusters and their reach."""
        from pipeline import load_settings
        from pipeline.spread import update_clusters

        return update_clusters(hashed, load_settings())

    @task
    def summarize(rows: list[dict[str, Any]], hashed: list[str], clusters: dict[str, Any]) -> dict[str, Any]:
        """Counts and the backlog (readings due, checkpoints missed), logged and returned."""
        from pipeline import load_settings
        from pipeline.spread import backlog, report_backlog, summarize

        settings = load_settings()
        pending = backlog(settings)
        report_backlog(settings, pending)  # missed checkpoints: a message to the alert webhooks
        return summarize(rows, hashed, clusters, pending)

    active = select_active()
    # one mapped task per platform family, each in that family's pool (shared with crawl_trending)
    polled = [poll.override(task_id=f"poll_{family}", pool=pool_name(family)).expand(
        batch=of_family.override(task_id=f"hosts_{family}")(active, family))
              for family in FAMILIES]
    rows = update_metrics(*polled)
    hashed = hash_media()
    rows >> hashed  # clusters read the counters this run wrote
    summarize(rows, hashed, update_clusters(hashed))


refresh_spread()
