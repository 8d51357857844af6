"""Alerts: rules in YAML (``infra/alerts/rules.yaml``), evaluated as Elasticsearch queries over ``vigil-videos``,
with cooldown and deduplication; new alerts go to ``vigil-alerts`` and to Slack-compatible webhooks.

The Airflow DAG ``dags/alerts.py`` runs `evaluate` then `notify`; `run_alerts` does both in one process. The same
rules become Kibana ``.es-query`` rules through `pipeline.kibana`. Nothing here imports ``detectors``.
"""
from __future__ import annotations

from ._cycle import AlertIndex, evaluate, notify, refresh_risk, run_alerts
from ._engine import alert_document, alert_id, in_cooldown, new_alerts, window_index
from ._rules import (
    AccelerationRule,
    ClusterMemberRule,
    RiskRule,
    Rule,
    RuleSet,
    WatchedPersonRule,
    default_rules_path,
    format_duration,
    load_rules,
    parse_duration,
    parse_rules,
)
from ._webhook import Delivery, WebhookError, post_webhook, slack_payload

__all__ = [
    # rules
    "Rule", "RiskRule", "ClusterMemberRule", "AccelerationRule", "WatchedPersonRule", "RuleSet", "load_rules",
    "parse_rules",
    "default_rules_path", "parse_duration", "format_duration",
    # evaluation
    "alert_id", "window_index", "in_cooldown", "new_alerts", "alert_document",
    # the run's steps
    "evaluate", "notify", "run_alerts", "refresh_risk", "AlertIndex",
    # webhooks
    "slack_payload", "post_webhook", "Delivery", "WebhookError",
]
