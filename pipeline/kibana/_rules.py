"""Kibana alerting rules equivalent to the YAML alert rules: one Elasticsearch query rule (``.es-query``) each.

The rule's ``esQuery`` is the YAML rule's filters (`Rule.filters`), its time field and window are the YAML rule's, so
Kibana searches exactly what the alerts DAG searches: Kibana adds ``timeField`` within ``timeWindowSize`` of the run
itself, as `kibana_search_body` reproduces for tests.

Per-video cooldown, expressed where Kibana can express it:

- ``groupBy: top`` on ``termField: video_uid`` makes every matching video its own alert (alert id = the uid), up to
  ``termSize`` videos a run; a group fires when more than 0 documents match.
- The cooldown is a per-action frequency, ``{"summary": false, "notify_when": "onThrottleInterval", "throttle":
  <cooldown>}`` (`action_frequency`): an alert that stays active notifies once per cooldown per video. Rule-level
  ``notify_when``/``throttle`` only limit action runs of the whole rule, and Kibana refuses them next to per-action
  frequencies, so the rules set neither. ``excludeHitsFromPreviousRun`` is off: a video still matching keeps its
  alert active (and throttled) rather than recovering and firing afresh.

Rules are created without actions (a connector is attached in Kibana); an import that updates a rule keeps the
actions attached there and gives each per-alert action the YAML cooldown as its frequency (see `_client`).

Rule kinds: whatever `pipeline.alerts` validates (a rule object brings its own `filters()` and time field), plus
kinds this module knows by name for rules given as mappings (`KINDS`): ``watched_person`` — a flagged video of a
watched person, ``persons.name`` present and ``fused.score`` ≥ ``min_score``, scored (``scored_at``) within
``window``, optionally only the enrolled ``persons`` named or the ``roles`` given (as `pipeline.alerts` words it).

Ids: a stable UUID per index prefix and YAML rule id, and per space outside the default one (rule ids are unique
across all Kibana spaces).
"""
from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .._exceptions import ConfigError
from .._settings import Settings
from ..alerts import RuleSet, format_duration, parse_duration, parse_rules

__all__ = ["kibana_rules", "kibana_rule_id", "kibana_search_body", "kibana_groups", "action_frequency", "rule_spec",
           "RuleSpec", "KINDS", "RULE_TYPE", "CONSUMER", "TERM_FIELD", "HITS"]

RULE_TYPE = ".es-query"
CONSUMER = "stackAlerts"
TERM_FIELD = "video_uid"
HITS = 100

#: the defaults of `pipeline.alerts`' rule base, for rules given as mappings of a kind it does not validate
_DEFAULTS: dict[str, Any] = {"enabled": True, "severity": "high", "window": "2h", "cooldown": "24h",
                             "check_every": "15m", "min_score": 0.5}


@dataclass(frozen=True)
class RuleSpec:
    """What a Kibana rule needs of a YAML rule."""

    id: str
    name: str
    kind: str
    severity: str
    enabled: bool
    window: timedelta
    cooldown: timedelta
    check_every: timedelta
    time_field: str
    filters: list[dict[str, Any]]


