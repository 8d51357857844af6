"""Templates, indices and security on the real Elasticsearch of the local stack."""
from __future__ import annotations

import elasticsearch
import pytest
from pydantic import SecretStr

from pipeline import (
    AuthenticationFailed,
    Settings,
    ServiceUnavailable,
    apply_templates,
    check_templates,
    es_errors,
    make_es_client,
    run_setup,
)

pytestmark = [pytest.mark.elasticsearch, pytest.mark.kafka]

DOCS = {
    "videos": {"@timestamp": "2026-11-26T10:00:00Z", "video_uid": "youtube:abc123", "platform": "youtube",
               "url": {"full": "https://www.youtube.com/watch?v=abc123"}, "title": "Candidate concedes",
               "status": "scored", "spread": {"views": 120000, "views_per_hour": 5400.5},
               "fused": {"score": 0.83, "verdict": "likely_manipulated"}},
    "detections": {"@timestamp": "2026-11-26T10:05:00Z", "video_uid": "youtube:abc123", "media_sha256": "c" * 64,
                   "suite_version": "1.0.0", "fused": {"score": 0.83, "verdict": "likely_manipulated"},
                   "detectors": {"lipsync": {"version": "1", "applicable": True, "score": 0.91,
                                             "timeline": [{"start_s": 0, "end_s": 2, "score": 0.88}],
                                             "evidence": {"offset_ms": -200}}},
                   "timings_ms": {"decode": 410.0}},
    "spread": {"@timestamp": "2026-11-26T10:00:00Z", "video_uid": "youtube:abc123", "views": 120000,
               "likes": None, "views_per_hour": 5400.5, "counters_missing": ["likes"]},
    "alerts": {"@timestamp": "2026-11-26T10:06:00Z", "rule": {"id": "risk-high", "name": "High risk"},
               "video_uid": "youtube:abc123", "risk": 0.9, "reasons": ["manipulation 0.83 x growth 5400 views/h"],
               "state": "open"},
}


def test_setup_applies_every_template_and_documents_are_searchable(stack_settings: Settings) -> None:
    report = run_setup(stack_settings)
    assert report.changed
    es = make_es_client(stack_settings)
    for short, doc in DOCS.items():
        es.index(index=stack_settings.index(short), document=doc, refresh="wait_for")
    for short in DOCS:
        hits = es.search(index=stack_settings.index(short), query={"term": {"video_uid": "youtube:abc123"}})
        assert hits["hits"]["total"]["value"] == 1, short

    mapping = es.indices.get_mapping(index=stack_settings.index("videos"))
    props = next(iter(mapping.body.values()))["mappings"]["properties"]
    assert props["spread"]["properties"]["views"]["type"] == "long"
    assert props["url"]["properties"]["full"]["type"] == "keyword"

    detections = es.indices.get_mapping(index=stack_settings.index("detections"))
    lipsync = next(iter(detections.body.values()))["mappings"]["properties"]["detectors"]["properties"]["lipsync"]
    assert lipsync["properties"]["score"]["type"] == "float"
    assert lipsync["properties"]["timeline"] == {"type": "object", "enabled": False}
    found = es.search(index=stack_settings.index("detections"),
                      query={"range": {"detectors.lipsync.score": {"gte": 0.9}}})
    assert found["hits"]["total"]["value"] == 1

    # spread is written through an alias onto the first rolled index
    alias = es.indices.get_alias(name=stack_settings.index("spread"))
    assert list(alias.body) == [f"{stack_settings.es_index_prefix}-spread-000001"]
    assert check_templates(es, stack_settings) == []


def test_setup_twice_changes_nothing_the_second_time(stack_settings: Settings) -> None:
    run_setup(stack_settings)
    second = run_setup(stack_settings)
    assert not second.changed
    assert {c.action for c in second.topics} == {"unchanged"}
    assert {c.action for c in second.elasticsearch} <= {"unchanged", "skipped"}
    # without ILM on this cluster the production-only parts are skipped, not half-applied; without a native user
    # store (the local stack's integ-test distribution: infra/local/stack defines its users in files) so is the
    # console's own user
    skipped = {c.name for c in second.elasticsearch if c.action == "skipped"}
    prefix = stack_settings.es_index_prefix
    assert skipped <= {f"{prefix}-spread", f"{prefix}-spread-ilm", f"{prefix}_console"}


def test_setup_updates_a_template_that_differs(stack_settings: Settings) -> None:
    run_setup(stack_settings)
    es = make_es_client(stack_settings)
    name = stack_settings.index("alerts")
    stale = es.indices.get_index_template(name=name)["index_templates"][0]["index_template"]
    stale["_meta"]["vigil_hash"] = "from-an-older-version"
    es.indices.put_index_template(name=name, **stale)
    assert check_templates(es, stack_settings) == [f"index template {name} differs from this version's"]
    changes = {c.name: c.action for c in apply_templates(es, stack_settings) if c.kind == "index-template"}
    assert changes[name] == "updated"
    assert check_templates(es, stack_settings) == []


def test_requests_without_credentials_are_refused(stack_settings: Settings) -> None:
    anonymous = stack_settings.model_copy(update={"es_user": None, "es_password": None})
    es = make_es_client(anonymous)
    with pytest.raises(elasticsearch.AuthenticationException) as raw:
        es.cluster.health()
    assert raw.value.status_code == 401
    with pytest.raises(AuthenticationFailed, match="refused no credentials") as info, es_errors(anonymous):
        es.cluster.health()
    assert "VIGIL_ES_USER" in info.value.hint


def test_wrong_password_is_explained(stack_settings: Settings) -> None:
    wrong = stack_settings.model_copy(update={"es_password": SecretStr("definitely-wrong")})
    es = make_es_client(wrong)
    with pytest.raises(AuthenticationFailed, match=r"refused user 'vigil' \(HTTP 401\)") as info, es_errors(wrong):
        es.cluster.health()
    assert "VIGIL_ES_PASSWORD" in info.value.hint


def test_tls_without_the_ca_is_explained(stack_settings: Settings) -> None:
    no_ca = stack_settings.model_copy(update={"es_ca_file": None})
    es = make_es_client(no_ca, max_retries=0)
    with pytest.raises(ServiceUnavailable, match="TLS") as info, es_errors(no_ca):
        es.cluster.health()
    assert "VIGIL_ES_CA_FILE" in info.value.hint
