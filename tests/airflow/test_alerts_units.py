"""Pure logic of alerts: rule validation, rule predicates, ids, cooldown and deduplication, the Slack payload, and
webhook retries against a real local receiver."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from support.spread import WebhookReceiver

from pipeline import ConfigError
from pipeline.alerts import (
    alert_id,
    in_cooldown,
    load_rules,
    new_alerts,
    parse_duration,
    parse_rules,
    post_webhook,
    slack_payload,
    window_index,
)

NOW = datetime(2026, 11, 20, 23, 0, tzinfo=UTC)

RULES = """
rules:
  - {id: risky, name: Risky, kind: risk, min_score: 0.5, min_views_per_hour: 100, min_risk: 500, window: 2h,
     cooldown: 24h}
  - {id: copies, name: Copies, kind: cluster_member, min_score: 0.6, window: 48h, cooldown: 7d}
  - {id: faster, name: Faster, kind: acceleration, min_score: 0.5, min_acceleration: 200, window: 2h, cooldown: 6h}
"""


def video(**fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"video_uid": "youtube:hot", "title": "Senator's confession", "platform": "youtube",
                           "url": {"full": "https://www.youtube.com/watch?v=hot"},
                           "fused": {"score": 0.9, "verdict": "likely_manipulated", "reasons": ["mouth lags speech"]},
                           "spread": {"views_per_hour": 2000.0, "acceleration": 50.0,
                                      "updated": (NOW - timedelta(minutes=10)).isoformat()},
                           "risk": 1800.0, "first_seen": (NOW - timedelta(days=3)).isoformat()}
    for key, value in fields.items():
        node = doc
        *parents, leaf = key.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return doc


def test_shipped_rules_are_valid() -> None:
    ruleset = load_rules()
    kinds = {r.kind for r in ruleset.rules}
    assert kinds == {"risk", "cluster_member", "acceleration", "watched_person"}
    assert all(r.cooldown >= timedelta(hours=1) for r in ruleset.rules)


@pytest.mark.parametrize(("text", "message"), [
    ("rules: [{id: a, name: A, kind: risk, min_risk: 1, window: soon}]", "rule a: window"),
    ("rules: [{id: a, name: A, kind: risk}]", "rule a: min_risk: Field required"),
    ("rules: [{id: a, name: A, kind: sneeze}]", "rule a"),
    ("rules: [{id: a, name: A, kind: risk, min_risk: 1, min_score: 2}]", "less than or equal to 1"),
    ("rules: [{id: a, name: A, kind: risk, min_risk: 1}, {id: a, name: B, kind: risk, min_risk: 2}]", "used twice"),
    ("rules: [{id: a, name: A, kind: risk, min_risk: 1, colour: red}]", "Extra inputs"),
    ("rules: [{id: A B, name: A, kind: risk, min_risk: 1}]", "should match pattern"),
    ("rules: [{", "not valid YAML"),
])
def test_invalid_rules_are_named(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match="invalid alert rules|not valid YAML") as info:
        parse_rules(text, source="rules.yaml")
    assert message in str(info.value) and "rules.yaml" in str(info.value)


def test_durations() -> None:
    assert parse_duration("90m") == timedelta(minutes=90)
    assert parse_duration("7d") == timedelta(days=7)
    assert parse_duration(30) == timedelta(seconds=30)
    with pytest.raises(ValueError):
        parse_duration("two hours")


def test_rule_predicates() -> None:
    risky, copies, faster = parse_rules(RULES).rules
    assert risky.matches(video(), NOW)
    assert not risky.matches(video(risk=499.0), NOW)
    assert not risky.matches(video(fused__score=0.4, risk=5000.0), NOW)  # not flagged, however viral
    assert not risky.matches(video(spread__views_per_hour=None), NOW)  # withheld counter: no alert, no error
    assert not risky.matches(video(spread__updated=(NOW - timedelta(hours=3)).isoformat()), NOW)  # stale
    assert risky.matches(video(spread__updated=(NOW - timedelta(hours=2)).isoformat()), NOW)  # inclusive
    copy = video(video_uid="tiktok:copy", first_seen=(NOW - timedelta(hours=5)).isoformat(),
                 cluster={"id": "c-1", "size": 2, "max_score": 0.9, "original": False, "reach": 9000})
    assert copies.matches(copy, NOW)
    assert not copies.matches({**copy, "cluster": {**copy["cluster"], "original": True}}, NOW)
    assert not copies.matches({**copy, "cluster": {**copy["cluster"], "max_score": 0.5}}, NOW)
    assert not copies.matches({**copy, "first_seen": (NOW - timedelta(days=3)).isoformat()}, NOW)
    assert not faster.matches(video(), NOW)
    assert faster.matches(video(spread__acceleration=250.0), NOW)
    assert "risk 1,800" in " ".join(risky.reasons(video()))


def test_alert_ids_and_cooldown() -> None:
    risky = parse_rules(RULES).rules[0]
    first = new_alerts(risky, [video(), video()], {}, NOW)
    assert len(first) == 1  # one per subject
    alert = first[0]
    assert alert["alert_id"] == alert_id("risky", "youtube:hot", window_index(risky, NOW))
    assert alert["rule"]["id"] == "risky" and alert["state"] == "open" and alert["risk"] == 1800.0
    # the same match again inside the window has the same id (Elasticsearch keeps one)
    assert new_alerts(risky, [video()], {}, NOW + timedelta(minutes=30))[0]["alert_id"] == alert["alert_id"]
    # after the last alert, nothing within the cooldown, even in the next window
    later = NOW + timedelta(hours=23)
    assert window_index(risky, later) != window_index(risky, NOW)
    assert new_alerts(risky, [video()], {"youtube:hot": NOW}, later) == []
    assert in_cooldown(risky, NOW, later) and not in_cooldown(risky, NOW, NOW + timedelta(hours=24))
    again = new_alerts(risky, [video()], {"youtube:hot": NOW}, NOW + timedelta(hours=25))
    assert len(again) == 1 and again[0]["alert_id"] != alert["alert_id"]


def test_slack_payload() -> None:
    risky = parse_rules(RULES).rules[0]
    alert = new_alerts(risky, [video(title="<script> & co")], {}, NOW)[0]
    payload = slack_payload(alert)
    assert set(payload) == {"text", "blocks"}
    # Slack parses the fallback text as mrkdwn too: escaped there as in the blocks
    assert payload["text"].startswith(":rotating_light: Risky: &lt;script&gt; &amp; co")
    assert "https://www.youtube.com/watch?v=hot" in payload["text"]
    section = payload["blocks"][1]["text"]["text"]
    assert "&lt;script&gt; &amp; co" in section and "mouth lags speech" in section
    assert [b["type"] for b in payload["blocks"]] == ["header", "section", "context"]


def test_webhook_retries_transient_errors_then_gives_up() -> None:
    with WebhookReceiver(fail_first=1).running() as receiver, httpx.Client(timeout=5) as client:
        done = post_webhook(receiver.url, {"text": "hello"}, client=client, attempts=3, backoff_s=0.01)
        assert done.ok and done.attempts == 2
        assert receiver.received == [{"path": "/hooks/vigil", "content_type": "application/json",
                                      "body": {"text": "hello"}}]
    with WebhookReceiver(fail_first=10).running() as receiver, httpx.Client(timeout=5) as client:
        failed = post_webhook(receiver.url + "?token=secret", {"text": "x"}, client=client, attempts=2,
                              backoff_s=0.01)
        assert not failed.ok and failed.attempts == 2 and failed.error == "HTTP 503"
        assert "secret" not in failed.target
