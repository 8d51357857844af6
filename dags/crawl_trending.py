"""
### Crawl trending political video

Every run reads the watchlists stored in Elasticsearch (`<prefix>-watchlists`, edited on the console's Watchlists
page; where none is stored, the YAML file named by `VIGIL_WATCHLIST`) and, for each entry that is not paused
(mapped: one task per entry),
lists the platform search, feed or page with yt-dlp and reads each new video's metadata: title, description,
channel, upload time and public counters, from the page's own JSON-LD or OpenGraph where it declares them.
Nothing is downloaded at that stage.

`triage` then drops videos already in `vigil-videos`, scores political relevance in any language (multilingual
sentence encoder + keyword lexicon of the detected language), refuses videos whose declared size or duration is
over the caps, and ranks the rest by growth (views per hour, weighed against the channel's usual) so the per-run
download budget goes to the fastest-spreading: the workers' queue (`vigil.jobs` lag) topped up to
`VIGIL_CRAWL_QUEUE_TARGET`, within `VIGIL_CRAWL_MIN_DOWNLOADS`..`VIGIL_CRAWL_MAX_DOWNLOADS`. `download` (mapped: one task per
video) fetches each chosen video within the caps, checks it is a video, stores it by sha256 and queues a
`vigil.job/1` for the detectors.

Every video ends with a document in `vigil-videos` whose `status` (queued, skipped, refused, failed) and
`status_reason` say what happened and why; `summarize` logs the counts, records each entry's run (found, queued,
errors, the yt-dlp extractor that read it: the entry's health, shown in the console) and updates the `vigil_videos`
asset.

Discovery and downloads run as one mapped task per platform family (`discover_youtube`, `download_other`, ...), each
in that family's pool `vigil-platform-<family>` (`airflow pools import infra/airflow/pools.json`), shared with
refresh_spread's re-polls: two DAGs never hammer one platform at once. Mapped tasks are named after their entry or
video.

Schedule: `VIGIL_CRAWL_SCHEDULE` (default every 30 minutes). Network safety: `VIGIL_ALLOWED_PRIVATE_NETWORKS`,
`VIGIL_DOMAIN_ALLOWLIST`.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import dag, task

from pipeline.airflow import FAMILIES, VIDEOS, crawl_schedule, of_family, pool_name

SCHEDULE, RETRIES = crawl_schedule()


@dag(
    dag_id="crawl_trending",
    schedule=SCHEDULE,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=25),
    tags=["vigil", "crawl"],
    doc_md=__doc__,
    default_args={
        "owner": "vigil",
        "retries": RETRIES,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=10),
    },
)
def crawl_trending() -> None:
    """Crawl the watchlist: discover, triage, download, summarize (the module docstring is the doc_md)."""
    @task
    def load_entries() -> dict[str, list[dict[str, Any]]]:
        """The watchlist's entries by platform family (validated here: an invalid watchlist fails the run at once,
        without retries)."""
        from airflow.sdk.exceptions import AirflowFailException

        from pipeline import ConfigError, load_settings
        from pipeline.airflow import by_family, entry_family
        from pipeline.crawl import load_entries

        try:
            return by_family(load_entries(load_settings()), entry_family)
        except ConfigError as exc:  # retrying cannot fix a configuration
            raise AirflowFailException(str(exc)) from exc

    @task(max_active_tis_per_dagrun=4, map_index_template="{{ entry_label }}")
    def discover(entry: dict[str, Any]) -> dict[str, Any]:
        """One watchlist entry: list it, skip known videos, read the new ones' metadata."""
        from airflow.sdk import get_current_context

        from pipeline import load_settings
        from pipeline.airflow import printable
        from pipeline.crawl import discover

        label = printable(f"{entry['kind']} {entry['target']}")[:200]
        get_current_context()["entry_label"] = label  # type: ignore[typeddict-unknown-key]
        return discover(entry, load_settings())

    @task(trigger_rule="none_failed")
    def triage(*per_family: list[dict[str, Any]] | None) -> dict[str, Any]:
        """Dedupe, relevance, declared caps, trending rank and the download budget."""
        from pipeline import load_settings
        from pipeline.airflow import gather
        from pipeline.crawl import triage

        return triage(gather(per_family), load_settings())

    @task
    def chosen(triaged: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
        """The videos triage gave the download budget to, best first, by platform family."""
        from pipeline.airflow import by_family, host_family

        return by_family(triaged["to_download"], lambda candidate: host_family(candidate["url"]))

    @task(max_active_tis_per_dagrun=2, retry_delay=timedelta(seconds=30), map_index_template="{{ video_label }}")
    def download(candidate: dict[str, Any]) -> dict[str, Any]:
        """One video: download within caps, verify, store, queue the job, index the document."""
        from airflow.sdk import get_current_context

        from pipeline import load_settings
        from pipeline.airflow import printable
        from pipeline.crawl import download

        label = printable(candidate.get("title") or candidate["url"])[:120]
        get_current_context()["video_label"] = label  # type: ignore[typeddict-unknown-key]
        return download(candidate, load_settings())

    @task(trigger_rule="none_failed", outlets=[VIDEOS])
    def summarize(entries: dict[str, list[dict[str, Any]]], triaged: dict[str, Any],
                  *per_family: list[dict[str, Any]] | None) -> dict[str, Any]:
        """Counts per status and reason, logged and returned; each entry's run recorded (its health history)."""
        from airflow.sdk import get_current_context

        from pipeline import load_settings
        from pipeline.airflow import gather
        from pipeline.crawl import summarize

        started = get_current_context()["dag_run"].start_date
        return summarize(triaged, gather(per_family), entries=sum(len(group) for group in entries.values()),
                         seconds=(pendulum.now("UTC") - started).total_seconds() if started else 0.0,
                         settings=load_settings())

    entries = load_entries()
    # one mapped task per platform family, each in that family's pool (shared with refresh_spread)
    found = [discover.override(task_id=f"discover_{family}", pool=pool_name(family)).expand(
        entry=of_family.override(task_id=f"entries_{family}")(entries, family))
             for family in FAMILIES]
    triaged = triage(*found)
    picked = chosen(triaged)
    downloads = [download.override(task_id=f"download_{family}", pool=pool_name(family)).expand(
        candidate=of_family.override(task_id=f"chosen_{family}")(picked, family)) for family in FAMILIES]
    summarize(entries, triaged, *downloads)


crawl_trending()
