"""
### Crawl trending political video

Every run reads the watchlist named by `VIGIL_WATCHLIST` and, for each entry (mapped: one task per entry),
lists the platform search, feed or page with yt-dlp and reads each new video's metadata: title, description,
channel, upload time and public counters. Nothing is downloaded at that stage.

`triage` then drops videos already in `vigil-videos`, scores political relevance (sentence encoder + keyword
lexicon), refuses videos whose declared size or duration is over the caps, and ranks the rest by growth (views
per hour, weighed against the channel's usual) so the per-run download budget (`VIGIL_CRAWL_MAX_DOWNLOADS`) goes
to the fastest-spreading. `download` (mapped: one task per video) fetches each chosen video within the caps,
checks it is a video, stores it by sha256 and queues a `vigil.job/1` for the detectors.

Every video ends with a document in `vigil-videos` whose `status` (queued, skipped, refused, failed) and
`status_reason` say what happened and why; `summarize` logs the counts.

Schedule: `VIGIL_CRAWL_SCHEDULE` (default every 30 minutes). Network safety: `VIGIL_ALLOWED_PRIVATE_NETWORKS`,
`VIGIL_DOMAIN_ALLOWLIST`.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import dag, task


def _parse_settings() -> tuple[str, int]:
    """Schedule and task retries from settings (environment or settings file only: cheap, nothing else runs)."""
    from pipeline import ConfigError, load_settings
    from pipeline._settings import DEFAULT_CRAWL_SCHEDULE

    try:
        settings = load_settings()
    except ConfigError:
        return DEFAULT_CRAWL_SCHEDULE, 2  # the tasks report the configuration error when they run
    return settings.crawl_schedule, settings.crawl_task_retries


SCHEDULE, RETRIES = _parse_settings()


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
    def load_entries() -> list[dict[str, Any]]:
        """The watchlist's entries (validated here: an invalid watchlist fails the run at once, without retries)."""
        from airflow.sdk.exceptions import AirflowFailException

        from pipeline import ConfigError, load_settings
        from pipeline.crawl import load_entries

        try:
            return load_entries(load_settings())
        except ConfigError as exc:  # retrying cannot fix a configuration
            raise AirflowFailException(str(exc)) from exc

    @task(max_active_tis_per_dagrun=4)
    def discover(entry: dict[str, Any]) -> dict[str, Any]:
        """One watchlist entry: list it, skip known videos, read the new ones' metadata."""
        from pipeline import load_settings
        from pipeline.crawl import discover

        return discover(entry, load_settings())

    @task
    def triage(results: list[dict[str, Any]]) -> dict[str, Any]:
        """Dedupe, relevance, declared caps, trending rank and the download budget."""
        from pipeline import load_settings
        from pipeline.crawl import triage

        return triage(list(results), load_settings())

    @task
    def chosen(triaged: dict[str, Any]) -> list[dict[str, Any]]:
        """The videos triage gave the download budget to, best first."""
        return list(triaged["to_download"])

    @task(max_active_tis_per_dagrun=2, retry_delay=timedelta(seconds=30))
    def download(candidate: dict[str, Any]) -> dict[str, Any]:
        """One video: download within caps, verify, store, queue the job, index the document."""
        from pipeline import load_settings
        from pipeline.crawl import download

        return download(candidate, load_settings())

    @task(trigger_rule="none_failed")
    def summarize(triaged: dict[str, Any], downloads: list[dict[str, Any]] | None) -> dict[str, Any]:
        """Counts per status and reason, logged and returned."""
        from pipeline.crawl import summarize

        return summarize(triaged, list(downloads or []))

    triaged = triage(discover.expand(entry=load_entries()))
    downloads = download.expand(candidate=chosen(triaged))
    summarize(triaged, downloads)


crawl_trending()
