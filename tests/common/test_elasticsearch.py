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


def test_spread_is_a_time_series_index_and_a_snapshot_written_twice_is_stored_once(stack_settings: Settings) -> None:
    from elasticsearch import helpers

    from pipeline._elasticsearch import refused, snapshot_action

    run_setup(stack_settings)
    es = make_es_client(stack_settings)
    name = stack_settings.index("spread")
    first = f"{stack_settings.es_index_prefix}-spread-000001"
    mode = es.indices.get_settings(index=first, name="index.mode")[first]["settings"]["index"]["mode"]
    assert mode == "time_series"
    snap = {**DOCS["spread"], "source": "page"}
    other = {**snap, "@timestamp": "2026-11-26T11:00:00Z", "views": 130000}
    ok, errors = helpers.bulk(es, [snapshot_action(name, snap), snapshot_action(name, snap),
                                   snapshot_action(name, other)], raise_on_error=False, refresh=True)
    assert ok == 2 and len(errors) == 1 and refused(errors) == []  # the duplicate is refused, and that is fine
    hits = es.search(index=name, query={"term": {"video_uid": "youtube:abc123"}}, sort=[{"@timestamp": "asc"}])
    assert [h["_source"]["views"] for h in hits["hits"]["hits"]] == [120000, 130000]
    # the source is synthetic (rebuilt from the columns: half the bytes): a withheld counter is absent rather than
    # null, and a one-element list reads back as its element
    first_source = hits["hits"]["hits"][0]["_source"]
    assert "likes" not in first_source and first_source["counters_missing"] in ("likes", ["likes"])
    # a real refusal is still one
    bad = snapshot_action(name, {"@timestamp": "not a time", "video_uid": "youtube:abc123"})
    _, errors = helpers.bulk(es, [bad], raise_on_error=False)
    assert len(refused(errors)) == 1


def test_an_older_standard_spread_index_takes_new_fields_and_rolls_over_to_time_series(
        stack_settings: Settings) -> None:
    """An install from before spread was a time-series index: setup adds the new fields to its standard index
    (without the time-series parameters it cannot take), and the next rollover is a time-series index."""
    es = make_es_client(stack_settings)
    name = stack_settings.index("spread")
    first = f"{stack_settings.es_index_prefix}-spread-000001"
    es.indices.create(index=first, aliases={name: {"is_write_index": True}},
                      mappings={"dynamic": False, "properties": {"@timestamp": {"type": "date"},
                                                                 "video_uid": {"type": "keyword"},
                                                                 "views": {"type": "long"}}},
                      settings={"number_of_replicas": 0})
    run_setup(stack_settings)
    # the template as an older version left it: this version's setup updates it and the index's mapping
    stale = es.indices.get_index_template(name=name)["index_templates"][0]["index_template"]
    stale["_meta"]["vigil_hash"] = "from-an-older-version"
    es.indices.put_index_template(name=name, **stale)
    changes = {c.name: c.action for c in apply_templates(es, stack_settings) if c.kind == "index-template"}
    assert changes[name] == "updated"
    props = es.indices.get_mapping(index=first)[first]["mappings"]["properties"]
    assert props["source"] == {"type": "keyword"} and props["video_uid"] == {"type": "keyword"}
    assert "mode" not in es.indices.get_settings(index=first)[first]["settings"]["index"]  # still standard
    rolled = es.indices.rollover(alias=name)
    new = rolled["new_index"]
    assert es.indices.get_settings(index=new, name="index.mode")[new]["settings"]["index"]["mode"] == "time_series"
    assert run_setup(stack_settings).elasticsearch  # and setup still runs over both
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
