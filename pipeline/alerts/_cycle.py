"""One alerts run, as steps the Airflow DAG runs and `run_alerts` runs in one process:

    evaluate (refresh risk, run each rule's query, cooldown, write new alerts) ─▶ notify (webhooks, record delivery)

An alert document is written (``state: open``) before it is posted, so a crash between the two never loses an alert;
a notify retry posts only alerts not yet ``notified``.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from elasticsearch import Elasticsearch, helpers

from .._elasticsearch import es_errors, make_es_client
from .._exceptions import ServiceUnavailable
from .._settings import Settings
from ..spread._metrics import risk_of
from ._engine import new_alerts
from ._rules import RuleSet, get_field, load_rules
from ._webhook import Delivery, post_webhook, slack_payload
from .._time import utcnow as _utcnow

__all__ = ["evaluate", "notify", "run_alerts", "refresh_risk", "AlertIndex", "MAX_HITS"]

logger = logging.getLogger(__name__)

MAX_HITS = 500
HIT_FIELDS = ["video_uid", "title", "url.full", "platform", "channel", "fused", "spread", "risk", "cluster",
              "first_seen", "analyst", "scored_at", "persons"]


class AlertIndex:
    """The alerts' reads and writes on Elasticsearch."""

    def __init__(self, settings: Settings, es: Elasticsearch | None = None) -> None:
        self.settings = settings
        self._own = es is None
        self.es = es or make_es_client(settings)
        self.videos = settings.index("videos")
        self.alerts = settings.index("alerts")

    def close(self) -> None:
        if self._own:
            self.es.close()

    def search_videos(self, query: Mapping[str, Any]) -> list[dict[str, Any]]:
        with es_errors(self.settings):
            response = self.es.search(index=self.videos, query=dict(query), size=MAX_HITS, source_includes=HIT_FIELDS,
                                      track_total_hits=False, sort=[{"video_uid": "asc"}])
        return [hit["_source"] for hit in response["hits"]["hits"]]

    def last_alerts(self, rule_id: str, subjects: Sequence[str], since: datetime) -> dict[str, datetime]:
        """Time of the latest alert of the rule per video, since ``since``."""
        if not subjects:
            return {}
        query = {"bool": {"filter": [{"term": {"rule.id": rule_id}}, {"terms": {"video_uid": sorted(set(subjects))}},
                                     {"range": {"@timestamp": {"gte": since.isoformat()}}}]}}
        with es_errors(self.settings):
            self.es.indices.refresh(index=self.alerts)
            response = self.es.search(index=self.alerts, query=query, size=0, aggs={
                "subjects": {"terms": {"field": "video_uid", "size": len(subjects)},
                             "aggs": {"last": {"max": {"field": "@timestamp"}}}}})
        out = {}
        for bucket in response["aggregations"]["subjects"]["buckets"]:
            out[bucket["key"]] = datetime.fromtimestamp(bucket["last"]["value"] / 1000, UTC)
        return out

    def create(self, alerts: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Create alert documents (id = alert_id); an id that exists already is a duplicate and is skipped."""
        if not alerts:
            return []
        actions = [{"_op_type": "create", "_index": self.alerts, "_id": a["alert_id"], "_source": dict(a)}
                   for a in alerts]
        with es_errors(self.settings):
            _, errors = helpers.bulk(self.es, actions, raise_on_error=False, refresh=True)
        duplicates = {e["create"]["_id"] for e in errors if e.get("create", {}).get("status") == 409}
        others = [e for e in errors if e.get("create", {}).get("status") != 409]
        if others:
            raise ServiceUnavailable(f"Elasticsearch refused {len(others)} alerts, e.g. {others[0]}",
                                     service="elasticsearch", hint="run `vigil setup`")
        return [dict(a) for a in alerts if a["alert_id"] not in duplicates]

    def states(self, ids: Sequence[str]) -> dict[str, str]:
        if not ids:
            return {}
        with es_errors(self.settings):
            response = self.es.mget(index=self.alerts, ids=list(ids), source_includes=["state"])
        return {d["_id"]: d["_source"].get("state", "open") for d in response["docs"] if d.get("found")}

    def update(self, updates: Mapping[str, Mapping[str, Any]]) -> None:
        if not updates:
            return
        actions = [{"_op_type": "update", "_index": self.alerts, "_id": k, "doc": dict(v)} for k, v in updates.items()]
        with es_errors(self.settings):
            helpers.bulk(self.es, actions, refresh=True)

    def risk_candidates(self, since: datetime) -> list[dict[str, Any]]:
        query = {"bool": {"filter": [{"exists": {"field": "fused.score"}},
                                     {"range": {"spread.updated": {"gte": since.isoformat()}}}]}}
        with es_errors(self.settings):
            response = self.es.search(index=self.videos, query=query, size=10_000, track_total_hits=False,
                                      source_includes=["video_uid", "fused.score", "spread.views_per_hour", "risk"])
        return [hit["_source"] for hit in response["hits"]["hits"]]

    def update_videos(self, updates: Mapping[str, Mapping[str, Any]]) -> None:
        if not updates:
            return
        actions = [{"_op_type": "update", "_index": self.videos, "_id": k, "doc": dict(v)} for k, v in updates.items()]
        with es_errors(self.settings):
            helpers.bulk(self.es, actions, refresh=True)


def refresh_risk(settings: Settings, index: AlertIndex, now: datetime) -> int:
    """Recompute ``risk`` where a score arrived (or changed) since the last spread refresh; returns videos updated."""
    updates = {}
    for doc in index.risk_candidates(now - timedelta(days=settings.spread_active_days)):
        risk = risk_of(get_field(doc, "fused.score"), get_field(doc, "spread.views_per_hour"))
        if risk != doc.get("risk"):
            updates[doc["video_uid"]] = {"risk": risk}
    index.update_videos(updates)
    return len(updates)


def _rules(settings: Settings, rules: RuleSet | None) -> RuleSet:
    return rules or load_rules(settings.alert_rules)


def evaluate(settings: Settings, *, now: datetime | None = None, rules: RuleSet | None = None,
             index: AlertIndex | None = None) -> list[dict[str, Any]]:
    """Run every enabled rule; write and return the alerts that are new (not duplicates, not in cooldown)."""
    now = now or _utcnow()
    ruleset = _rules(settings, rules)
    own = index is None
    index = index or AlertIndex(settings)
    created: list[dict[str, Any]] = []
    try:
        refreshed = refresh_risk(settings, index, now)
        logger.debug("risk refreshed on %d videos", refreshed)
        for rule in ruleset.enabled:
            hits = [h for h in index.search_videos(rule.query(now)) if rule.matches(h, now)]
            last = index.last_alerts(rule.id, [rule.subject(h) for h in hits], now - rule.cooldown)
            fresh = index.create(new_alerts(rule, hits, last, now))
            logger.info("rule %s: %d matches, %d new alerts", rule.id, len(hits), len(fresh))
            created.extend(fresh)
    finally:
        if own:
            index.close()
    return created


def notify(alerts: Sequence[Mapping[str, Any]], settings: Settings, *, index: AlertIndex | None = None,
           client: httpx.Client | None = None, now: datetime | None = None) -> dict[str, Any]:
    """Post each alert not yet notified to every configured webhook and record the outcome on the alert."""
    urls = [u.get_secret_value() for u in settings.alert_webhooks]
    own_index, own_client = index is None, client is None
    index = index or AlertIndex(settings)
    client = client or httpx.Client(timeout=settings.alert_webhook_timeout_s, follow_redirects=False)
    summary: dict[str, Any] = {"alerts": len(alerts), "posted": 0, "failed": 0, "skipped": 0}
    try:
        states = index.states([a["alert_id"] for a in alerts])
        updates: dict[str, dict[str, Any]] = {}
        for alert in alerts:
            if states.get(alert["alert_id"]) == "notified":
                summary["skipped"] += 1
                continue
            if not urls:
                continue
            deliveries: list[Delivery] = [post_webhook(u, slack_payload(alert), client=client,
                                                       attempts=settings.alert_webhook_attempts) for u in urls]
            errors = [f"{d.target}: {d.error}" for d in deliveries if not d.ok]
            summary["posted"] += sum(d.ok for d in deliveries)
            summary["failed"] += len(errors)
            updates[alert["alert_id"]] = {
                "state": "notified" if not errors else "notify_failed",
                "notified": {"at": (now or _utcnow()).isoformat(), "targets": [d.target for d in deliveries if d.ok],
                             "error": "; ".join(errors)[:1000] or None}}
        index.update(updates)
    finally:
        if own_client:
            client.close()
        if own_index:
            index.close()
    logger.info("alerts: %d posted, %d failed deliveries, %d already notified", summary["posted"], summary["failed"],
                summary["skipped"])
    return summary


def run_alerts(settings: Settings, *, now: datetime | None = None, rules: RuleSet | None = None,
               client: httpx.Client | None = None) -> dict[str, Any]:
    """Evaluate and notify in one process."""
    alerts = evaluate(settings, now=now, rules=rules)
    delivery = notify(alerts, settings, client=client, now=now)
    return {"alerts": alerts, **{k: v for k, v in delivery.items() if k != "alerts"}}
