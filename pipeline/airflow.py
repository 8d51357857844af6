"""What Vigil's DAG files need, in one public place: schedules and retries from settings, platform families and
their pools, the Assets DAGs hand to each other, and the task that splits work by family.

DAG files (``dags/``) import from here and from the public task modules (``pipeline.crawl``, ``pipeline.spread``,
``pipeline.alerts``), never a private module. Only the Airflow side imports this module (it imports ``airflow``);
it is light: settings and pure functions, no Kafka or Elasticsearch client, nothing of ``detectors``.
"""
from __future__ import annotations

from typing import Any

from airflow.sdk import Asset, task

from ._exceptions import ConfigError
from ._platforms import FAMILIES, by_family, entry_family, gather, host_family, pool_name
from ._settings import (DEFAULT_ALERT_SCHEDULE, DEFAULT_CRAWL_SCHEDULE, DEFAULT_SPREAD_SCHEDULE, Settings,
                        load_settings)
from ._text import printable

__all__ = ["FAMILIES", "pool_name", "by_family", "entry_family", "host_family", "gather", "printable",
           "VIDEOS", "SPREAD", "of_family", "crawl_schedule", "spread_schedule", "alert_schedule", "load_settings",
           "ConfigError", "Settings"]

#: what the crawl writes: every video it decided (alerts and spread read it)
VIDEOS = Asset(name="vigil_videos", uri="vigil://elasticsearch/videos", group="vigil")
#: what the spread refresh writes: snapshots, latest counters and clusters (the alerts DAG runs when it changes)
SPREAD = Asset(name="vigil_spread", uri="vigil://elasticsearch/spread", group="vigil")


def _settings_or_none() -> Settings | None:
    """Settings from the environment or settings file (cheap, nothing else runs), or None when they do not load:
    the tasks report the configuration error when they run."""
    try:
        return load_settings()
    except ConfigError:
        return None


def crawl_schedule() -> tuple[str, int]:
    """crawl_trending's schedule and its tasks' retries."""
    settings = _settings_or_none()
    return (settings.crawl_schedule, settings.crawl_task_retries) if settings else (DEFAULT_CRAWL_SCHEDULE, 2)


def spread_schedule() -> str:
    """refresh_spread's schedule."""
    settings = _settings_or_none()
    return settings.spread_schedule if settings else DEFAULT_SPREAD_SCHEDULE


def alert_schedule() -> str:
    """The alerts DAG's timer (it also runs when the spread Asset changes)."""
    settings = _settings_or_none()
    return settings.alert_schedule if settings else DEFAULT_ALERT_SCHEDULE


@task
def of_family(groups: dict[str, list[Any]], family: str) -> list[Any]:
    """One platform family's share of work grouped by `by_family` (what that family's mapped task expands over)."""
    return list(groups.get(family) or [])
