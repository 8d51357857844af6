"""Kibana saved objects as code: data views, saved searches, visualizations and three dashboards, built from small
Python specs so the source stays readable and diffs stay small. `saved_objects(settings)` returns them in import
order; `to_ndjson` writes the file the saved objects ``_import`` API takes.

Dashboards:

- **Vigil overview**: flagged videos by risk (saved search), manipulation score distribution, spread over time
  (views per hour by platform), videos by platform, verdicts.
- **Vigil video drill-down**: filter on one ``video_uid`` (a dashboard filter or a click in the overview); the
  video's record, views and velocity over time, per-detector scores, detector timelines (Vega, from each detection's
  per-window scores), evidence plots and the video's alerts.
- **Vigil re-upload clusters**: clusters by reach, their members across platforms and accounts, copies by platform.

Visualizations are aggregation-based (``visState``), which every 8.x Kibana imports and migrates; filters are
Elasticsearch query DSL (``custom`` filters), so tests can run each one on a real Elasticsearch.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._settings import Settings

__all__ = ["saved_objects", "to_ndjson", "DETECTORS", "data_view_id", "Filter", "DataView"]

DETECTORS = ("face_forgery", "lipsync", "voice_synthetic", "nonverbal", "spectral")
CORE_MIGRATION = "8.8.0"
TYPE_MIGRATION = {"index-pattern": "8.0.0", "search": "8.0.0", "visualization": "8.5.0", "dashboard": "8.9.0"}
INDEX_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"


def data_view_id(settings: Settings, short: str) -> str:
    return f"{settings.es_index_prefix}-{short}"


@dataclass(frozen=True)
class DataView:
    short: str  # videos | detections | spread | alerts
    time_field: str
    name: str


DATA_VIEWS = (
    DataView("videos", "first_seen", "Vigil videos"),
    DataView("detections", "@timestamp", "Vigil detections"),
    DataView("spread", "@timestamp", "Vigil spread snapshots"),
    DataView("alerts", "@timestamp", "Vigil alerts"),
)


@dataclass(frozen=True)
class Filter:
    """A dashboard or search filter in Elasticsearch query DSL, with the label Kibana shows."""

    label: str
    query: dict[str, Any]

    def render(self, ref_name: str) -> dict[str, Any]:
        return {"$state": {"store": "appState"},
                "meta": {"alias": self.label, "disabled": False, "negate": False, "type": "custom", "key": "query",
                         "value": json.dumps(self.query), "indexRefName": ref_name},
                "query": self.query}


FLAGGED = Filter("flagged (score ≥ 0.5)", {"range": {"fused.score": {"gte": 0.5}}})
IN_CLUSTER = Filter("re-uploaded (cluster of 2 or more)", {"range": {"cluster.size": {"gte": 2}}})


def _search_source(filters: Sequence[Filter], *, query: str = "") -> tuple[str, list[str]]:
    """(searchSourceJSON, the filters' reference names) for an object on one data view."""
    refs = [f"kibanaSavedObjectMeta.searchSourceJSON.filter[{i}].meta.index" for i in range(len(filters))]
    source = {"query": {"query": query, "language": "kuery"},
              "filter": [f.render(ref) for f, ref in zip(filters, refs)], "indexRefName": INDEX_REF}
    return json.dumps(source), refs


def _obj(kind: str, obj_id: str, attributes: dict[str, Any], references: list[dict[str, str]]) -> dict[str, Any]:
    return {"type": kind, "id": obj_id, "attributes": attributes, "references": references,
            "coreMigrationVersion": CORE_MIGRATION, "typeMigrationVersion": TYPE_MIGRATION[kind], "managed": False}


def _dv_refs(dv: str, filter_refs: Iterable[str]) -> list[dict[str, str]]:
    return [{"name": INDEX_REF, "type": "index-pattern", "id": dv},
            *({"name": ref, "type": "index-pattern", "id": dv} for ref in filter_refs)]


@dataclass
class _Builder:
    settings: Settings
    objects: list[dict[str, Any]] = field(default_factory=list)

    def dv(self, short: str) -> str:
        return data_view_id(self.settings, short)

    def data_views(self) -> None:
        for view in DATA_VIEWS:
            self.objects.append(_obj("index-pattern", self.dv(view.short), {
                "title": self.settings.index(view.short),  # type: ignore[arg-type]
                "name": view.name, "timeFieldName": view.time_field, "allowNoIndex": True}, []))

    def search(self, obj_id: str, title: str, view: str, columns: list[str], sort: list[list[str]],
               filters: Sequence[Filter] = (), description: str = "") -> str:
        source, refs = _search_source(filters)
        self.objects.append(_obj("search", obj_id, {
            "title": title, "description": description, "columns": columns, "sort": sort, "grid": {},
            "hideChart": False, "isTextBasedQuery": False,
            "kibanaSavedObjectMeta": {"searchSourceJSON": source}}, _dv_refs(self.dv(view), refs)))
        return obj_id

    def vis(self, obj_id: str, title: str, view: str, vis_type: str, aggs: list[dict[str, Any]],
            params: dict[str, Any] | None = None, filters: Sequence[Filter] = (), description: str = "") -> str:
        state = {"title": title, "type": vis_type, "aggs": [
            {"id": str(i + 1), "enabled": True, **agg} for i, agg in enumerate(aggs)], "params": params or {}}
        source, refs = _search_source(filters)
        self.objects.append(_obj("visualization", obj_id, {
            "title": title, "description": description, "visState": json.dumps(state), "uiStateJSON": "{}",
            "version": 1, "kibanaSavedObjectMeta": {"searchSourceJSON": source}}, _dv_refs(self.dv(view), refs)))
        return obj_id

    def vega(self, obj_id: str, title: str, spec: dict[str, Any], description: str = "") -> str:
        state = {"title": title, "type": "vega", "aggs": [], "params": {"spec": json.dumps(spec, indent=2)}}
        self.objects.append(_obj("visualization", obj_id, {
            "title": title, "description": description, "visState": json.dumps(state), "uiStateJSON": "{}",
            "version": 1, "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(
                {"query": {"query": "", "language": "kuery"}, "filter": []})}}, []))
        return obj_id

    def dashboard(self, obj_id: str, title: str, panels: list[tuple[str, str, int, int, int, int]],
                  description: str = "", filters: Sequence[tuple[Filter, str]] = ()) -> None:
        """panels: (object type, object id, x, y, w, h) on Kibana's 48-column grid."""
        panel_json, refs = [], []
        for i, (kind, ref_id, x, y, w, h) in enumerate(panels):
            name = f"panel_{i}"
            panel_json.append({"version": CORE_MIGRATION, "type": kind, "panelIndex": str(i),
                               "gridData": {"x": x, "y": y, "w": w, "h": h, "i": str(i)},
                               "embeddableConfig": {"enhancements": {}}, "panelRefName": name})
            refs.append({"name": name, "type": kind, "id": ref_id})
        filter_refs = [f"kibanaSavedObjectMeta.searchSourceJSON.filter[{i}].meta.index" for i in range(len(filters))]
        source = {"query": {"query": "", "language": "kuery"},
                  "filter": [f.render(ref) for (f, _), ref in zip(filters, filter_refs)]}
        refs += [{"name": ref, "type": "index-pattern", "id": self.dv(view)}
                 for (_, view), ref in zip(filters, filter_refs)]
        self.objects.append(_obj("dashboard", obj_id, {
            "title": title, "description": description, "panelsJSON": json.dumps(panel_json),
            "optionsJSON": json.dumps({"useMargins": True, "syncColors": False, "syncCursor": True,
                                       "syncTooltips": False, "hidePanelTitles": False}),
            "timeRestore": True, "timeFrom": "now-7d", "timeTo": "now", "refreshInterval": {"pause": False,
                                                                                         "value": 300000},
            "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(source)}}, refs))


def _count() -> dict[str, Any]:
    return {"type": "count", "schema": "metric", "params": {}}


def _metric(kind: str, field_name: str, label: str | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"field": field_name}
    if label:
        params["customLabel"] = label
    return {"type": kind, "schema": "metric", "params": params}


def _terms(field_name: str, size: int = 10, schema: str = "segment", order_by: str = "1",
           label: str | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"field": field_name, "size": size, "order": "desc", "orderBy": order_by,
                              "otherBucket": False, "missingBucket": False}
    if label:
        params["customLabel"] = label
    return {"type": "terms", "schema": schema, "params": params}


def _date_histogram(field_name: str) -> dict[str, Any]:
    return {"type": "date_histogram", "schema": "segment",
            "params": {"field": field_name, "interval": "auto", "min_doc_count": 1, "extended_bounds": {}}}


def _timeline_spec(settings: Settings) -> dict[str, Any]:
    """Vega-Lite: every detector's per-window scores of the detections in context (filter the dashboard by video)."""
    sources = [f"detectors.{d}.timeline" for d in DETECTORS]
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "title": "Detector scores over the video (per window)",
        "data": {"url": {"index": settings.index("detections"), "%context%": True, "%timefield%": "@timestamp",
                         "body": {"size": 20, "_source": ["video_uid", *sources]}},
                 "format": {"property": "hits.hits"}},
        "transform": [
            {"fold": [f"_source.{s}" for s in sources], "as": ["detector", "windows"]},
            {"flatten": ["windows"]},
            {"filter": "datum.windows != null"},
            {"calculate": "replace(replace(datum.detector, '_source.detectors.', ''), '.timeline', '')",
             "as": "detector"},
            {"calculate": "datum.windows.start_s", "as": "start_s"},
            {"calculate": "datum.windows.end_s", "as": "end_s"},
            {"calculate": "datum.windows.score", "as": "score"},
        ],
        "layer": [
            {"mark": {"type": "line", "point": True, "interpolate": "step-after"},
             "encoding": {"x": {"field": "start_s", "type": "quantitative", "title": "seconds"},
                          "y": {"field": "score", "type": "quantitative", "scale": {"domain": [0, 1]},
                                "title": "score"},
                          "color": {"field": "detector", "type": "nominal"},
                          "tooltip": [{"field": "detector"}, {"field": "start_s"}, {"field": "end_s"},
                                      {"field": "score", "format": ".2f"}]}},
            {"mark": {"type": "rule", "strokeDash": [4, 4], "color": "firebrick"}, "data": {"values": [{"y": 0.5}]},
             "encoding": {"y": {"field": "y", "type": "quantitative"}}},
        ],
    }


def saved_objects(settings: Settings) -> list[dict[str, Any]]:
    """Every saved object, data views first, dashboards last (the order `_import` resolves references in)."""
    b = _Builder(settings)
    b.data_views()
    p = settings.es_index_prefix

    # -- overview
    flagged = b.search(f"{p}-flagged-by-risk", "Vigil: flagged videos by risk", "videos",
                       ["title", "platform", "channel.name", "fused.score", "fused.verdict", "spread.views",
                        "spread.views_per_hour", "spread.overperformance", "risk", "cluster.size", "url.full"],
                       [["risk", "desc"]], [FLAGGED],
                       "Videos the detectors flag, riskiest first (risk = score × views per hour)")
    score_hist = b.vis(f"{p}-score-distribution", "Vigil: manipulation score distribution", "videos", "histogram",
                       [_count(), {"type": "histogram", "schema": "segment",
                                   "params": {"field": "fused.score", "interval": 0.1, "min_doc_count": False,
                                              "extended_bounds": {"min": 0, "max": 1}, "has_extended_bounds": True}}],
                       {"type": "histogram", "addLegend": False, "addTooltip": True})
    spread_time = b.vis(f"{p}-spread-over-time", "Vigil: spread over time (views per hour by platform)", "spread",
                        "line", [_metric("sum", "views_per_hour", "views per hour"), _date_histogram("@timestamp"),
                                 _terms("platform", 8, schema="group")],
                        {"type": "line", "addLegend": True, "addTooltip": True})
    platforms = b.vis(f"{p}-platforms", "Vigil: videos by platform", "videos", "pie",
                      [_count(), _terms("platform", 10)], {"type": "pie", "isDonut": True, "addLegend": True})
    verdicts = b.vis(f"{p}-verdicts", "Vigil: verdicts", "videos", "pie", [_count(), _terms("fused.verdict", 5)],
                     {"type": "pie", "isDonut": True, "addLegend": True})
    b.dashboard(f"{p}-overview", "Vigil overview", [
        ("search", flagged, 0, 0, 48, 18), ("visualization", score_hist, 0, 18, 16, 14),
        ("visualization", spread_time, 16, 18, 32, 14), ("visualization", platforms, 0, 32, 24, 14),
        ("visualization", verdicts, 24, 32, 24, 14)],
        "Flagged videos by risk, the score distribution, spread over time and platforms")

    # -- video drill-down (filter by video_uid: click a video_uid, or add a filter)
    record = b.search(f"{p}-video-record", "Vigil: video record", "videos",
                      ["video_uid", "title", "platform", "channel.name", "published", "first_seen", "status_reason",
                       "fused.score", "fused.verdict", "fused.reasons", "spread.views", "spread.views_per_hour",
                       "spread.acceleration", "spread.engagement_rate", "spread.overperformance", "risk",
                       "cluster.id", "url.full", "media.sha256"], [["first_seen", "desc"]])
    views = b.vis(f"{p}-video-views", "Vigil: views and velocity over time", "spread", "line",
                  [_metric("max", "views", "views"), _metric("max", "views_per_hour", "views per hour"),
                   _metric("max", "overperformance", "overperformance"), _date_histogram("@timestamp")],
                  {"type": "line", "addLegend": True, "addTooltip": True})
    detector_scores = b.vis(f"{p}-detector-scores", "Vigil: detector scores", "detections", "horizontal_bar",
                            [*(_metric("max", f"detectors.{d}.score", d) for d in DETECTORS),
                             _metric("max", "fused.score", "fused")],
                            {"type": "histogram", "addLegend": True, "addTooltip": True})
    timelines = b.vega(f"{p}-detector-timelines", "Vigil: detector timelines", _timeline_spec(settings),
                       "Per-window scores of each detector along the video; dashed line: the 0.5 flag threshold")
    evidence = b.search(f"{p}-evidence", "Vigil: detections and evidence plots", "detections",
                        ["video_uid", "suite_version", "fused.score", "fused.verdict", "fused.reasons",
                         "evidence_uris", "media_sha256"], [["@timestamp", "desc"]])
    video_alerts = b.search(f"{p}-video-alerts", "Vigil: alerts", "alerts",
                            ["rule.name", "video_uid", "risk", "fused.score", "views_per_hour", "reasons", "state",
                             "notified.at"], [["@timestamp", "desc"]])
    b.dashboard(f"{p}-video", "Vigil video drill-down", [
        ("search", record, 0, 0, 48, 10), ("visualization", views, 0, 10, 24, 14),
        ("visualization", detector_scores, 24, 10, 24, 14), ("visualization", timelines, 0, 24, 48, 16),
        ("search", evidence, 0, 40, 24, 12), ("search", video_alerts, 24, 40, 24, 12)],
        "Add a filter video_uid: <uid> (or click one in the overview) to see one video")

    # -- re-upload clusters
    clusters = b.vis(f"{p}-clusters-by-reach", "Vigil: re-upload clusters by reach", "videos", "table",
                     [_metric("max", "cluster.reach", "reach (views)"), _metric("max", "cluster.size", "copies"),
                      _metric("max", "cluster.max_score", "max score"), _metric("min", "cluster.first_seen",
                                                                                "first seen"),
                      _terms("cluster.id", 25, schema="bucket", order_by="1", label="cluster"),
                      _terms("cluster.first_uploader", 1, schema="bucket", order_by="1", label="first uploader")],
                     {"perPage": 25, "showPartialRows": False, "showTotal": False}, [IN_CLUSTER])
    members = b.search(f"{p}-cluster-members", "Vigil: cluster members", "videos",
                       ["cluster.id", "cluster.original", "platform", "channel.name", "title", "published",
                        "first_seen", "spread.views", "fused.score", "url.full"],
                       [["cluster.id", "asc"], ["first_seen", "asc"]], [IN_CLUSTER])
    copies = b.vis(f"{p}-copies-by-platform", "Vigil: copies by platform", "videos", "pie",
                   [_count(), _terms("platform", 10)], {"type": "pie", "isDonut": True, "addLegend": True},
                   [IN_CLUSTER, Filter("copies only", {"term": {"cluster.original": False}})])
    b.dashboard(f"{p}-clusters", "Vigil re-upload clusters", [
        ("visualization", clusters, 0, 0, 30, 16), ("visualization", copies, 30, 0, 18, 16),
        ("search", members, 0, 16, 48, 18)],
        "Near-duplicate videos across platforms and accounts (perceptual hash of keyframes)")
    return b.objects


def to_ndjson(objects: Iterable[dict[str, Any]]) -> str:
    """One JSON object per line, keys sorted, as the saved objects ``_import`` API reads them."""
    return "".join(json.dumps(o, sort_keys=True, ensure_ascii=False) + "\n" for o in objects)
