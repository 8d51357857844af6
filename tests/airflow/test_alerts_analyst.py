"""An analyst's verdict outranks the models in alerts: a video judged authentic raises none, one judged manipulated
counts as score 1 (risk = views per hour). The rules' queries on the real Elasticsearch and their Python predicates
agree."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from support.spread import fixture_videos, index_videos

from pipeline.alerts import evaluate, load_rules

NOW = datetime(2026, 11, 20, 23, 0, tzinfo=UTC)


def _with_analyst(docs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    docs["youtube:hot"]["analyst"] = {"verdict": "authentic", "analyst": "ana", "at": NOW.isoformat()}
    docs["youtube:clean"]["analyst"] = {"verdict": "manipulated", "analyst": "ana", "at": NOW.isoformat()}
    docs["youtube:faster"]["analyst"] = {"verdict": "cannot_tell", "analyst": "ana", "at": NOW.isoformat()}
    return docs


def test_predicates_follow_the_analyst() -> None:
    rules = {r.id: r for r in load_rules().rules}
    docs = _with_analyst(fixture_videos(NOW))
    for doc in docs.values():  # risk as refresh_risk leaves it: the models' score × views per hour
        if doc["fused"] and doc["spread"]["views_per_hour"] is not None:
            doc["risk"] = doc["fused"]["score"] * doc["spread"]["views_per_hour"]
    spreading = rules["manipulated-spreading"]
    assert not spreading.matches(docs["youtube:hot"], NOW)  # judged authentic: the 0.9 score no longer counts
    assert spreading.matches(docs["youtube:clean"], NOW)  # judged manipulated: 1 × 9000 views/hour
    assert "judged manipulated by analyst ana" in spreading.reasons(docs["youtube:clean"])
    assert rules["flagged-accelerating"].matches(docs["youtube:faster"], NOW)  # cannot tell: the models decide


@pytest.mark.elasticsearch
def test_alert_queries_follow_the_analyst(make_crawl_settings: Any) -> None:
    settings = make_crawl_settings()
    index_videos(settings, _with_analyst(fixture_videos(NOW)))
    fired = sorted((a["rule"]["id"], a["video_uid"]) for a in evaluate(settings, now=NOW))
    assert ("manipulated-spreading", "youtube:hot") not in fired
    assert ("manipulated-spreading", "youtube:clean") in fired
    assert ("flagged-accelerating", "youtube:faster") in fired
    assert ("reupload-of-flagged", "tiktok:copy") in fired  # a copy nobody judged still alerts
