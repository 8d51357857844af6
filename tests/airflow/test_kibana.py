"""Kibana as code, checked without a Kibana: every field a saved object, control or rule uses exists in the index
templates (with an aggregatable type where it is aggregated), references resolve (drilldowns and controls too), the
declared migration versions stay under each type's last migration in Kibana, pies show their legend, rule params pass
the ``.es-query`` schema's checks, every search, aggregation and rule query runs on the real Elasticsearch against
fixture data and returns the expected hits (grouped per video), the committed infra/kibana files are what the code
builds, and `vigil kibana import` holds a Kibana 8.19 exchange (import, rule create, rule update with an attached
connector, enable/disable, a second space) with a local server that answers and refuses as Kibana's route schemas
do (tests/support/kibana.py names the Kibana source files it models; a real Kibana is not available here)."""
from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.crawl import ROOT, settings_env
from elasticsearch import helpers
from support.kibana import (FREQUENCY, KIBANA_VERSION, MIGRATION_CEILINGS, FakeKibana, SchemaError,
                       es_query_params_problems, fake_kibana, version_tuple)
from support.spread import fixture_videos, index_videos

from pipeline import Settings, make_es_client
from pipeline._elasticsearch import load_index_templates
from pipeline._messages import DetectorOutput, FusedScore, ResultMessage, TimelineWindow
from pipeline.alerts import RuleSet, format_duration, load_rules
from pipeline._exceptions import ConfigError
from pipeline.kibana import (DETECTORS, TYPE_MIGRATION, KibanaClient, KibanaRefused, kibana_groups, kibana_rule_id,
                             kibana_rules, kibana_search_body, object_id, run_import, saved_objects, to_ndjson)
from pipeline.sink import detection_doc

NOW = datetime(2026, 11, 20, 23, 0, tzinfo=UTC)
AGGREGATABLE = {"keyword", "long", "integer", "float", "double", "date", "boolean"}
DV_INDEX = {"vigil-videos": "videos", "vigil-detections": "detections", "vigil-spread": "spread",
            "vigil-alerts": "alerts"}


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings(es_index_prefix="vigil")


@pytest.fixture(scope="module")
def objects(settings: Settings) -> list[dict[str, Any]]:
    return saved_objects(settings)


# ------------------------------------------------------------------ what the objects use

def field_type(settings: Settings, short: str, dotted: str) -> str | None:
    """The mapped type of a field in the index template (through dynamic templates too), or None."""
    mappings = load_index_templates(settings)[f"vigil-{short}"]["template"]["mappings"]
    node: dict[str, Any] = mappings
    for part in dotted.split("."):
        props = node.get("properties") or {}
        if part not in props:
            node = {}
            break
        node = props[part]
    if node.get("type"):
        return str(node["type"])
    if node.get("properties") is not None:
        return "object"
    for template in mappings.get("dynamic_templates", []):
        (spec,) = template.values()
        if fnmatch.fnmatchcase(dotted, spec["path_match"]):
            return str(spec["mapping"]["type"])
    return None


def _filter_fields(query: Any) -> Iterator[str]:
    """Field names in an Elasticsearch query DSL fragment (range/term/terms/exists/match)."""
    if isinstance(query, dict):
        for key, value in query.items():
            if key in ("range", "term", "terms", "match", "match_phrase") and isinstance(value, dict):
                yield from (k for k in value if k not in ("boost",))
            elif key == "exists":
                yield value["field"]
            else:
                yield from _filter_fields(value)
    elif isinstance(query, list):
        for item in query:
            yield from _filter_fields(item)


def uses(obj: dict[str, Any], views: dict[str, str]) -> list[tuple[str, str, str]]:
    """(index short name, field, how) for everything one saved object reads."""
    attrs, out = obj["attributes"], []
    refs = {r["name"]: r["id"] for r in obj["references"]}
    if obj["type"] == "index-pattern":
        return [(DV_INDEX[attrs["title"]], attrs["timeFieldName"], "time")]
    if obj["type"] == "dashboard":
        source = json.loads(attrs["kibanaSavedObjectMeta"]["searchSourceJSON"])
        for f in source["filter"]:
            view = views[refs[f["meta"]["indexRefName"]]]
            out += [(view, name, "filter") for name in _filter_fields(f["query"])]
        controls = json.loads((attrs.get("controlGroupInput") or {}).get("panelsJSON") or "{}")
        for cid, control in controls.items():
            view = views[refs[f"controlGroup_{cid}:optionsListDataView"]]
            out.append((view, control["explicitInput"]["fieldName"], "control"))
        return out
    source = json.loads(attrs["kibanaSavedObjectMeta"]["searchSourceJSON"])
    if obj["type"] == "visualization" and json.loads(attrs["visState"])["type"] == "vega":
        spec = json.loads(json.loads(attrs["visState"])["params"]["spec"])
        view = DV_INDEX[spec["data"]["url"]["index"]]
        out += [(view, name, "vega _source") for name in spec["data"]["url"]["body"]["_source"]]
        out.append((view, spec["data"]["url"]["%timefield%"], "time"))
        return out
    view = views[refs[source["indexRefName"]]]
    for f in source["filter"]:
        out += [(view, name, "filter") for name in _filter_fields(f["query"])]
    if obj["type"] == "search":
        out += [(view, c, "column") for c in attrs["columns"]]
        out += [(view, s[0], "sort") for s in attrs["sort"]]
    else:
        for agg in json.loads(attrs["visState"])["aggs"]:
            if "field" in agg["params"]:
                out.append((view, agg["params"]["field"], "aggregation"))
    return out


def test_every_field_a_dashboard_uses_exists_in_the_templates(settings: Settings,
                                                              objects: list[dict[str, Any]]) -> None:
    views = {o["id"]: DV_INDEX[o["attributes"]["title"]] for o in objects if o["type"] == "index-pattern"}
    problems, checked = [], 0
    for obj in objects:
        for view, name, how in uses(obj, views):
            checked += 1
            kind = field_type(settings, view, name)
            if kind is None:
                problems.append(f"{obj['id']}: {how} field {name} is not in the vigil-{view} template")
            elif how in ("aggregation", "sort", "time", "filter") and kind not in AGGREGATABLE | {"text"}:
                problems.append(f"{obj['id']}: {how} field {name} is {kind}")
            elif how in ("aggregation", "sort", "time", "control") and kind not in AGGREGATABLE:
                problems.append(f"{obj['id']}: {how} on {name} of type {kind} (not aggregatable)")
    assert not problems, "\n".join(problems)
    assert checked > 100
    assert ("videos", "persons.name", "control") in {u for o in objects for u in uses(o, views)}


