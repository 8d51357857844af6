"""Index templates as shipped: rendered names, explicit mappings, nothing the integ-test server lacks."""
from __future__ import annotations

import json

from pipeline import Settings
from pipeline._elasticsearch import load_component_templates, load_ilm_policies, load_index_templates, template_dir

FORBIDDEN = ("default_pipeline", "final_pipeline", "\"script\"", "painless", "match_only_text", "search_as_you_type",
             "token_count", "\"wildcard\"")


def test_every_index_has_a_template_with_explicit_mappings() -> None:
    templates = load_index_templates(Settings(es_index_prefix="vigil"))
    assert set(templates) == {"vigil-videos", "vigil-detections", "vigil-spread", "vigil-alerts",
                              "vigil-verdicts", "vigil-watchlists", "vigil-watchlist-runs"}
    for name, body in templates.items():
        mappings = body["template"]["mappings"]
        assert mappings["dynamic"] is False, name
        assert "@timestamp" in mappings["properties"], name
        assert body["composed_of"][0] == "vigil-settings"
    assert templates["vigil-spread"]["index_patterns"] == ["vigil-spread-*"]
    assert templates["vigil-spread"]["ignore_missing_component_templates"] == ["vigil-spread-ilm"]


def test_prefix_and_replicas_are_rendered() -> None:
    settings = Settings(es_index_prefix="staging", es_replicas=2)
    components = load_component_templates(settings)
    assert components["staging-settings"]["template"]["settings"]["index"]["number_of_replicas"] == 2
    assert components["staging-spread-ilm"]["template"]["settings"]["index"]["lifecycle"]["rollover_alias"] == \
        "staging-spread"
    assert "staging-spread" in load_ilm_policies(settings)
    assert load_index_templates(settings)["staging-videos"]["index_patterns"] == ["staging-videos"]


def test_hashes_are_stable_and_follow_content() -> None:
    first = load_index_templates(Settings())["vigil-videos"]["_meta"]["vigil_hash"]
    assert first == load_index_templates(Settings())["vigil-videos"]["_meta"]["vigil_hash"]
    other = load_index_templates(Settings(es_index_prefix="other"))["other-videos"]["_meta"]["vigil_hash"]
    assert other != first


def test_templates_avoid_features_the_local_server_lacks() -> None:
    for path in template_dir().rglob("*.json"):
        text = path.read_text()
        json.loads(text)
        for word in FORBIDDEN:
            assert word not in text, f"{path.name} uses {word}"
