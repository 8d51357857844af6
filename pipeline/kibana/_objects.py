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

What Kibana does with them depends on the declared ``typeMigrationVersion`` (`TYPE_MIGRATION`): migrations up to that
version are taken as already applied, and a version above the type's last migration fails the import ("belongs to a
more recent version of Kibana"). So the attributes are written in the shape of that version: pies say
``legendDisplay`` (the 8.1 migration's name for ``addLegend``; without it the 8.x pie hides its legend), dashboard
drilldowns live in ``embeddableConfig.enhancements.dynamicActions`` with their target in a reference, controls in
``controlGroupInput`` with their data view in a reference.

Ids: ``<index prefix>-<name>`` in the default space, ``<index prefix>-<name>@<space>`` in another one
(`object_id`). Kibana keeps these types' ids unique across spaces and gives an object whose id lives in another
space a fresh random id on import, so one id per space keeps re-imports overwriting instead of copying.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._settings import Settings

__all__ = ["saved_objects", "to_ndjson", "DETECTORS", "data_view_id", "object_id", "Filter", "DataView", "Panel",
           "TYPE_MIGRATION", "DRILLDOWN"]

DETECTORS = ("face_forgery", "lipsync", "voice_synthetic", "nonverbal", "spectral", "identity", "provenance",
             "voice_change")
CORE_MIGRATION = "8.8.0"
TYPE_MIGRATION = {"index-pattern": "8.0.0", "search": "8.0.0", "visualization": "8.5.0", "dashboard": "8.9.0"}
INDEX_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"
DRILLDOWN = "DASHBOARD_TO_DASHBOARD_DRILLDOWN"
_IDS = uuid.UUID("6f1d9a52-1c8e-4d7e-9a57-0a3c5e2b7d11")  # namespace of the stable drilldown and control ids


def object_id(settings: Settings, name: str) -> str:
    """A saved object's id: ``<prefix>-<name>``, with ``@<space>`` outside the default space."""
    space = settings.kibana_space
    return f"{settings.es_index_prefix}-{name}" + (f"@{space}" if space and space != "default" else "")


def data_view_id(settings: Settings, short: str) -> str:
    return object_id(settings, short)


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


@dataclass(frozen=True)
class Panel:
    """A dashboard panel on Kibana's 48-column grid; ``drilldown_to`` (a dashboard id) opens that dashboard on a
    click, carrying the clicked value as a filter."""

    kind: str  # search | visualization
    ref_id: str
    x: int
    y: int
    w: int
    h: int
    drilldown_to: str | None = None
    drilldown_name: str = ""
    triggers: tuple[str, ...] = ("VALUE_CLICK_TRIGGER",)


@dataclass(frozen=True)
class Control:
    """An options-list control (a drop-down of a keyword field's values) above a dashboard."""

    view: str
    field: str
    title: str


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

    def dashboard(self, obj_id: str, title: str, panels: Sequence[Panel], description: str = "",
                  filters: Sequence[tuple[Filter, str]] = (), controls: Sequence[Control] = ()) -> str:
        refs: list[dict[str, str]] = []
        panel_json = []
        for i, panel in enumerate(panels):
            name = f"panel_{i}"
            enhancements: dict[str, Any] = {}
            if panel.drilldown_to:
                event = str(uuid.uuid5(_IDS, f"{obj_id}:{i}:{panel.drilldown_to}"))
                enhancements = {"dynamicActions": {"events": [{
                    "eventId": event, "triggers": list(panel.triggers),
                    "action": {"factoryId": DRILLDOWN, "name": panel.drilldown_name,
                               "config": {"useCurrentFilters": True, "useCurrentDateRange": True,
                                          "openInNewTab": False}}}]}}
                refs.append({"name": f"{i}:drilldown:{DRILLDOWN}:{event}:dashboardId", "type": "dashboard",
                             "id": panel.drilldown_to})
            panel_json.append({"version": CORE_MIGRATION, "type": panel.kind, "panelIndex": str(i),
                               "gridData": {"x": panel.x, "y": panel.y, "w": panel.w, "h": panel.h, "i": str(i)},
                               "embeddableConfig": {"enhancements": enhancements}, "panelRefName": name})
            refs.append({"name": name, "type": panel.kind, "id": panel.ref_id})
        filter_refs = [f"kibanaSavedObjectMeta.searchSourceJSON.filter[{i}].meta.index" for i in range(len(filters))]
        source = {"query": {"query": "", "language": "kuery"},
                  "filter": [f.render(ref) for (f, _), ref in zip(filters, filter_refs)]}
        refs += [{"name": ref, "type": "index-pattern", "id": self.dv(view)}
                 for (_, view), ref in zip(filters, filter_refs)]
        attributes: dict[str, Any] = {
            "title": title, "description": description, "panelsJSON": json.dumps(panel_json),
            "optionsJSON": json.dumps({"useMargins": True, "syncColors": False, "syncCursor": True,
                                       "syncTooltips": False, "hidePanelTitles": False}),
            "timeRestore": True, "timeFrom": "now-7d", "timeTo": "now", "refreshInterval": {"pause": False,
                                                                                         "value": 300000},
            "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(source)}}
        if controls:
            control_panels = {}
            for order, control in enumerate(controls):
                cid = str(uuid.uuid5(_IDS, f"{obj_id}:control:{control.field}"))
                control_panels[cid] = {"order": order, "width": "medium", "grow": True, "type": "optionsListControl",
                                       "explicitInput": {"id": cid, "fieldName": control.field,
                                                         "title": control.title, "dataViewId": self.dv(control.view),
                                                         "selectedOptions": [], "enhancements": {}}}
                refs.append({"name": f"controlGroup_{cid}:optionsListDataView", "type": "index-pattern",
                             "id": self.dv(control.view)})
            attributes["controlGroupInput"] = {
                "controlStyle": "oneLine", "chainingSystem": "HIERARCHICAL",
                "panelsJSON": json.dumps(control_panels),
                "ignoreParentSettingsJSON": json.dumps({"ignoreFilters": False, "ignoreQuery": False,
                                                        "ignoreTimerange": False, "ignoreValidations": False})}
        self.objects.append(_obj("dashboard", obj_id, attributes, refs))
        return obj_id


def _pie() -> dict[str, Any]:
    """Pie params in the shape of visualization 8.5.0: ``legendDisplay`` (8.1 renamed ``addLegend``)."""
    return {"type": "pie", "isDonut": True, "addTooltip": True, "legendDisplay": "show", "legendPosition": "right",
            "nestedLegend": False, "truncateLegend": True, "maxLegendLines": 1, "distinctColors": False,
            "palette": {"type": "palette", "name": "default"},
            "labels": {"show": True, "position": "default", "values": True, "valuesFormat": "percent",
                       "percentDecimals": 1, "truncate": 100, "last_level": True}}


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
    sources = [*(f"detectors.{d}.timeline" for d in DETECTORS), "fused.timeline"]
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
            {"calculate": "replace(replace(replace(datum.detector, '_source.detectors.', ''), '_source.', ''), "
                          "'.timeline', '')",
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
    """Every saved object, data views first, dashboards last (the order `_import` resolves references in); the
    video drill-down comes before the overview, whose drilldown opens it."""
    b = _Builder(settings)
    b.data_views()

    def oid(name: str) -> str:
        return object_id(settings, name)

    # -- video drill-down (filter by video_uid: a click in the overview's flagged table, or add a filter)
    record = b.search(oid("video-record"), "Vigil: video record", "videos",
                      ["video_uid", "title", "platform", "channel.name", "published", "first_seen", "status_reason",
                       "fused.score", "fused.verdict", "fused.reasons", "spread.views", "spread.views_per_hour",
                       "spread.acceleration", "spread.engagement_rate", "spread.overperformance", "risk",
                       "persons.name", "provenance.validation_state", "cluster.id", "url.full", "media.sha256"],
                      [["first_seen", "desc"]])
    views = b.vis(oid("video-views"), "Vigil: views and velocity over time", "spread", "line",
                  [_metric("max", "views", "views"), _metric("max", "views_per_hour", "views per hour"),
                   _metric("max", "overperformance", "overperformance"), _date_histogram("@timestamp")],
                  {"type": "line", "addLegend": True, "addTooltip": True})
    detector_scores = b.vis(oid("detector-scores"), "Vigil: detector scores", "detections", "horizontal_bar",
                            [*(_metric("max", f"detectors.{d}.score", d) for d in DETECTORS),
                             _metric("max", "fused.score", "fused")],
                            {"type": "histogram", "addLegend": True, "addTooltip": True})
    timelines = b.vega(oid("detector-timelines"), "Vigil: detector timelines", _timeline_spec(settings),
                       "Per-window scores of each detector and the fused score along the video; dashed line: the "
                       "0.5 flag threshold")
    evidence = b.search(oid("evidence"), "Vigil: detections and evidence plots", "detections",
                        ["video_uid", "suite_version", "fused.score", "fused.verdict", "fused.reasons",
                         "segments.start_s", "segments.end_s", "segments.detectors", "evidence_uris",
                         "media_sha256"], [["@timestamp", "desc"]])
    video_alerts = b.search(oid("video-alerts"), "Vigil: alerts", "alerts",
                            ["rule.name", "video_uid", "risk", "fused.score", "views_per_hour", "reasons", "state",
                             "notified.at"], [["@timestamp", "desc"]])
    video = b.dashboard(oid("video"), "Vigil video drill-down", [
        Panel("search", record, 0, 0, 48, 10), Panel("visualization", views, 0, 10, 24, 14),
        Panel("visualization", detector_scores, 24, 10, 24, 14), Panel("visualization", timelines, 0, 24, 48, 16),
        Panel("search", evidence, 0, 40, 24, 12), Panel("search", video_alerts, 24, 40, 24, 12)],
        "Add a filter video_uid: <uid> (or click a uid in the overview's flagged table) to see one video")

    # -- overview
    flagged = b.search(oid("flagged-by-risk"), "Vigil: flagged videos by risk", "videos",
                       ["video_uid", "title", "platform", "channel.name", "fused.score", "fused.verdict",
                        "spread.views", "spread.views_per_hour", "spread.overperformance", "risk", "persons.name",
                        "cluster.size", "url.full"],
                       [["risk", "desc"]], [FLAGGED],
                       "Videos the detectors flag, riskiest first (risk = score × views per hour)")
    flagged_table = b.vis(oid("flagged-videos"), "Vigil: flagged videos (click a uid to open the drill-down)",
                          "videos", "table",
                          [_metric("max", "risk", "risk"), _metric("max", "fused.score", "score"),
                           _metric("max", "spread.views_per_hour", "views per hour"),
                           _terms("video_uid", 50, schema="bucket", order_by="1", label="video")],
                          {"perPage": 10, "showPartialRows": False, "showTotal": False}, [FLAGGED],
                          "Click a video_uid to open Vigil video drill-down filtered on it")
    score_hist = b.vis(oid("score-distribution"), "Vigil: manipulation score distribution", "videos", "histogram",
                       [_count(), {"type": "histogram", "schema": "segment",
                                   "params": {"field": "fused.score", "interval": 0.1, "min_doc_count": False,
                                              "extended_bounds": {"min": 0, "max": 1}, "has_extended_bounds": True}}],
                       {"type": "histogram", "addLegend": False, "addTooltip": True})
    spread_time = b.vis(oid("spread-over-time"), "Vigil: spread over time (views per hour by platform)", "spread",
                        "line", [_metric("sum", "views_per_hour", "views per hour"), _date_histogram("@timestamp"),
                                 _terms("platform", 8, schema="group")],
                        {"type": "line", "addLegend": True, "addTooltip": True})
    platforms = b.vis(oid("platforms"), "Vigil: videos by platform", "videos", "pie",
                      [_count(), _terms("platform", 10)], _pie())
    verdicts = b.vis(oid("verdicts"), "Vigil: verdicts", "videos", "pie", [_count(), _terms("fused.verdict", 5)],
                     _pie())
    b.dashboard(oid("overview"), "Vigil overview", [
        Panel("search", flagged, 0, 0, 30, 18),
        Panel("visualization", flagged_table, 30, 0, 18, 18, drilldown_to=video,
              drilldown_name="Open the video drill-down"),
        Panel("visualization", score_hist, 0, 18, 16, 14), Panel("visualization", spread_time, 16, 18, 32, 14),
        Panel("visualization", platforms, 0, 32, 24, 14), Panel("visualization", verdicts, 24, 32, 24, 14)],
        "Flagged videos by risk (click a uid in the table to open its drill-down), the score distribution, spread "
        "over time and platforms; pick a watched person above to see only their videos",
        controls=[Control("videos", "persons.name", "Watched person")])

    # -- re-upload clusters
    clusters = b.vis(oid("clusters-by-reach"), "Vigil: re-upload clusters by reach", "videos", "table",
                     [_metric("max", "cluster.reach", "reach (views)"), _metric("max", "cluster.size", "copies"),
                      _metric("max", "cluster.max_score", "max score"), _metric("min", "cluster.first_seen",
                                                                                "first seen"),
                      _terms("cluster.id", 25, schema="bucket", order_by="1", label="cluster"),
                      _terms("cluster.first_uploader", 1, schema="bucket", order_by="1", label="first uploader")],
                     {"perPage": 25, "showPartialRows": False, "showTotal": False}, [IN_CLUSTER])
    members = b.search(oid("cluster-members"), "Vigil: cluster members", "videos",
                       ["cluster.id", "cluster.original", "video_uid", "platform", "channel.name", "title",
                        "published", "first_seen", "spread.views", "fused.score", "url.full"],
                       [["cluster.id", "asc"], ["first_seen", "asc"]], [IN_CLUSTER])
    copies = b.vis(oid("copies-by-platform"), "Vigil: copies by platform", "videos", "pie",
                   [_count(), _terms("platform", 10)], _pie(),
                   [IN_CLUSTER, Filter("copies only", {"term": {"cluster.original": False}})])
    b.dashboard(oid("clusters"), "Vigil re-upload clusters", [
        Panel("visualization", clusters, 0, 0, 30, 16), Panel("visualization", copies, 30, 0, 18, 16),
        Panel("search", members, 0, 16, 48, 18)],
        "Near-duplicate videos across platforms and accounts (perceptual hash of keyframes)")
    return b.objects


def to_ndjson(objects: Iterable[dict[str, Any]]) -> str:
    """One JSON object per line, keys sorted, as the saved objects ``_import`` API reads them."""
    return "".join(json.dumps(o, sort_keys=True, ensure_ascii=False) + "\n" for o in objects)
