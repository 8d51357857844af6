"""The watched-person alert rule: a flagged video on which an enrolled person of interest was seen. Its predicate
on documents, and its Elasticsearch query on the real index agreeing with it; a full alerts run raises the alert
once and posts it to a real local webhook receiver."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from support.spread import WebhookReceiver, index_videos, persons_videos

from pipeline import ConfigError, make_es_client
from pipeline.alerts import WatchedPersonRule, load_rules, parse_rules, run_alerts

NOW = datetime(2026, 11, 20, 23, 0, tzinfo=UTC)


def rule(**fields: Any) -> WatchedPersonRule:
    text = "rules: [{id: poi, name: Watched person, kind: watched_person, window: 2h, cooldown: 24h"
    text += "".join(f", {k}: {v}" for k, v in fields.items()) + "}]"
    parsed = parse_rules(text).rules[0]
    assert isinstance(parsed, WatchedPersonRule)
    return parsed


def matched(r: WatchedPersonRule) -> list[str]:
    return sorted(uid for uid, doc in persons_videos(NOW).items() if r.matches(doc, NOW))


def test_predicate_needs_a_watched_person_a_flag_and_a_recent_score() -> None:
    assert matched(rule(min_score=0.5)) == ["youtube:jane-fake", "youtube:john-fake"]
    assert matched(rule(min_score=0.85)) == ["youtube:jane-fake"]
    assert matched(rule(min_score=0.5, roles="[candidate]")) == ["youtube:jane-fake"]
    assert matched(rule(min_score=0.5, persons="[John Roe]")) == ["youtube:john-fake"]
    assert matched(rule(min_score=0.5, persons="[Nobody]")) == []
    nobody = persons_videos(NOW)["youtube:jane-fake"] | {"persons": []}
    assert not rule(min_score=0.5).matches(nobody, NOW)


def test_reasons_name_the_person_and_the_voice_check() -> None:
    reasons = rule(min_score=0.5).reasons(persons_videos(NOW)["youtube:jane-fake"])
    assert reasons[0].startswith("manipulation score 0.91")
    assert "Jane Doe (candidate) on screen, face similarity 0.62, voice similarity 0.41 (does not match)" in reasons


def test_invalid_watched_person_rule_is_named() -> None:
    with pytest.raises(ConfigError, match="rule poi: persons"):
        parse_rules("rules: [{id: poi, name: P, kind: watched_person, persons: Jane}]")


def test_shipped_rule_is_there() -> None:
    shipped = [r for r in load_rules().rules if r.kind == "watched_person"]
    assert [r.id for r in shipped] == ["watched-person-flagged"]


@pytest.mark.elasticsearch
def test_query_on_the_real_index_agrees_with_the_predicate(make_crawl_settings: Any) -> None:
    settings = make_crawl_settings()
    docs = persons_videos(NOW)
    index_videos(settings, docs)
    es = make_es_client(settings)
    try:
        for r in (rule(min_score=0.5), rule(min_score=0.5, roles="[official]"), rule(min_score=0.5, persons="[Jane Doe]")):
            hits = es.search(index=settings.index("videos"), query=r.query(NOW), size=100)["hits"]["hits"]
            assert sorted(h["_id"] for h in hits) == matched(r)
        mapping = es.indices.get_mapping(index=settings.index("videos"))
        props = next(iter(mapping.values()))["mappings"]["properties"]
        assert props["persons"]["properties"]["name"]["type"] == "keyword"
        assert props["provenance"]["properties"]["ai_generated"]["type"] == "boolean"
    finally:
        es.close()


@pytest.mark.elasticsearch
@pytest.mark.slow
def test_alerts_run_raises_the_watched_person_alert_once(make_crawl_settings: Any) -> None:
    with WebhookReceiver().running() as receiver:
        settings = make_crawl_settings(alert_webhooks=[receiver.url])
        index_videos(settings, persons_videos(NOW))
        first = run_alerts(settings, now=NOW)
        fired = sorted((a["rule"]["id"], a["video_uid"]) for a in first["alerts"])
        assert fired == [("watched-person-flagged", "youtube:jane-fake"),
                         ("watched-person-flagged", "youtube:john-fake")]
        texts = [r["body"]["text"] for r in receiver.received]
        assert any("Flagged video of a watched person: video youtube:jane-fake" in t for t in texts)
        again = run_alerts(settings, now=NOW + timedelta(minutes=10))
        assert again["alerts"] == []
