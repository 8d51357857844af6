"""What the console reads from Elasticsearch: the triage queue, its counters, one video with everything about it,
and the alerts. Nothing here writes.

The queue ranks by risk = manipulation score × growth (views per hour), with the analyst's verdict in place of the
models' score (manipulated counts as 1; a video judged authentic goes to the end). Elasticsearch here has no
painless, so the order is built from plain queries, in three tiers read one after the other:

    1. growing (views per hour > 0), not judged authentic:  function_score = effective score × views per hour
    2. growth unknown or none (a submitted file), not judged authentic:  function_score = effective score
    3. judged authentic by an analyst:  newest verdict first

Each tier's count comes with its page, so paging walks across the tiers without reading what it skips.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import elasticsearch
from elasticsearch import Elasticsearch

from .._elasticsearch import es_errors
from .._exceptions import ServiceUnavailable
from .._messages import FLAG_THRESHOLD
from .._settings import Settings
from .._time import parse_moment

__all__ = ["QueueFilters", "QueueIndex", "effective_score", "FLAG_THRESHOLD", "ANALYST_VERDICTS"]

ANALYST_VERDICTS = ("authentic", "manipulated", "cannot_tell")
QUEUE_FIELDS = ["video_uid", "platform", "title", "url.full", "channel.name", "status", "status_reason", "fused.score",
                "fused.verdict", "spread.views", "spread.views_per_hour", "risk", "analyst", "cluster.id",
                "cluster.size", "first_seen", "published", "tags", "persons", "media.duration_s"]
MAX_WINDOW = 10_000  # Elasticsearch's index.max_result_window


def effective_score(doc: Mapping[str, Any]) -> float | None:
    """The score that ranks a video: 1 when an analyst judged it manipulated, 0 when authentic, else the models'."""
    verdict = (doc.get("analyst") or {}).get("verdict")
    if verdict == "manipulated":
        return 1.0
    if verdict == "authentic":
        return 0.0
    return (doc.get("fused") or {}).get("score")


@dataclass(frozen=True)
class QueueFilters:
    """The queue's filters; empty fields filter nothing. ``analyst`` takes a verdict or ``none`` (not judged yet)."""

    platform: str | None = None
    verdict: str | None = None
    analyst: str | None = None
    person: str | None = None
    cluster: str | None = None
    tag: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    q: str | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> QueueFilters:
        def clean(name: str) -> str | None:
            value = (params.get(name) or "").strip()
            return value[:512] or None

        def moment(name: str) -> datetime | None:
            value = clean(name)
            if value is None:
                return None
            try:
                return parse_moment(value)
            except ValueError:
                return None

        return cls(platform=clean("platform"), verdict=clean("verdict"), analyst=clean("analyst"),
                   person=clean("person"), cluster=clean("cluster"), tag=clean("tag"), status=clean("status"),
                   since=moment("since"), until=moment("until"), q=clean("q"))

    def as_params(self) -> dict[str, str]:
        out = {}
        for name, value in self.__dict__.items():
            if value is not None:
                out[name] = value.isoformat() if isinstance(value, datetime) else str(value)
        return out

    def clauses(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for name, field_ in (("platform", "platform"), ("verdict", "fused.verdict"), ("cluster", "cluster.id"),
                             ("tag", "tags"), ("status", "status"), ("person", "persons.name")):
            value = getattr(self, name)
            if value is not None:
                out.append({"term": {field_: value}})
        if self.analyst == "none":
            out.append({"bool": {"must_not": {"exists": {"field": "analyst.verdict"}}}})
        elif self.analyst is not None:
            out.append({"term": {"analyst.verdict": self.analyst}})
        if self.since or self.until:
            bounds = {}
            if self.since:
                bounds["gte"] = self.since.isoformat()
            if self.until:
                bounds["lte"] = self.until.isoformat()
            out.append({"range": {"first_seen": bounds}})
        if self.q:
            out.append({"simple_query_string": {"query": self.q, "fields": ["title", "description", "channel.name",
                                                                           "video_uid"],
                                                "default_operator": "and"}})
        return out


_AUTHENTIC = {"term": {"analyst.verdict": "authentic"}}
_GROWING = {"range": {"spread.views_per_hour": {"gt": 0}}}


def _score_functions(with_growth: bool) -> list[dict[str, Any]]:
    functions: list[dict[str, Any]] = [
        {"filter": {"bool": {"must_not": {"term": {"analyst.verdict": "manipulated"}}}},
         "field_value_factor": {"field": "fused.score", "missing": 0}},
        {"filter": {"term": {"analyst.verdict": "manipulated"}}, "weight": 1},
    ]
    if with_growth:
        functions.append({"field_value_factor": {"field": "spread.views_per_hour", "missing": 0}})
    return functions


@dataclass
class QueuePage:
    items: list[dict[str, Any]]
    total: int
    page: int
    size: int
    tiers: dict[str, int] = field(default_factory=dict)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "page": self.page, "size": self.size, "pages": self.pages, "tiers": self.tiers,
                "items": self.items}


