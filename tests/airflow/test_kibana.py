"""Kibana as code, checked without a Kibana: every field a saved object or rule uses exists in the index templates
(with an aggregatable type where it is aggregated), references resolve, rule params pass the ``.es-query`` schema's
checks, every search, aggregation and rule query runs on the real Elasticsearch against fixture data and returns the
expected hits, the committed infra/kibana files are what the code builds, and `vigil kibana import` sends the
requests Kibana's APIs document (to a local recording server: a real Kibana is not available here)."""
from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from crawlkit import ROOT, settings_env
from elasticsearch import helpers
from spreadkit import fixture_videos, index_videos

from pipeline import Settings, make_es_client
from pipeline._elasticsearch import load_index_templates
from pipeline._messages import DetectorOutput, FusedScore, ResultMessage, TimelineWindow
from pipeline.alerts import load_rules
from pipeline.kibana import kibana_rules, kibana_search_body, run_import, saved_objects, to_ndjson
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
            elif how in ("aggregation", "sort", "time") and kind not in AGGREGATABLE:
                problems.append(f"{obj['id']}: {how} on {name} of type {kind} (not aggregatable)")
    assert not problems, "\n".join(problems)
    assert checked > 80


def test_every_kibana_rule_field_exists(settings: Settings) -> None:
    for item in kibana_rules(settings, load_rules()):
        params = item["body"]["params"]
        names = [params["timeField"], *_filter_fields(json.loads(params["esQuery"]))]
        for name in names:
            assert field_type(settings, "videos", name) in AGGREGATABLE, (item["rule"], name)


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