def test_every_kibana_rule_field_exists(settings: Settings) -> None:
    for item in kibana_rules(settings, [*load_rules().rules, WATCHED]):
        params = item["body"]["params"]
        names = [params["timeField"], params["termField"], *_filter_fields(json.loads(params["esQuery"]))]
        for name in names:
            assert field_type(settings, "videos", name) in AGGREGATABLE, (item["rule"], name)


def test_detector_score_fields_are_mapped_before_any_detection(settings: Settings) -> None:
    """Explicit mappings, not only dynamic templates: a panel on detectors.<name>.score works on a fresh cluster."""
    mappings = load_index_templates(settings)["vigil-detections"]["template"]["mappings"]
    detectors = mappings["properties"]["detectors"]["properties"]
    assert set(detectors) >= set(DETECTORS)
    for name in DETECTORS:
        assert {k: v["type"] for k, v in detectors[name]["properties"].items()} == {
            "score": "float", "applicable": "boolean", "version": "keyword", "rank": "keyword", "error": "keyword"}
    props = mappings["properties"]
    assert props["segments"]["properties"]["score"]["type"] == "float"
    assert props["fused"]["properties"]["timeline"] == {"type": "object", "enabled": False}
    assert props["annotations"] == {"type": "object", "enabled": False}


# ------------------------------------------------------------------ what Kibana makes of the objects

def test_declared_migration_versions_stay_under_kibanas_ceilings(objects: list[dict[str, Any]]) -> None:
    """A typeMigrationVersion above the type's last migration fails the import ("belongs to a more recent version
    of Kibana"); one below it re-runs migrations on attributes already in the new shape."""
    for kind, declared in TYPE_MIGRATION.items():
        assert version_tuple(declared) <= version_tuple(MIGRATION_CEILINGS[kind]), (kind, declared)
    for obj in objects:
        assert obj["type"] in MIGRATION_CEILINGS, obj["type"]
        assert version_tuple(obj["typeMigrationVersion"]) <= version_tuple(MIGRATION_CEILINGS[obj["type"]]), obj["id"]
        assert version_tuple(obj["coreMigrationVersion"]) <= version_tuple(KIBANA_VERSION), obj["id"]
    # the objects are written in the shape of their declared version: no attribute a later migration would add
    assert TYPE_MIGRATION["visualization"] == "8.5.0"  # so the 8.1 pie migration (addLegend→legendDisplay) is done


def test_pies_show_their_legend(objects: list[dict[str, Any]]) -> None:
    pies = [json.loads(o["attributes"]["visState"]) for o in objects if o["type"] == "visualization"
            and json.loads(o["attributes"]["visState"])["type"] == "pie"]
    assert len(pies) == 3
    for state in pies:  # 8.x pie: legendDisplay show|hide|default, and hide when absent
        assert state["params"]["legendDisplay"] == "show" and "addLegend" not in state["params"], state["title"]


def test_overview_drills_down_to_the_video_dashboard(settings: Settings, objects: list[dict[str, Any]]) -> None:
    by_id = {o["id"]: o for o in objects}
    overview, video = by_id["vigil-overview"], by_id["vigil-video"]
    flagged = by_id["vigil-flagged-by-risk"]
    assert flagged["attributes"]["columns"][0] == "video_uid"
    refs = {r["name"]: r for r in overview["references"]}
    drilldowns = []
    for panel in json.loads(overview["attributes"]["panelsJSON"]):
        for event in panel["embeddableConfig"]["enhancements"].get("dynamicActions", {}).get("events", []):
            assert event["action"]["factoryId"] == "DASHBOARD_TO_DASHBOARD_DRILLDOWN"
            assert event["action"]["config"]["useCurrentFilters"] is True  # carries the clicked video_uid filter
            assert set(event["triggers"]) <= {"VALUE_CLICK_TRIGGER", "SELECT_RANGE_TRIGGER", "FILTER_TRIGGER"}
            ref = refs[f"{panel['panelIndex']}:drilldown:DASHBOARD_TO_DASHBOARD_DRILLDOWN:{event['eventId']}"
                       ":dashboardId"]
            assert ref["type"] == "dashboard" and ref["id"] == video["id"]
            source = by_id[refs[panel["panelRefName"]]["id"]]
            buckets = [a for a in json.loads(source["attributes"]["visState"])["aggs"] if a["schema"] != "metric"]
            drilldowns.append([a["params"]["field"] for a in buckets])
    assert drilldowns == [["video_uid"]]  # a click on a uid is a filter on video_uid
    views = {o["id"]: DV_INDEX[o["attributes"]["title"]] for o in objects if o["type"] == "index-pattern"}
    video_refs = {r["name"]: r["id"] for r in video["references"]}
    for panel in json.loads(video["attributes"]["panelsJSON"]):  # every panel of the target can take that filter
        for view, _, how in uses(by_id[video_refs[panel["panelRefName"]]], views):
            if how != "time":
                assert field_type(settings, view, "video_uid") == "keyword", (panel, view)


def test_person_control_lists_persons_from_the_videos(settings: Settings, objects: list[dict[str, Any]]) -> None:
    overview = next(o for o in objects if o["id"] == "vigil-overview")
    group = overview["attributes"]["controlGroupInput"]
    assert set(group) == {"controlStyle", "chainingSystem", "panelsJSON", "ignoreParentSettingsJSON"}
    (cid, control), = json.loads(group["panelsJSON"]).items()
    assert control["type"] == "optionsListControl" and control["explicitInput"]["fieldName"] == "persons.name"
    assert control["explicitInput"]["id"] == cid
    ref = next(r for r in overview["references"] if r["name"] == f"controlGroup_{cid}:optionsListDataView")
    assert ref == {"name": ref["name"], "type": "index-pattern", "id": "vigil-videos"}
    assert field_type(settings, "videos", "persons.name") == "keyword"


