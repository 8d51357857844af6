"""Turning rule matches into alerts: ids, cooldown, deduplication and the alert document. Pure functions.

An alert's id is derived from (rule id, subject, window): the window is the cooldown-long slice of time the alert
falls in (``floor(epoch seconds ÷ cooldown)``), so evaluating the same match twice in a slice gives the same id and
Elasticsearch keeps one document (created with ``op_type=create``). Across a slice boundary, the cooldown check on
the last alert of (rule, subject) stops a second alert until ``cooldown`` has passed since the first.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from ._rules import get_field

__all__ = ["alert_id", "window_index", "in_cooldown", "new_alerts", "alert_document"]


def window_index(rule: Any, now: datetime) -> int:
    return int(now.timestamp() // rule.cooldown.total_seconds())


def alert_id(rule_id: str, subject: str, window: int) -> str:
    """sha256 of ``rule|subject|window``, 32 hex digits."""
    return hashlib.sha256(f"{rule_id}|{subject}|{window}".encode()).hexdigest()[:32]


def in_cooldown(rule: Any, last_alert_at: datetime | None, now: datetime) -> bool:
    return last_alert_at is not None and now - last_alert_at < rule.cooldown


def new_alerts(rule: Any, hits: Iterable[Mapping[str, Any]], last_alerts: Mapping[str, datetime], now: datetime,
               ) -> list[dict[str, Any]]:
    """Alert documents for the hits that are not in cooldown (one per subject)."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for doc in hits:
        subject = rule.subject(doc)
        if subject in seen or in_cooldown(rule, last_alerts.get(subject), now):
            continue
        seen.add(subject)
        out.append(alert_document(rule, doc, now))
    return out


def alert_document(rule: Any, doc: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The ``vigil-alerts`` document of one rule match (fields per infra/elasticsearch/index/alerts.json)."""
    subject = rule.subject(doc)
    return {
        "@timestamp": now.isoformat(),
        "alert_id": alert_id(rule.id, subject, window_index(rule, now)),
        "rule": {"id": rule.id, "name": rule.name, "kind": rule.kind, "severity": rule.severity},
        "video_uid": doc.get("video_uid"),
        "cluster": {"id": get_field(doc, "cluster.id")},
        "title": doc.get("title"),
        "url": {"full": get_field(doc, "url.full")},
        "risk": doc.get("risk"),
        "fused": {"score": get_field(doc, "fused.score"), "verdict": get_field(doc, "fused.verdict")},
        "views_per_hour": get_field(doc, "spread.views_per_hour"),
        "reasons": rule.reasons(doc),
        "state": "open",
        "event": {"kind": "alert", "created": now.isoformat(), "dataset": "vigil.alerts"},
    }
