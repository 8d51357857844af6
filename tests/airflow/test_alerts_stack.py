"""Alerts on the real stack: rules run as Elasticsearch queries over fixture videos, an alert fires once for a
flagged fast-growing video, not again within the cooldown, again after it; the local webhook receiver gets each."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from support.spread import WebhookReceiver, fixture_videos, index_videos, persons_videos

from pipeline import Settings, make_es_client
from pipeline.alerts import load_rules, run_alerts

pytestmark = [pytest.mark.elasticsearch]

NOW = datetime(2026, 11, 20, 23, 0, tzinfo=UTC)


def alert_docs(settings: Settings) -> list[dict[str, Any]]:
    es = make_es_client(settings)
    try:
        es.indices.refresh(index=settings.index("alerts"))
        hits = es.search(index=settings.index("alerts"), size=100, sort=[{"@timestamp": "asc"}, {"alert_id": "asc"}],
                         query={"match_all": {}})["hits"]["hits"]
        return [h["_source"] for h in hits]
    finally:
        es.close()


@pytest.mark.slow
def test_alert_fires_once_within_cooldown_and_reaches_the_webhook(make_crawl_settings: Any) -> None:
    with WebhookReceiver(fail_first=1).running() as receiver:
        settings = make_crawl_settings(alert_webhooks=[receiver.url], alert_webhook_attempts=3)
        index_videos(settings, fixture_videos(NOW))

        first = run_alerts(settings, now=NOW)
        fired = sorted((a["rule"]["id"], a["video_uid"]) for a in first["alerts"])
        assert fired == [("flagged-accelerating", "youtube:faster"), ("manipulated-spreading", "youtube:hot"),
                         ("reupload-of-flagged", "tiktok:copy")]
        assert first["posted"] == 3 and first["failed"] == 0  # the first 503 was retried
        bodies = [r["body"] for r in receiver.received]
        assert len(bodies) == 3 and all(set(b) == {"text", "blocks"} for b in bodies)
        hot = next(b for b in bodies if "video youtube:hot" in b["text"])
        assert hot["text"].startswith(":rotating_light: Likely manipulated and spreading fast: video youtube:hot")
        assert "risk 1,800" in hot["text"]

        stored = {a["video_uid"]: a for a in alert_docs(settings)}
        assert stored["youtube:hot"]["risk"] == pytest.approx(1800.0)  # risk recomputed from score × views/hour
        assert stored["youtube:hot"]["state"] == "notified"
        assert stored["youtube:hot"]["notified"]["targets"] == [receiver.url.rsplit("/hooks", 1)[0]]
        assert stored["tiktok:copy"]["cluster"]["id"] == "c-youtube:hot"

        # ten minutes later: same matches, no second alert (same window id) and nothing posted
        again = run_alerts(settings, now=NOW + timedelta(minutes=10))
        assert again["alerts"] == [] and len(receiver.received) == 3

        # 23 hours later the video is still hot, in another window: the cooldown holds it back
        later = NOW + timedelta(hours=23)
        index_videos(settings, fixture_videos(later))
        held = run_alerts(settings, now=later)
        assert ("manipulated-spreading", "youtube:hot") not in {(a["rule"]["id"], a["video_uid"])
                                                                 for a in held["alerts"]}

        # after the 24 h cooldown it fires again
        after = NOW + timedelta(hours=25)
        index_videos(settings, fixture_videos(after))
        refired = run_alerts(settings, now=after)
        assert ("manipulated-spreading", "youtube:hot") in {(a["rule"]["id"], a["video_uid"])
                                                             for a in refired["alerts"]}
        hot_alerts = [a for a in alert_docs(settings) if a["video_uid"] == "youtube:hot"
                      and a["rule"]["id"] == "manipulated-spreading"]
        assert len(hot_alerts) == 2


def test_shipped_rules_queries_return_the_expected_videos(make_crawl_settings: Any) -> None:
    """Every YAML rule's Elasticsearch query, run on the real index, agrees with its Python predicate."""
    settings = make_crawl_settings()
    docs = fixture_videos(NOW) | persons_videos(NOW)
    for doc in docs.values():  # as the alerts run leaves them
        score, vph = (doc.get("fused") or {}).get("score"), doc["spread"]["views_per_hour"]
        doc["risk"] = None if score is None or vph is None else round(score * vph, 3)
    index_videos(settings, docs)
    es = make_es_client(settings)
    try:
        for rule in load_rules().rules:
            hits = es.search(index=settings.index("videos"), query=rule.query(NOW), size=100)["hits"]["hits"]
            by_es = sorted(h["_id"] for h in hits)
            by_python = sorted(uid for uid, doc in docs.items() if rule.matches(doc, NOW))
            assert by_es == by_python, rule.id
            assert by_es, f"rule {rule.id} matched nothing in the fixture"
    finally:
        es.close()