def test_references_resolve_and_dashboards_are_complete(objects: list[dict[str, Any]]) -> None:
    ids = {(o["type"], o["id"]) for o in objects}
    assert len(ids) == len(objects), "duplicate ids"
    titles = {o["attributes"]["title"] for o in objects if o["type"] == "dashboard"}
    assert titles == {"Vigil overview", "Vigil video drill-down", "Vigil re-upload clusters"}
    seen_before: set[tuple[str, str]] = set()
    for obj in objects:
        names = {r["name"] for r in obj["references"]}
        for ref in obj["references"]:
            assert (ref["type"], ref["id"]) in seen_before, f"{obj['id']} refers to {ref} before it is defined"
        attrs = obj["attributes"]
        if "kibanaSavedObjectMeta" in attrs:
            source = json.loads(attrs["kibanaSavedObjectMeta"]["searchSourceJSON"])
            wanted = {f["meta"]["indexRefName"] for f in source.get("filter", [])}
            if "indexRefName" in source:
                wanted.add(source["indexRefName"])
            assert wanted <= names, obj["id"]
        if obj["type"] == "dashboard":
            panels = json.loads(attrs["panelsJSON"])
            assert {p["panelRefName"] for p in panels} <= names
            assert len({p["panelIndex"] for p in panels}) == len(panels)
            for p in panels:  # inside Kibana's 48-column grid
                assert 0 <= p["gridData"]["x"] and p["gridData"]["x"] + p["gridData"]["w"] <= 48
        seen_before.add((obj["type"], obj["id"]))


WATCHED = {"id": "watched-person-flagged", "name": "Flagged video of a watched person", "kind": "watched_person",
           "min_score": 0.6, "window": "6h", "cooldown": "12h", "severity": "critical"}


def test_rule_params_pass_the_es_query_schema(settings: Settings) -> None:
    """Kibana's EsQueryRuleParamsSchema / validateParams (support.kibana.es_query_params_problems) and the create body."""
    from support.kibana import CREATE_BODY

    ruleset = load_rules()
    rules = kibana_rules(settings, ruleset)
    assert len(rules) == len(ruleset.rules) >= 3 and len({r["id"] for r in rules}) == len(rules)
    known = {"manipulated-spreading": "1d", "reupload-of-flagged": "7d", "flagged-accelerating": "6h"}
    for item, rule in zip(rules, ruleset.rules):
        body, params = item["body"], item["body"]["params"]
        CREATE_BODY(body, "")
        assert not es_query_params_problems(params), item["rule"]
        assert body["rule_type_id"] == ".es-query" and body["consumer"] == "stackAlerts"
        assert params["groupBy"] == "top" and params["termField"] == "video_uid"  # one alert per video
        assert "notify_when" not in body and "throttle" not in body  # Kibana refuses them beside action frequencies
        FREQUENCY(item["action_frequency"], "")
        size, unit = format_duration(rule.cooldown)
        assert item["action_frequency"] == {"summary": False, "notify_when": "onThrottleInterval",
                                            "throttle": known.get(item["rule"], f"{size}{unit}")}
        assert body["enabled"] is rule.enabled
        assert item["id"][14] == "4"  # a UUID v4 layout, as the create-rule API asks for
    again = kibana_rules(settings, load_rules())
    assert [r["id"] for r in again] == [r["id"] for r in rules]  # stable: imports update, never duplicate
    with pytest.raises(SchemaError, match="definition for this key is missing"):
        CREATE_BODY({**rules[0]["body"], "notifyWhen": "onActiveAlert"}, "")
    assert es_query_params_problems({**rules[0]["body"]["params"], "termSize": None}) == [
        "[termSize]: termSize required when [groupBy] is top"]


def test_watched_person_rule_from_a_mapping(settings: Settings) -> None:
    """A rule kind `pipeline.alerts` may not know yet, given as the YAML mapping: the same defaults as other kinds."""
    (item,) = kibana_rules(settings, [WATCHED])
    params = item["body"]["params"]
    assert not es_query_params_problems(params)
    assert json.loads(params["esQuery"])["query"]["bool"]["filter"] == [
        {"exists": {"field": "persons.name"}}, {"range": {"fused.score": {"gte": 0.6}}}]
    assert (params["timeWindowSize"], params["timeWindowUnit"], params["timeField"]) == (6, "h", "scored_at")
    assert item["action_frequency"]["throttle"] == "12h" and item["body"]["schedule"] == {"interval": "15m"}
    (narrow,) = kibana_rules(settings, [{**WATCHED, "persons": ["Jane Doe"], "roles": ["candidate"]}])
    assert json.loads(narrow["body"]["params"]["esQuery"])["query"]["bool"]["filter"][2:] == [
        {"terms": {"persons.name": ["Jane Doe"]}}, {"terms": {"persons.role": ["candidate"]}}]
    assert item["body"]["tags"] == ["vigil", "vigil-rule:watched-person-flagged", "watched_person", "critical"]
    (plain,) = kibana_rules(settings, [{"id": "wp", "name": "Watched", "kind": "watched_person"}])
    assert json.loads(plain["body"]["params"]["esQuery"])["query"]["bool"]["filter"][1] == {
        "range": {"fused.score": {"gte": 0.5}}}
    assert (plain["body"]["params"]["timeWindowSize"], plain["body"]["params"]["timeWindowUnit"]) == (2, "h")
    assert plain["action_frequency"]["throttle"] == "1d" and plain["body"]["enabled"] is True
    # a kind pipeline.alerts validates goes through it, and comes out as the rule object does
    yaml_rule = {"id": "manipulated-spreading", "name": "Likely manipulated and spreading fast", "kind": "risk",
                 "min_score": 0.5, "min_views_per_hour": 100, "min_risk": 500, "window": "2h", "cooldown": "24h",
                 "check_every": "15m"}
    assert kibana_rules(settings, [yaml_rule]) == kibana_rules(settings, load_rules().rules[:1])
    with pytest.raises(ConfigError, match="min_score"):
        kibana_rules(settings, [{**WATCHED, "min_score": 2}])
    with pytest.raises(ConfigError, match="min_risk"):
        kibana_rules(settings, [{**yaml_rule, "min_risk": None}])
    with pytest.raises(ConfigError, match="name missing"):
        kibana_rules(settings, [{"id": "x", "kind": "watched_person"}])


