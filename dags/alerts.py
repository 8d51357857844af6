"""
### Alerts

Every run refreshes each followed video's risk (manipulation score × views per hour), then evaluates the alert rules
(`VIGIL_ALERT_RULES`, default `infra/alerts/rules.yaml`) as Elasticsearch queries over `vigil-videos`:

- **risk**: a flagged video spreading fast;
- **cluster_member**: a new re-upload of a flagged video;
- **acceleration**: a flagged video whose views per hour keep growing.

An alert is written to `vigil-alerts` once per rule and video within the rule's cooldown (its id is derived from
rule, video and time window, so a rerun never duplicates it), then posted to the webhooks in `VIGIL_ALERT_WEBHOOKS`
as Slack-compatible JSON. Delivery is recorded on the alert (`state`, `notified.*`).

Schedule: whenever refresh_spread updates the `vigil_spread` asset, and on the timer `VIGIL_ALERT_SCHEDULE`
(default every 15 minutes).
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag, task

from pipeline.airflow import SPREAD, alert_schedule  # SPREAD: written by refresh_spread; a change runs the alerts


@dag(
    dag_id="alerts",
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable(alert_schedule(), timezone="UTC"), assets=[SPREAD]),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=14),
    tags=["vigil", "alerts"],
    doc_md=__doc__,
    default_args={"owner": "vigil", "retries": 2, "retry_delay": timedelta(seconds=30)},
)
def alerts() -> None:
    """Evaluate the rules, then notify (the module docstring is the doc_md)."""
    @task
    def evaluate() -> list[dict[str, Any]]:
        """Refresh risk, run every rule, write the new alerts."""
        from pipeline import load_settings
        from pipeline.alerts import evaluate

        return evaluate(load_settings())

    @task
    def notify(new_alerts: list[dict[str, Any]]) -> dict[str, Any]:
        """Post the new alerts to the webhooks and record the delivery."""
        from pipeline import load_settings
        from pipeline.alerts import notify

        return notify(new_alerts, load_settings())

    notify(evaluate())


alerts()
