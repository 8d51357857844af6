"""Kibana alerting rules equivalent to the YAML alert rules: one Elasticsearch query rule (``.es-query``) each.

The rule's ``esQuery`` is the YAML rule's filters (`Rule.filters`), its time field and window are the YAML rule's, so
Kibana searches exactly what the alerts DAG searches: Kibana adds ``timeField`` within ``timeWindowSize`` of the run
itself, as `kibana_search_body` reproduces for tests. It fires when more than 0 documents match; ``size`` hits go
to its actions. Repeats: ``excludeHitsFromPreviousRun`` and a throttle equal to the YAML cooldown. Kibana rules start
with no actions: attach a connector (Slack, email, …) in Kibana, or keep using the DAG's webhooks.
"""
from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime
from typing import Any

from .._settings import Settings
from ..alerts import RuleSet, format_duration

__all__ = ["kibana_rules", "kibana_rule_id", "kibana_search_body", "RULE_TYPE", "CONSUMER"]

RULE_TYPE = ".es-query"
CONSUMER = "stackAlerts"
HITS = 100


def kibana_rule_id(settings: Settings, rule_id: str) -> str:
    """A stable UUID (version 4 layout, as the create-rule API asks) per index prefix and YAML rule id."""
    digest = hashlib.sha256(f"vigil-rule:{settings.es_index_prefix}:{rule_id}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def _interval(value: Any) -> str:
    size, unit = format_duration(value)
    return f"{size}{unit}"


def kibana_rules(settings: Settings, ruleset: RuleSet) -> list[dict[str, Any]]:
    """``[{"id": uuid, "body": create-rule body}]`` for every rule (disabled ones are created disabled)."""
    out = []
    for rule in ruleset.rules:
        size, unit = format_duration(rule.window)
        params = {
            "searchType": "esQuery",
            "index": [settings.index("videos")],
            "timeField": rule.time_field,
            "esQuery": json.dumps({"query": {"bool": {"filter": rule.filters()}}}, indent=2),
            "timeWindowSize": size,
            "timeWindowUnit": unit,
            "threshold": [0],
            "thresholdComparator": ">",
            "size": HITS,
            "aggType": "count",
            "groupBy": "all",
            "excludeHitsFromPreviousRun": True,
            "sourceFields": [],
        }
        body = {
            "name": f"Vigil: {rule.name}",
            "rule_type_id": RULE_TYPE,
            "consumer": CONSUMER,
            "schedule": {"interval": _interval(rule.check_every)},
            "params": params,
            "actions": [],
            "tags": ["vigil", f"vigil-rule:{rule.id}", rule.kind, rule.severity],
            "enabled": rule.enabled,
            "notify_when": "onThrottleInterval",
            "throttle": _interval(rule.cooldown),
        }
        out.append({"id": kibana_rule_id(settings, rule.id), "rule": rule.id, "body": body})
    return out


def kibana_search_body(params: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The search an ``.es-query`` rule with these params runs at ``now``: its query and the time window filter."""
    from ..alerts import parse_duration

    window = parse_duration(f"{params['timeWindowSize']}{params['timeWindowUnit']}")
    user = json.loads(params["esQuery"])["query"]
    return {"query": {"bool": {"filter": [user, {"range": {params["timeField"]: {
        "lte": now.isoformat(), "gte": (now - window).isoformat(), "format": "strict_date_optional_time"}}}]}},
        "size": params["size"]}