def test_ids_carry_the_space_outside_the_default_one(settings: Settings) -> None:
    default = Settings(es_index_prefix="vigil", kibana_space="default")
    other = Settings(es_index_prefix="vigil", kibana_space="elections")
    assert [o["id"] for o in saved_objects(default)] == [o["id"] for o in saved_objects(settings)]
    assert object_id(other, "overview") == "vigil-overview@elections"
    assert kibana_rule_id(default, "r") == kibana_rule_id(settings, "r") != kibana_rule_id(other, "r")
    ids = {o["id"] for o in saved_objects(other)}
    for obj in saved_objects(other):
        assert obj["id"].endswith("@elections")
        assert all(r["id"] in ids for r in obj["references"]), obj["id"]


def test_committed_files_are_what_the_code_builds(settings: Settings, objects: list[dict[str, Any]]) -> None:
    committed = ROOT / "infra" / "kibana"
    assert (committed / "saved_objects.ndjson").read_text() == to_ndjson(objects), \
        "regenerate: vigil kibana export --out infra/kibana"
    assert json.loads((committed / "rules.json").read_text()) == kibana_rules(settings, load_rules())


# ------------------------------------------------------------------ on the real Elasticsearch

def _es_aggs(vis_aggs: list[dict[str, Any]]) -> dict[str, Any]:
    """The Elasticsearch aggregations an aggregation-based visualization asks for (buckets nest, metrics inside)."""
    metrics = {a["id"]: {a["type"]: {"field": a["params"]["field"]}} for a in vis_aggs
               if a["schema"] == "metric" and a["type"] != "count"}
    root: dict[str, Any] = {}
    level = root
    for a in vis_aggs:
        if a["schema"] == "metric":
            continue
        p = a["params"]
        if a["type"] == "terms":
            order = {"_count": "desc"} if p["orderBy"] not in metrics else {p["orderBy"]: "desc"}
            body = {"terms": {"field": p["field"], "size": p["size"], "order": order}}
        elif a["type"] == "histogram":
            body = {"histogram": {"field": p["field"], "interval": p["interval"]}}
        elif a["type"] == "date_histogram":
            body = {"date_histogram": {"field": p["field"], "fixed_interval": "1h", "min_doc_count": 1}}
        else:
            raise AssertionError(f"unexpected bucket aggregation {a['type']}")
        body["aggs"] = dict(metrics)
        level[a["id"]] = body
        level = body["aggs"]
    return root or metrics


@pytest.fixture
def fixture_stack(make_crawl_settings: Any) -> Settings:
    """The fixture videos, their spread snapshots, one detection with timelines and one alert, on the stack."""
    from pipeline.alerts import run_alerts

    st = make_crawl_settings()
    videos = fixture_videos(NOW)
    index_videos(st, videos)
    es = make_es_client(st)
    try:
        snaps = [{"_op_type": "create", "_index": st.index("spread"), "_source": {
            "@timestamp": (NOW - timedelta(hours=h)).isoformat(), "video_uid": uid, "platform": doc["platform"],
            "views": 1000 * (3 - h), "views_per_hour": 500.0 * (3 - h), "overperformance": 2.0,
            "cluster": {"id": doc["cluster"]["id"]}}} for uid, doc in videos.items() for h in (0, 1, 2)]
        result = ResultMessage(
            video_uid="youtube:hot", media_sha256="a" * 64, suite_version="s1", duration_s=4.0,
            fused=FusedScore(score=0.9, verdict="likely_manipulated", reasons=["mouth lags speech"]),
            detectors={"lipsync": DetectorOutput(version="1", applicable=True, score=0.9, timeline=[
                TimelineWindow(start_s=0, end_s=2, score=0.8), TimelineWindow(start_s=2, end_s=4, score=0.95)]),
                "spectral": DetectorOutput(version="1", applicable=True, score=0.2)},
            evidence_uris=["file:///store/aa/" + "a" * 64 + ".evidence/lipsync.png"], produced_at=NOW)
        det = [{"_index": st.index("detections"), "_id": "d1", "_source": detection_doc(result, now=NOW)}]
        helpers.bulk(es, snaps + det, refresh=True)
    finally:
        es.close()
    run_alerts(st, now=NOW)
    return st


@pytest.mark.elasticsearch
def test_every_search_and_visualization_runs_on_the_real_index(fixture_stack: Settings) -> None:
    st = fixture_stack
    objects = saved_objects(st)
    views = {o["id"]: o["attributes"]["title"] for o in objects if o["type"] == "index-pattern"}
    es = make_es_client(st)
    results: dict[str, int] = {}
    try:
        for obj in objects:
            if obj["type"] not in ("search", "visualization"):
                continue
            attrs = obj["attributes"]
            source = json.loads(attrs["kibanaSavedObjectMeta"]["searchSourceJSON"])
            if obj["type"] == "visualization" and json.loads(attrs["visState"])["type"] == "vega":
                spec = json.loads(json.loads(attrs["visState"])["params"]["spec"])
                url = spec["data"]["url"]
                hits = es.search(index=url["index"], **url["body"],
                                 query={"range": {url["%timefield%"]: {"lte": NOW.isoformat()}}})["hits"]["hits"]
                windows = [w for h in hits for d in ("lipsync", "spectral")
                           for w in (h["_source"].get("detectors", {}).get(d, {}).get("timeline") or [])]
                assert [w["score"] for w in windows] == [0.8, 0.95]  # what the Vega transform flattens
                continue
            refs = {r["name"]: r["id"] for r in obj["references"]}
            index = views[refs[source["indexRefName"]]]
            query = {"bool": {"filter": [f["query"] for f in source["filter"]]}}
            if obj["type"] == "search":
                sort = [{s[0]: {"order": s[1], "unmapped_type": "keyword"}} for s in attrs["sort"]]
                response = es.search(index=index, query=query, sort=sort, size=100)
                results[obj["id"]] = len(response["hits"]["hits"])
                for hit in response["hits"]["hits"]:
                    assert set(hit["_source"]) & {c.split(".")[0] for c in attrs["columns"]}
            else:
                aggs = _es_aggs(json.loads(attrs["visState"])["aggs"])
                response = es.search(index=index, query=query, aggs=aggs, size=0)
                results[obj["id"]] = response["hits"]["total"]["value"]
    finally:
        es.close()
    prefix = st.es_index_prefix
    assert results[f"{prefix}-flagged-by-risk"] == 5
    assert results[f"{prefix}-cluster-members"] == 2  # tiktok:copy, tiktok:oldcopy
    assert results[f"{prefix}-copies-by-platform"] == 2
    assert results[f"{prefix}-video-alerts"] == 3
    assert results[f"{prefix}-evidence"] == 1
    assert results[f"{prefix}-spread-over-time"] == 27
    assert all(v > 0 for v in results.values()), results