def _watched_person(params: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """Scored within the window, flagged, an enrolled person seen (only ``persons`` / ``roles`` when given)."""
    found: list[dict[str, Any]] = [{"exists": {"field": "persons.name"}},
                                   {"range": {"fused.score": {"gte": float(params["min_score"])}}}]
    for key, field_name in (("persons", "persons.name"), ("roles", "persons.role")):
        if params.get(key):
            found.append({"terms": {field_name: [str(v) for v in params[key]]}})
    return "scored_at", found


#: kinds built here from a mapping: kind -> (params with defaults) -> (time field, filters)
KINDS: dict[str, Callable[[Mapping[str, Any]], tuple[str, list[dict[str, Any]]]]] = {
    "watched_person": _watched_person,
}


def _duration_text(value: Any) -> str:
    if isinstance(value, timedelta):
        return f"{int(value.total_seconds())}s"
    raise TypeError(f"not JSON: {value!r}")


def rule_spec(rule: Any) -> RuleSpec:
    """A `RuleSpec` from a validated rule object (`pipeline.alerts`) or a mapping as written in the YAML."""
    if isinstance(rule, Mapping):
        kind = str(rule.get("kind"))
        if kind not in KINDS:  # a kind pipeline.alerts knows: validate it there, with its messages
            text = json.dumps({"rules": [dict(rule)]}, default=_duration_text)
            (validated,) = parse_rules(text, source=f"rule {rule.get('id')}").rules
            return rule_spec(validated)
        params = {**_DEFAULTS, **rule}
        missing = [k for k in ("id", "name") if not params.get(k)]
        if missing:
            raise ConfigError(f"rule {rule.get('id', '?')}: {', '.join(missing)} missing")
        if not 0 <= float(params["min_score"]) <= 1:
            raise ConfigError(f"rule {params['id']}: min_score must lie in [0, 1], not {params['min_score']!r}")
        time_field, filters = KINDS[kind](params)
        return RuleSpec(id=str(params["id"]), name=str(params["name"]), kind=kind, severity=str(params["severity"]),
                        enabled=bool(params["enabled"]), window=parse_duration(params["window"]),
                        cooldown=parse_duration(params["cooldown"]), check_every=parse_duration(params["check_every"]),
                        time_field=time_field, filters=filters)
    return RuleSpec(id=rule.id, name=rule.name, kind=rule.kind, severity=rule.severity, enabled=rule.enabled,
                    window=rule.window, cooldown=rule.cooldown, check_every=rule.check_every,
                    time_field=rule.time_field, filters=rule.filters())


def kibana_rule_id(settings: Settings, rule_id: str) -> str:
    """A stable UUID (version 4 layout, as the create-rule API asks) per index prefix, YAML rule id and, outside the
    default space, space: the same id in two spaces would be refused (404 there, then 409 on create)."""
    space = settings.kibana_space if settings.kibana_space not in (None, "", "default") else None
    key = f"vigil-rule:{settings.es_index_prefix}:{rule_id}" + (f"@{space}" if space else "")
    digest = hashlib.sha256(key.encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def _interval(value: timedelta) -> str:
    size, unit = format_duration(value)
    return f"{size}{unit}"


def action_frequency(cooldown: timedelta) -> dict[str, Any]:
    """The per-action frequency of a per-alert (per-video) action: at most one notification per cooldown."""
    return {"summary": False, "notify_when": "onThrottleInterval", "throttle": _interval(cooldown)}


def kibana_rules(settings: Settings, ruleset: RuleSet | Iterable[Any]) -> list[dict[str, Any]]:
    """``[{"id": uuid, "rule": YAML id, "body": create-rule body, "action_frequency": …}]`` for every rule
    (disabled ones are created disabled); ``action_frequency`` is what an import gives attached actions."""
    rules = ruleset.rules if isinstance(ruleset, RuleSet) else list(ruleset)
    out = []
    for spec in map(rule_spec, rules):
        size, unit = format_duration(spec.window)
        params = {
            "searchType": "esQuery",
            "index": [settings.index("videos")],
            "timeField": spec.time_field,
            "esQuery": json.dumps({"query": {"bool": {"filter": spec.filters}}}, indent=2),
            "timeWindowSize": size,
            "timeWindowUnit": unit,
            "threshold": [0],
            "thresholdComparator": ">",
            "size": HITS,
            "aggType": "count",
            "groupBy": "top",
            "termField": TERM_FIELD,
            "termSize": HITS,
            "excludeHitsFromPreviousRun": False,
            "sourceFields": [],
        }
        body = {
            "name": f"Vigil: {spec.name}",
            "rule_type_id": RULE_TYPE,
            "consumer": CONSUMER,
            "schedule": {"interval": _interval(spec.check_every)},
            "params": params,
            "actions": [],
            "tags": ["vigil", f"vigil-rule:{spec.id}", spec.kind, spec.severity],
            "enabled": spec.enabled,
        }
        out.append({"id": kibana_rule_id(settings, spec.id), "rule": spec.id, "body": body,
                    "action_frequency": action_frequency(spec.cooldown)})
    return out


def kibana_search_body(params: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The search an ``.es-query`` rule with these params runs at ``now`` (the first run, with no previous hits to
    exclude): its query and the time window filter, and with ``groupBy: top`` no hits but the ``groupAgg`` terms
    aggregation whose buckets become alerts, each with its ``topHitsAgg`` (as ``fetch_es_query.ts`` and
    ``build_agg.ts`` build it). Kibana also adds a ``bucket_selector`` for the threshold, a script: `kibana_groups`
    applies the threshold instead."""
    window = parse_duration(f"{params['timeWindowSize']}{params['timeWindowUnit']}")
    user = json.loads(params["esQuery"])["query"]
    grouped = bool(params.get("termField"))
    body: dict[str, Any] = {"query": {"bool": {"filter": [user, {"range": {params["timeField"]: {
        "lte": now.isoformat(), "gte": (now - window).isoformat(), "format": "strict_date_optional_time"}}}]}},
        "size": 0 if grouped else params["size"], "track_total_hits": True}
    if grouped:
        body["aggs"] = {
            "groupAgg": {"terms": {"field": params["termField"], "size": params.get("termSize") or HITS},
                         "aggs": {"topHitsAgg": {"top_hits": {"size": min(params["size"], 100)}}}},
            "groupAggCount": {"stats_bucket": {"buckets_path": "groupAgg._count"}}}
    return body


def kibana_groups(params: dict[str, Any], response: Mapping[str, Any]) -> list[str]:
    """The alert ids (group keys) a grouped ``.es-query`` rule raises from its search's response."""
    threshold, comparator = params["threshold"], params["thresholdComparator"]
    compare = {">": lambda v: v > threshold[0], ">=": lambda v: v >= threshold[0], "<": lambda v: v < threshold[0],
               "<=": lambda v: v <= threshold[0]}[comparator]
    return [str(b["key"]) for b in response["aggregations"]["groupAgg"]["buckets"] if compare(b["doc_count"])]