def test_rule_params_pass_the_es_query_schema(settings: Settings) -> None:
    """The checks of Kibana's EsQueryRuleParamsSchema / validateParams (x-pack stack_alerts es_query)."""
    rules = kibana_rules(settings, load_rules())
    assert len(rules) == 3 and len({r["id"] for r in rules}) == 3
    for item in rules:
        body, params = item["body"], item["body"]["params"]
        assert body["rule_type_id"] == ".es-query" and body["consumer"] == "stackAlerts"
        assert set(body) >= {"name", "rule_type_id", "consumer", "schedule", "params", "actions"}
        assert params["searchType"] == "esQuery" and params["index"] and params["timeField"]
        assert 0 <= params["size"] <= 10_000 and params["timeWindowSize"] >= 1
        assert params["timeWindowUnit"] in ("s", "m", "h", "d")
        assert params["thresholdComparator"] in (">", ">=", "<", "<=", "between", "notBetween")
        assert len(params["threshold"]) == 1 and params["aggType"] == "count" and params["groupBy"] == "all"
        assert "query" in json.loads(params["esQuery"])
        assert item["id"][14] == "4"  # a UUID v4 layout, as the create-rule API asks for
    again = kibana_rules(settings, load_rules())
    assert [r["id"] for r in again] == [r["id"] for r in rules]  # stable: imports update, never duplicate


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
        snaps = [{"_index": st.index("spread"), "_id": f"{uid}@{h}", "_source": {
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
def test_every_kibana_rule_query_returns_the_expected_hits(fixture_stack: Settings) -> None:
    st = fixture_stack
    expected = {"manipulated-spreading": ["youtube:hot"], "reupload-of-flagged": ["tiktok:copy"],
                "flagged-accelerating": ["youtube:faster"]}
    es = make_es_client(st)
    try:
        for item in kibana_rules(st, load_rules()):
            params = item["body"]["params"]
            body = kibana_search_body(params, NOW)
            hits = es.search(index=params["index"], **body)["hits"]["hits"]
            assert sorted(h["_id"] for h in hits) == expected[item["rule"]], item["rule"]
    finally:
        es.close()


# ------------------------------------------------------------------ the import command

class KibanaRecorder:
    """A local HTTP server that answers like Kibana's import and rule APIs and records every request."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.rules: dict[str, dict[str, Any]] = {}
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

            def _answer(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _record(self) -> dict[str, Any]:
                length = int(self.headers.get("Content-Length", "0"))
                entry = {"method": self.command, "path": self.path, "headers": dict(self.headers),
                         "body": self.rfile.read(length) if length else b""}
                recorder.requests.append(entry)
                return entry

            def do_GET(self) -> None:  # noqa: N802
                self._record()
                rule_id = self.path.rsplit("/", 1)[-1]
                if rule_id in recorder.rules:
                    return self._answer(200, {"id": rule_id, **recorder.rules[rule_id]})
                return self._answer(404, {"statusCode": 404, "error": "Not Found"})

            def do_POST(self) -> None:  # noqa: N802
                entry = self._record()
                if "/api/saved_objects/_import" in self.path:
                    count = entry["body"].count(b'"coreMigrationVersion"')
                    return self._answer(200, {"success": True, "successCount": count, "errors": []})
                rule_id = self.path.rsplit("/", 1)[-1]
                recorder.rules[rule_id] = json.loads(entry["body"])
                return self._answer(200, {"id": rule_id})

            def do_PUT(self) -> None:  # noqa: N802
                entry = self._record()
                recorder.rules[self.path.rsplit("/", 1)[-1]].update(json.loads(entry["body"]))
                return self._answer(200, {"id": self.path.rsplit("/", 1)[-1]})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_import_sends_saved_objects_and_upserts_rules(settings: Settings) -> None:
    recorder = KibanaRecorder()
    try:
        own = Settings(es_index_prefix="vigil", kibana_user="analyst", kibana_password="s3cret",
                       kibana_space="vigil")
        first = run_import(own, recorder.url)
        assert first.ok and first.imported == first.objects == len(saved_objects(own))
        assert set(first.rules.values()) == {"created"}
        second = run_import(own, recorder.url)
        assert set(second.rules.values()) == {"updated"}
    finally:
        recorder.close()
    upload = recorder.requests[0]
    assert upload["method"] == "POST" and upload["path"] == "/s/vigil/api/saved_objects/_import?overwrite=true"
    assert upload["headers"]["kbn-xsrf"] and upload["headers"]["Authorization"].startswith("Basic ")
    assert upload["headers"]["Content-Type"].startswith("multipart/form-data; boundary=")
    assert b'name="file"; filename="vigil.ndjson"' in upload["body"]
    assert to_ndjson(saved_objects(own)).encode() in upload["body"]
    creates = [r for r in recorder.requests if r["method"] == "POST" and "/api/alerting/rule/" in r["path"]]
    assert len(creates) == 3 and all(r["path"].startswith("/s/vigil/api/alerting/rule/") for r in creates)
    assert json.loads(creates[0]["body"])["rule_type_id"] == ".es-query"
    updates = [r for r in recorder.requests if r["method"] == "PUT"]
    assert len(updates) == 3
    assert "rule_type_id" not in json.loads(updates[0]["body"])  # the update API refuses fixed fields
    assert all(r["headers"]["kbn-xsrf"] for r in recorder.requests)


def test_cli_import_and_export(settings: Settings, tmp_path: Path) -> None:
    recorder = KibanaRecorder()
    try:
        env = settings_env(settings) | {"VIGIL_KIBANA_API_KEY": "a2V5OnNlY3JldA==", "COLUMNS": "200"}
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")} | env
        done = subprocess.run([sys.executable, "-m", "pipeline", "kibana", "import", "--url", recorder.url],
                              capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "21 of 21 saved objects" in done.stdout and "manipulated-spreading" in done.stdout
        assert recorder.requests[0]["headers"]["Authorization"] == "ApiKey a2V5OnNlY3JldA=="
        assert "a2V5OnNlY3JldA" not in done.stdout + done.stderr
        done = subprocess.run([sys.executable, "-m", "pipeline", "kibana", "export", "--out", str(tmp_path)],
                              capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        assert (tmp_path / "saved_objects.ndjson").read_text() == (ROOT / "infra/kibana/saved_objects.ndjson").read_text()
        down = subprocess.run([sys.executable, "-m", "pipeline", "kibana", "import", "--url", "http://127.0.0.1:9"],
                              capture_output=True, text=True, env=env, timeout=120)
        assert down.returncode == 1 and "not reachable" in down.stderr
    finally:
        recorder.close()