@pytest.mark.elasticsearch
def test_every_kibana_rule_query_raises_one_alert_per_expected_video(fixture_stack: Settings) -> None:
    st = fixture_stack
    expected = {"manipulated-spreading": ["youtube:hot"], "reupload-of-flagged": ["tiktok:copy"],
                "flagged-accelerating": ["youtube:faster"]}
    es = make_es_client(st)
    try:
        items = [i for i in kibana_rules(st, load_rules()) if i["rule"] in expected]
        assert {i["rule"] for i in items} == set(expected)
        for item in items:
            params = item["body"]["params"]
            response = es.search(index=params["index"], **kibana_search_body(params, NOW))
            assert kibana_groups(params, response) == expected[item["rule"]], item["rule"]  # alert ids: the uids
            for bucket in response["aggregations"]["groupAgg"]["buckets"]:  # each alert's context: its video
                assert [h["_id"] for h in bucket["topHitsAgg"]["hits"]["hits"]] == [bucket["key"]]
    finally:
        es.close()


@pytest.mark.elasticsearch
def test_watched_person_rule_finds_flagged_videos_of_enrolled_people(make_crawl_settings: Any) -> None:
    st = make_crawl_settings()
    base = {**fixture_videos(NOW)["youtube:hot"], "scored_at": (NOW - timedelta(hours=1)).isoformat()}
    person = [{"name": "Jane Doe", "role": "candidate", "face_similarity": 0.81, "voice_similarity": 0.4,
               "voice_match": False}]
    index_videos(st, {
        "youtube:jane": {**base, "video_uid": "youtube:jane", "persons": person},
        "youtube:jane2": {**base, "video_uid": "youtube:jane2", "persons": person},
        "youtube:jane-clean": {**base, "video_uid": "youtube:jane-clean", "persons": person,
                               "fused": {"score": 0.2, "verdict": "no_signal"}},
        "youtube:nobody": {**base, "video_uid": "youtube:nobody"},
        "youtube:jane-old": {**base, "video_uid": "youtube:jane-old", "persons": person,
                             "scored_at": (NOW - timedelta(hours=9)).isoformat()},
        "youtube:official": {**base, "video_uid": "youtube:official",
                             "persons": [{**person[0], "name": "John Roe", "role": "official"}]},
    })
    (item,) = kibana_rules(st, [WATCHED])
    params = item["body"]["params"]
    (only,) = kibana_rules(st, [{**WATCHED, "roles": ["candidate"]}])
    es = make_es_client(st)
    try:
        response = es.search(index=params["index"], **kibana_search_body(params, NOW))
        candidates = es.search(index=params["index"], **kibana_search_body(only["body"]["params"], NOW))
        counts = es.search(index=st.index("videos"), size=0,
                           aggs={"p": {"terms": {"field": "persons.name"}}})["aggregations"]["p"]["buckets"]
    finally:
        es.close()
    assert kibana_groups(params, response) == ["youtube:jane", "youtube:jane2", "youtube:official"]
    assert kibana_groups(only["body"]["params"], candidates) == ["youtube:jane", "youtube:jane2"]
    assert counts == [{"key": "Jane Doe", "doc_count": 4}, {"key": "John Roe", "doc_count": 1}]  # the control's list


@pytest.mark.elasticsearch
def test_detector_fields_are_mapped_on_a_fresh_index(make_crawl_settings: Any) -> None:
    st = make_crawl_settings()
    es = make_es_client(st)
    try:
        fields = es.indices.get_field_mapping(index=st.index("detections"),
                                              fields=["detectors.*", "segments.*"]).body
        result = ResultMessage(
            video_uid="youtube:x", media_sha256="b" * 64, suite_version="s1", duration_s=2.0,
            fused=FusedScore(score=0.7, verdict="suspicious", timeline=[TimelineWindow(start_s=0, end_s=2, score=0.7)]),
            detectors={"lipsync": DetectorOutput(version="1", applicable=True, score=0.7, rank="high", timeline=[
                TimelineWindow(start_s=0, end_s=2, score=0.7)], evidence={"offset_ms": -200})},
            annotations={"persons": [{"name": "Jane Doe"}]}, produced_at=NOW)
        es.index(index=st.index("detections"), id="d", document=detection_doc(result, now=NOW), refresh=True)
        after = es.indices.get_mapping(index=st.index("detections")).body
    finally:
        es.close()
    (mapping,) = fields.values()
    types = {name: next(iter(m["mapping"].values()))["type"] for name, m in mapping["mappings"].items()}
    for name in DETECTORS:  # before any detection was written
        assert types[f"detectors.{name}.score"] == "float" and types[f"detectors.{name}.rank"] == "keyword"
    assert types["segments.score"] == "float" and types["segments.detectors"] == "keyword"
    (props,) = (m["mappings"]["properties"] for m in after.values())
    lipsync = props["detectors"]["properties"]["lipsync"]["properties"]
    assert lipsync["timeline"] == {"type": "object", "enabled": False}  # windows are kept, not indexed
    assert lipsync["evidence"] == {"type": "object", "enabled": False}
    assert props["annotations"] == {"type": "object", "enabled": False}


# ------------------------------------------------------------------ the import, against a Kibana 8.19 stand-in

def _calls(kibana: FakeKibana, since: int = 0) -> list[tuple[str, str, int]]:
    """The exchange as (method, path with the rule id as <id>, status)."""
    out = []
    for e in kibana.exchanges[since:]:
        path = e["path"].split("?")[0]
        for rule_id in kibana.rules:
            path = path.replace(rule_id, "<id>")
        out.append((e["method"], path, e["status"]))
    return out


def _kibana_settings(**extra: Any) -> Settings:
    return Settings(es_index_prefix="vigil", kibana_user="analyst", kibana_password="s3cret", **extra)


def _body(exchange: dict[str, Any]) -> Any:
    return json.loads(exchange["body"])