class QueueIndex:
    """The console's reads."""

    def __init__(self, es: Elasticsearch, settings: Settings) -> None:
        self.es = es
        self.settings = settings
        self.videos = settings.index("videos")
        self.detections = settings.index("detections")
        self.spread = settings.index("spread")
        self.alerts = settings.index("alerts")
        self.verdicts = settings.index("verdicts")

    # ------------------------------------------------------------ the queue
    def _tiers(self, filters: QueueFilters) -> list[tuple[str, dict[str, Any], list[Any]]]:
        base = filters.clauses()
        tie = [{"video_uid": "asc"}]
        return [
            ("growing", {"function_score": {
                "query": {"bool": {"filter": [*base, _GROWING], "must_not": [_AUTHENTIC]}},
                "functions": _score_functions(True), "score_mode": "multiply", "boost_mode": "replace"}},
             ["_score", *tie]),
            ("growth_unknown", {"function_score": {
                "query": {"bool": {"filter": base, "must_not": [_AUTHENTIC, _GROWING]}},
                "functions": _score_functions(False), "score_mode": "multiply", "boost_mode": "replace"}},
             ["_score", *tie]),
            ("judged_authentic", {"bool": {"filter": [*base, _AUTHENTIC]}},
             [{"analyst.at": {"order": "desc", "unmapped_type": "date"}}, *tie]),
        ]

    def queue(self, filters: QueueFilters, *, page: int = 1, size: int | None = None) -> QueuePage:
        size = size or self.settings.console_page_size
        page = max(1, page)
        start = max(0, min((page - 1) * size, MAX_WINDOW - size))
        tiers = self._tiers(filters)
        # one round trip: the tiers' counts (a filters aggregation) and, speculatively, the first tier's page
        counts_body = {"size": 0, "track_total_hits": False, "query": {"bool": {"filter": filters.clauses()}},
                       "aggs": {"tiers": {"filters": {"filters": {
                           "growing": {"bool": {"filter": [_GROWING], "must_not": [_AUTHENTIC]}},
                           "growth_unknown": {"bool": {"must_not": [_AUTHENTIC, _GROWING]}},
                           "judged_authentic": _AUTHENTIC}}}}}
        name, query, sort = tiers[0]
        first_body = {"query": query, "sort": sort, "from": start, "size": size, "_source": QUEUE_FIELDS,
                      "track_total_hits": False}
        with es_errors(self.settings):
            responses = self.es.msearch(searches=[{"index": self.videos}, counts_body,
                                                  {"index": self.videos}, first_body])["responses"]
        for response in responses:
            if "error" in response:
                raise ServiceUnavailable(f"the queue query failed: {response['error']}", service="elasticsearch",
                                         hint="run `vigil setup`")
        buckets = responses[0]["aggregations"]["tiers"]["buckets"]
        sizes = [buckets[t[0]]["doc_count"] for t in tiers]
        items: list[dict[str, Any]] = []
        offset = start
        for i, ((name, query, sort), count) in enumerate(zip(tiers, sizes)):
            if len(items) >= size:
                break
            if offset >= count:
                offset -= count
                continue
            if i == 0:
                hits = responses[1]["hits"]["hits"]
            else:
                with es_errors(self.settings):
                    hits = self.es.search(index=self.videos, query=query, sort=sort, from_=offset,
                                          size=size - len(items), source_includes=QUEUE_FIELDS,
                                          track_total_hits=False)["hits"]["hits"]
            for hit in hits:
                items.append(self._item(hit["_source"], name))
            offset = 0
        return QueuePage(items=items, total=sum(sizes), page=page, size=size, tiers=dict(zip(
            [t[0] for t in tiers], sizes)))

    @staticmethod
    def _item(doc: dict[str, Any], tier: str) -> dict[str, Any]:
        doc["queue_tier"] = tier
        doc["effective_score"] = effective_score(doc)
        vph = (doc.get("spread") or {}).get("views_per_hour")
        doc["effective_risk"] = (round(doc["effective_score"] * max(vph, 0.0), 3)
                                 if doc["effective_score"] is not None and vph is not None else None)
        return doc

    def counters(self, filters: QueueFilters | None = None) -> dict[str, Any]:
        """Live counters: videos by status, flagged, flagged without a verdict, verdicts by kind, open alerts."""
        query = {"bool": {"filter": (filters or QueueFilters()).clauses()}}
        aggs = {
            "status": {"terms": {"field": "status", "size": 10}},
            "analyst": {"terms": {"field": "analyst.verdict", "size": 5}},
            "flagged": {"filter": {"range": {"fused.score": {"gte": FLAG_THRESHOLD}}}},
            "awaiting": {"filter": {"bool": {"filter": [{"range": {"fused.score": {"gte": FLAG_THRESHOLD}}}],
                                             "must_not": [{"exists": {"field": "analyst.verdict"}}]}}},
            "platforms": {"terms": {"field": "platform", "size": 20}},
        }
        with es_errors(self.settings):
            response = self.es.search(index=self.videos, query=query, size=0, aggs=aggs, track_total_hits=True)
            try:
                open_alerts = self.es.count(index=self.alerts, query={"terms": {"state": ["open", "notify_failed"]}}
                                            )["count"]
            except elasticsearch.NotFoundError:
                open_alerts = 0
        a = response["aggregations"]
        return {
            "videos": response["hits"]["total"]["value"],
            "status": {b["key"]: b["doc_count"] for b in a["status"]["buckets"]},
            "analyst": {b["key"]: b["doc_count"] for b in a["analyst"]["buckets"]},
            "flagged": a["flagged"]["doc_count"],
            "awaiting_verdict": a["awaiting"]["doc_count"],
            "platforms": [b["key"] for b in a["platforms"]["buckets"]],
            "open_alerts": open_alerts,
        }

    # ------------------------------------------------------------ one video
    def video(self, uid: str) -> dict[str, Any] | None:
        with es_errors(self.settings):
            try:
                return self.es.get(index=self.videos, id=uid)["_source"]
            except elasticsearch.NotFoundError:
                return None

    def detection(self, video: Mapping[str, Any]) -> dict[str, Any] | None:
        detection_id = video.get("detection_id")
        with es_errors(self.settings):
            if detection_id:
                try:
                    return self.es.get(index=self.detections, id=detection_id)["_source"]
                except elasticsearch.NotFoundError:
                    pass
            hits = self.es.search(index=self.detections, query={"term": {"video_uid": video["video_uid"]}}, size=1,
                                  sort=[{"@timestamp": "desc"}])["hits"]["hits"]
        return hits[0]["_source"] if hits else None

    def detection_by_id(self, detection_id: str) -> dict[str, Any] | None:
        with es_errors(self.settings):
            try:
                return self.es.get(index=self.detections, id=detection_id,
                                   source_includes=["evidence_uris", "video_uid"])["_source"]
            except elasticsearch.NotFoundError:
                return None

    def _search(self, index: str, query: dict[str, Any], *, size: int, sort: list[Any],
                fields: list[str] | None = None) -> list[dict[str, Any]]:
        with es_errors(self.settings):
            try:
                response = self.es.search(index=index, query=query, size=size, sort=sort,
                                          source_includes=fields or ["*"], ignore_unavailable=True)
            except elasticsearch.NotFoundError:
                return []
        return [hit["_source"] for hit in response["hits"]["hits"]]

    def spread_history(self, uid: str, size: int = 500) -> list[dict[str, Any]]:
        rows = self._search(self.spread, {"term": {"video_uid": uid}}, size=size, sort=[{"@timestamp": "desc"}],
                            fields=["@timestamp", "views", "views_per_hour", "likes", "comments", "age_h"])
        return list(reversed(rows))

    def cluster_members(self, cluster_id: str, size: int = 100) -> list[dict[str, Any]]:
        return self._search(self.videos, {"term": {"cluster.id": cluster_id}}, size=size,
                            sort=[{"first_seen": {"order": "asc", "unmapped_type": "date"}}, {"video_uid": "asc"}],
                            fields=["video_uid", "title", "platform", "url.full", "channel.name", "first_seen",
                                    "fused", "spread.views", "cluster", "analyst"])

    def video_alerts(self, uid: str, size: int = 50) -> list[dict[str, Any]]:
        return self._search(self.alerts, {"term": {"video_uid": uid}}, size=size, sort=[{"@timestamp": "desc"}])

    def video_verdicts(self, uid: str, size: int = 50) -> list[dict[str, Any]]:
        return self._search(self.verdicts, {"term": {"video_uid": uid}}, size=size, sort=[{"@timestamp": "desc"}])

    def alerts_page(self, *, state: str | None = None, page: int = 1, size: int = 50) -> tuple[list[dict[str, Any]], int]:
        query: dict[str, Any] = {"term": {"state": state}} if state else {"match_all": {}}
        with es_errors(self.settings):
            try:
                response = self.es.search(index=self.alerts, query=query, size=size, from_=(max(page, 1) - 1) * size,
                                          sort=[{"@timestamp": "desc"}], track_total_hits=True)
            except elasticsearch.NotFoundError:
                return [], 0
        return [h["_source"] for h in response["hits"]["hits"]], response["hits"]["total"]["value"]