def test_stand_in_refuses_what_kibana_refuses(settings: Settings) -> None:
    """Not a pass-everything mock: the bodies Kibana's route schemas and rules client refuse get its 400s."""
    (item, *_) = kibana_rules(settings, load_rules())
    body = item["body"]
    action = {"group": "query matched", "id": "slack-1", "params": {"message": "{{context.message}}"},
              "frequency": {"summary": False, "notify_when": "onThrottleInterval", "throttle": "1d"}}
    with fake_kibana() as kibana:
        kibana.add_connector("slack-1")
        http = httpx.Client(base_url=kibana.url, headers={"kbn-xsrf": "t", "Authorization": "Basic eDp5"})

        def refused(method: str, path: str, payload: Any, status: int = 400) -> str:
            response = http.request(method, path, json=payload)
            assert response.status_code == status, response.text
            return str(response.json()["message"])

        rule = "/api/alerting/rule/" + item["id"]
        assert "per-action frequency params when notify_when or throttle are defined at the rule level" in refused(
            "POST", rule, {**body, "actions": [action], "notify_when": "onThrottleInterval", "throttle": "1d"})
        assert "Actions missing frequency parameters: query matched" in refused(
            "POST", rule, {**body, "actions": [{k: v for k, v in action.items() if k != "frequency"}]})
        assert "Invalid action groups: matched" in refused("POST", rule, {**body, "actions": [{**action,
                                                                                                "group": "matched"}]})
        assert "cannot be shorter than the schedule interval" in refused("POST", rule, {**body, "actions": [{
            **action, "frequency": {**action["frequency"], "throttle": "1m"}}]})
        assert refused("POST", rule, {**body, "params": {**body["params"], "termSize": 5000}}) == \
            "params invalid: [termSize]: must be less than or equal to 1000"
        assert refused("POST", rule, {**body, "schedule": {"interval": "15 minutes"}}).startswith(
            '[request body.schedule.interval]: Invalid duration "15 minutes"')
        assert refused("POST", rule, {**body, "actions": [{**action, "id": "nope"}]}, 404) == \
            "Saved object [action/nope] not found"
        assert http.post(rule, json={**body, "actions": [action]}).status_code == 200
        current = http.get(rule).json()
        assert current["actions"][0]["connector_type_id"] == ".slack" and current["actions"][0]["uuid"]
        update = {k: body[k] for k in ("name", "tags", "schedule", "params")}
        assert refused("PUT", rule, {**update, "actions": [], "enabled": False}) == \
            "[request body.enabled]: definition for this key is missing"
        assert refused("PUT", rule, {**update, "actions": current["actions"]}) == \
            "[request body.actions.0.connector_type_id]: definition for this key is missing"
        assert refused("PUT", rule, {"tags": []}) == \
            "[request body.name]: expected value of type [string] but got [undefined]"
        assert refused("POST", rule, body, 409) == f"Saved object [alert/{item['id']}] conflict"
        assert refused("POST", rule + "/_disable", {"untrack": True, "force": 1}) == \
            "[request body.force]: definition for this key is missing"
        assert http.post(rule + "/_disable").status_code == 204 and http.get(rule).json()["enabled"] is False
        assert http.get("/s/elsewhere" + rule).status_code == 404  # no such space
        assert httpx.post(kibana.url + rule, json=body, headers={"Authorization": "Basic eDp5"}).json()[
            "message"] == "Request must contain a kbn-xsrf header."
        assert httpx.get(kibana.url + rule).status_code == 401
        # saved objects: the import route's own checks, then per-object errors
        ndjson = to_ndjson(saved_objects(settings))
        files = {"file": ("vigil.ndjson", ndjson.encode(), "application/ndjson")}
        both = http.post("/api/saved_objects/_import", params={"overwrite": "true", "createNewCopies": "true"},
                         files=files)
        assert both.status_code == 400
        assert both.json()["message"] == "[request query]: cannot use [overwrite] with [createNewCopies]"
        wrong = http.post("/api/saved_objects/_import", files={"file": ("vigil.json", ndjson.encode())})
        assert wrong.status_code == 400 and wrong.json()["message"] == "Invalid file extension .json"
        newer = [dict(o) for o in saved_objects(settings)]
        newer[0] = {**newer[0], "typeMigrationVersion": "8.1.0"}  # a data view above its ceiling (8.0.0)
        above = http.post("/api/saved_objects/_import", params={"overwrite": "true"},
                          files={"file": ("x.ndjson", to_ndjson(newer).encode())})
        assert above.status_code == 422 and above.json()["message"] == (
            'Document "vigil-videos" belongs to a more recent version of Kibana [8.1.0] when the last known version '
            "is [8.0.0].")
        assert not kibana.objects  # the whole import failed
        odd = [*saved_objects(settings),
               {"type": "canvas-workpad", "id": "w", "attributes": {}, "references": []},
               {"type": "dashboard", "id": "d", "attributes": {"title": "d"}, "typeMigrationVersion": "8.9.0",
                "references": [{"name": "panel_0", "type": "visualization", "id": "missing"}]}]
        answer = http.post("/api/saved_objects/_import", params={"overwrite": "true"},
                           files={"file": ("x.ndjson", to_ndjson(odd).encode())}).json()
        errors = {e["id"]: e["error"] for e in answer["errors"]}
        assert answer["success"] is False and set(errors) == {"w", "d"}
        assert errors["w"] == {"type": "unsupported_type"}
        assert errors["d"] == {"type": "missing_references", "references": [{"type": "visualization",
                                                                             "id": "missing"}]}
        assert answer["successCount"] == 22 and not kibana.objects  # listed, but nothing written
        twice = to_ndjson(saved_objects(settings)[:1] * 2).encode()
        assert http.post("/api/saved_objects/_import", files={"file": ("x.ndjson", twice)}).json()["message"] == \
            "Non-unique import objects detected: [index-pattern:vigil-videos]"
        http.close()


def test_import_replays_the_kibana_exchange_and_keeps_attached_connectors() -> None:
    own = _kibana_settings()
    ruleset = RuleSet(rules=load_rules().rules[:3])  # the exchange below is of these three
    with fake_kibana() as kibana:
        first = run_import(own, kibana.url, rules=ruleset)
        assert first.ok and first.imported == first.objects == len(saved_objects(own)) == 22
        assert set(first.rules.values()) == {"created"}
        assert _calls(kibana) == [("POST", "/api/saved_objects/_import", 200)] + [
            ("GET", "/api/alerting/rule/<id>", 404), ("POST", "/api/alerting/rule/<id>", 200)] * 3
        upload = kibana.exchanges[0]
        assert upload["path"] == "/api/saved_objects/_import?overwrite=true"
        assert upload["headers"]["Authorization"].startswith("Basic ")
        assert upload["headers"]["Content-Type"].startswith("multipart/form-data; boundary=")
        created = {_body(e)["name"]: _body(e) for e in kibana.requests_to("^POST /api/alerting/rule/")}
        assert all("notify_when" not in b and "throttle" not in b and b["actions"] == [] for b in created.values())

        # in Kibana, an analyst attaches a Slack connector to one rule (the rule form sends this update)
        kibana.add_connector("slack-newsroom")
        rid = kibana_rule_id(own, "manipulated-spreading")
        rule = kibana.rules[rid]
        analyst = {"name": rule["name"], "tags": rule["tags"], "schedule": rule["schedule"],
                   "params": rule["params"], "actions": [{
                       "group": "query matched", "id": "slack-newsroom",
                       "params": {"message": "{{context.title}} {{context.link}}"},
                       "frequency": {"summary": False, "notify_when": "onActiveAlert", "throttle": None}}]}
        put = httpx.put(f"{kibana.url}/api/alerting/rule/{rid}", json=analyst,
                        headers={"kbn-xsrf": "ui", "Authorization": "Basic eDp5"})
        assert put.status_code == 200, put.text
        attached = put.json()["actions"][0]

        # the YAML changes: a rule is switched off, a cooldown shortened
        edited = ruleset.model_copy(update={"rules": [
            ruleset.rules[0].model_copy(update={"cooldown": timedelta(hours=12)}),
            ruleset.rules[1].model_copy(update={"enabled": False}), ruleset.rules[2]]})
        mark = len(kibana.exchanges)
        second = run_import(own, kibana.url, rules=edited)
        assert second.ok and second.rules == {"manipulated-spreading": "updated",
                                              "reupload-of-flagged": "updated, disabled",
                                              "flagged-accelerating": "updated"}
        assert _calls(kibana, mark) == [
            ("POST", "/api/saved_objects/_import", 200),
            ("GET", "/api/alerting/rule/<id>", 200), ("PUT", "/api/alerting/rule/<id>", 200),
            ("GET", "/api/alerting/rule/<id>", 200), ("PUT", "/api/alerting/rule/<id>", 200),
            ("POST", "/api/alerting/rule/<id>/_disable", 204),
            ("GET", "/api/alerting/rule/<id>", 200), ("PUT", "/api/alerting/rule/<id>", 200)]
        assert all(r.get("overwrite") for r in kibana.exchanges[mark]["answer"]["successResults"])
        update = _body(kibana.requests_to(f"^PUT /api/alerting/rule/{rid}$")[-1])
        assert set(update) == {"name", "tags", "schedule", "params", "actions"}
        assert update["actions"] == [{  # kept, in the request's shape, with the YAML cooldown per video
            "group": "query matched", "id": "slack-newsroom", "params": attached["params"], "uuid": attached["uuid"],
            "frequency": {"summary": False, "notify_when": "onThrottleInterval", "throttle": "12h"}}]
        assert kibana.rules[rid]["actions"][0]["id"] == "slack-newsroom"
        assert kibana.rules[rid]["notify_when"] is None and kibana.rules[rid]["throttle"] is None
        assert kibana.rules[kibana_rule_id(own, "reupload-of-flagged")]["enabled"] is False

        # and back on: _enable after the update
        mark = len(kibana.exchanges)
        third = run_import(own, kibana.url, rules=ruleset)
        assert third.rules["reupload-of-flagged"] == "updated, enabled"
        assert ("POST", "/api/alerting/rule/<id>/_enable", 204) in _calls(kibana, mark)
        assert kibana.rules[kibana_rule_id(own, "reupload-of-flagged")]["enabled"] is True
        assert all(e["headers"].get("kbn-xsrf") for e in kibana.exchanges if e["method"] != "GET")


def test_update_moves_a_rule_from_rule_level_throttle_to_action_frequencies() -> None:
    """A rule an earlier import created (rule-level notify_when/throttle, an action without frequency) updates."""
    own = _kibana_settings()
    (item, *_) = kibana_rules(own, load_rules())
    with fake_kibana() as kibana:
        kibana.add_connector("mail", ".email")
        old = {**item["body"], "notify_when": "onThrottleInterval", "throttle": "1d",
               "params": {**item["body"]["params"], "groupBy": "all"},
               "actions": [{"group": "query matched", "id": "mail", "params": {"to": ["desk@example.org"]}}]}
        created = httpx.post(f"{kibana.url}/api/alerting/rule/{item['id']}", json=old,
                             headers={"kbn-xsrf": "ui", "Authorization": "Basic eDp5"})
        assert created.status_code == 200, created.text
        assert KibanaClient(kibana.url, own).upsert_rule(item["id"], item["body"], item["action_frequency"]) == \
            "updated"
        rule = kibana.rules[item["id"]]
        assert rule["params"]["groupBy"] == "top" and rule["notify_when"] is None and rule["throttle"] is None
        assert rule["actions"][0]["id"] == "mail" and rule["actions"][0]["frequency"] == item["action_frequency"]


def test_update_failures_name_the_rule_and_kibanas_reason() -> None:
    own = _kibana_settings()
    (item, *_) = kibana_rules(own, load_rules())
    with fake_kibana() as kibana:
        kibana.add_connector("gone")
        client = KibanaClient(kibana.url, own)
        try:
            assert client.upsert_rule(item["id"], item["body"], item["action_frequency"]) == "created"
            attach = {k: item["body"][k] for k in ("name", "tags", "schedule", "params")} | {"actions": [{
                "group": "query matched", "id": "gone", "params": {},
                "frequency": {"summary": False, "notify_when": "onActiveAlert", "throttle": None}}]}
            assert httpx.put(f"{kibana.url}/api/alerting/rule/{item['id']}", json=attach,
                             headers={"kbn-xsrf": "ui", "Authorization": "Basic eDp5"}).status_code == 200
            del kibana.connectors["gone"]  # the connector was deleted in Kibana since
            with pytest.raises(KibanaRefused, match=r"update of rule 'Vigil: .*HTTP 404.*action/gone"):
                client.upsert_rule(item["id"], item["body"], item["action_frequency"])
            kibana.rules[item["id"]]["rule_type_id"] = ".index-threshold"  # someone else's rule under this id
            with pytest.raises(KibanaRefused, match="is a '.index-threshold' rule, not '.es-query'"):
                client.upsert_rule(item["id"], item["body"], item["action_frequency"])
        finally:
            client.close()


def test_summary_actions_keep_their_own_frequency() -> None:
    from pipeline.kibana import request_actions

    summary = {"group": "query matched", "id": "s", "params": {}, "connector_type_id": ".slack", "uuid": "u",
               "frequency": {"summary": True, "notify_when": "onActiveAlert", "throttle": None}}
    per_alert = {**summary, "frequency": {"summary": False, "notify_when": "onActiveAlert", "throttle": None}}
    freq = {"summary": False, "notify_when": "onThrottleInterval", "throttle": "1d"}
    kept, changed = request_actions([summary, per_alert], freq)
    assert kept == {k: v for k, v in summary.items() if k != "connector_type_id"}
    assert changed["frequency"] == freq and "connector_type_id" not in changed


def test_a_second_space_gets_its_own_ids() -> None:
    with fake_kibana(spaces=("default", "elections")) as kibana:
        assert run_import(_kibana_settings(), kibana.url).ok
        mark = len(kibana.exchanges)
        elections = _kibana_settings(kibana_space="elections")
        report = run_import(elections, kibana.url)
        assert report.ok and set(report.rules.values()) == {"created"}, report.errors
        answer = kibana.exchanges[mark]["answer"]
        assert kibana.exchanges[mark]["path"].startswith("/s/elections/api/saved_objects/_import")
        assert not any("destinationId" in r for r in answer["successResults"])  # no copies under random ids
        assert all(e["path"].startswith("/s/elections/") for e in kibana.exchanges[mark:])
        again = run_import(elections, kibana.url)
        assert again.ok and set(again.rules.values()) == {"updated"}
        spaces = [o["namespaces"][0] for o in kibana.objects.values()]
        assert spaces.count("default") == spaces.count("elections") == 22
        n = len(load_rules().rules)
        assert sorted(r["_space"] for r in kibana.rules.values()) == ["default"] * n + ["elections"] * n

        # what happened before the ids carried the space: copies under random ids, and a 404-then-409 for rules
        client = KibanaClient(kibana.url, elections)
        try:
            copied = client.import_objects(to_ndjson(saved_objects(_kibana_settings())))
            assert all(r.get("destinationId") for r in copied["successResults"])
            (item, *_) = kibana_rules(_kibana_settings(), load_rules())
            with pytest.raises(KibanaRefused, match="another Kibana space") as refused:
                client.upsert_rule(item["id"], item["body"], item["action_frequency"])
            assert refused.value.status == 409
        finally:
            client.close()


def test_import_reports_objects_kibana_refused_or_copied(settings: Settings) -> None:
    with fake_kibana(spaces=("default", "elections")) as kibana:
        # the default space's objects already sit in "elections" under the same ids: the import into the default
        # space gets copies with fresh ids, which the report names
        elections = KibanaClient(kibana.url, _kibana_settings(kibana_space="elections"))
        elections.import_objects(to_ndjson(saved_objects(_kibana_settings())))
        elections.close()
        report = run_import(_kibana_settings(), kibana.url)
        assert not report.ok and len(report.errors) == 22
        assert "imported as a copy with id" in report.errors[0] and "another space" in report.errors[0]
    with fake_kibana() as kibana:
        with pytest.raises(KibanaRefused, match="HTTP 404"):
            run_import(_kibana_settings(kibana_space="missing"), kibana.url)


def test_import_reports_that_kibana_wrote_nothing_while_a_reference_is_missing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import pipeline.kibana._client as client_module

    def with_dangling(settings: Settings) -> list[dict[str, Any]]:
        return [*saved_objects(settings), {"type": "dashboard", "id": "x", "attributes": {"title": "x"},
                                           "typeMigrationVersion": "8.9.0",
                                           "references": [{"name": "panel_0", "type": "search", "id": "gone"}]}]

    monkeypatch.setattr(client_module, "saved_objects", with_dangling)
    with fake_kibana() as kibana:
        report = run_import(_kibana_settings(), kibana.url)
        assert not kibana.objects and report.imported == 0 and not report.ok
        assert "missing_references" in report.errors[0] and "wrote none" in report.errors[-1]


def test_cli_import_and_export(settings: Settings, tmp_path: Path) -> None:
    with fake_kibana() as kibana:
        env = settings_env(settings) | {"VIGIL_KIBANA_API_KEY": "a2V5OnNlY3JldA==", "COLUMNS": "200"}
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")} | env
        done = subprocess.run([sys.executable, "-m", "pipeline", "kibana", "import", "--url", kibana.url],
                              capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "22 of 22 saved objects" in done.stdout and "manipulated-spreading: created" in done.stdout
        assert kibana.exchanges[0]["headers"]["Authorization"] == "ApiKey a2V5OnNlY3JldA=="
        assert "a2V5OnNlY3JldA" not in done.stdout + done.stderr
        done = subprocess.run([sys.executable, "-m", "pipeline", "kibana", "export", "--out", str(tmp_path)],
                              capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        assert (tmp_path / "saved_objects.ndjson").read_text() == (ROOT / "infra/kibana/saved_objects.ndjson").read_text()
        down = subprocess.run([sys.executable, "-m", "pipeline", "kibana", "import", "--url", "http://127.0.0.1:9"],
                              capture_output=True, text=True, env=env, timeout=120)
        assert down.returncode == 1 and "not reachable" in down.stderr
        refused = subprocess.run([sys.executable, "-m", "pipeline", "kibana", "import", "--url", kibana.url],
                                 capture_output=True, text=True, env=env | {"VIGIL_KIBANA_SPACE": "nowhere"},
                                 timeout=120)
        assert refused.returncode == 1 and "refused the saved objects (HTTP 404)" in refused.stderr
