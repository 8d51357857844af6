"""What spread tracking reads from and writes to Elasticsearch: active videos, snapshot histories, channel baselines,
hashed videos for clustering; snapshots (through the ``vigil-spread`` write alias) and partial video updates."""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from elasticsearch import Elasticsearch, helpers

from .._elasticsearch import es_errors, make_es_client, refused, snapshot_action
from .._exceptions import ServiceUnavailable
from .._settings import Settings

__all__ = ["SpreadIndex", "POLLED_STATUSES", "VIDEO_FIELDS"]

logger = logging.getLogger(__name__)

#: videos in these states are re-polled (skipped and refused ones are not followed)
POLLED_STATUSES = ("queued", "scored")
VIDEO_FIELDS = ["video_uid", "url.full", "platform", "channel.id", "channel.name", "published", "first_seen",
                "last_polled", "media.uri", "phash", "fused.score", "fused.verdict", "spread.views", "cluster", "title",
                "risk", "status", "analyst.verdict", "next_poll", "poll_deadline", "poll_early", "channel.url",
                "watchlist.kind", "watchlist.target", "listings_missed"]
PAGE_SIZE = 5_000  # videos per page when reading the whole index
PIT_KEEP_ALIVE = "2m"  # between two pages


class SpreadIndex:
    """Spread's reads and writes on Elasticsearch (one client, passed in or built from Settings)."""

    def __init__(self, settings: Settings, es: Elasticsearch | None = None) -> None:
        self.settings = settings
        self._own = es is None
        self.es = es or make_es_client(settings)
        self.videos = settings.index("videos")
        self.spread = settings.index("spread")

    def close(self) -> None:
        if self._own:
            self.es.close()

    def _active(self, now: datetime) -> list[dict[str, Any]]:
        since = now - timedelta(days=self.settings.spread_active_days)
        return [{"range": {"first_seen": {"gte": since.isoformat()}}},
                {"terms": {"status": list(POLLED_STATUSES)}},
                {"exists": {"field": "url.full"}}]

    @staticmethod
    def _due(now: datetime) -> dict[str, Any]:
        """Due now: its next reading's time has come, or it was never scheduled (seen before schedules existed)."""
        return {"bool": {"should": [{"range": {"next_poll": {"lte": now.isoformat()}}},
                                    {"bool": {"must_not": {"exists": {"field": "next_poll"}}}}],
                         "minimum_should_match": 1}}

    def active_videos(self, now: datetime) -> list[dict[str, Any]]:
        """Followed videos (first seen within ``spread_active_days``) whose next reading is due, most overdue first
        (``pipeline.spread._schedule``), the riskiest first among equals; at most ``spread_max_videos``."""
        query = {"bool": {"filter": [*self._active(now), self._due(now)]}}
        with es_errors(self.settings):
            response = self.es.search(index=self.videos, size=self.settings.spread_max_videos, query=query,
                                      source_includes=VIDEO_FIELDS, track_total_hits=False,
                                      sort=[{"next_poll": {"order": "asc", "unmapped_type": "date",
                                                           "missing": "_first"}},
                                            {"risk": {"order": "desc", "unmapped_type": "float", "missing": "_last"}},
                                            {"video_uid": "asc"}])
        return [hit["_source"] for hit in response["hits"]["hits"]]

    def early_videos(self, now: datetime, channel_urls: Iterable[str], listing_targets: Iterable[str]
                     ) -> list[dict[str, Any]]:
        """Followed videos not due yet but inside their reading's early window (``poll_early`` passed) that a listing
        about to be read may show: their channel's page or their feed is among the given ones; at most
        ``spread_max_videos``, the soonest due first."""
        channels, targets = sorted(set(channel_urls)), sorted(set(listing_targets))
        if not channels and not targets:
            return []
        shared = [{"terms": {"channel.url": channels}}] if channels else []
        if targets:
            shared.append({"terms": {"watchlist.target": targets}})
        query = {"bool": {"filter": [*self._active(now), {"range": {"poll_early": {"lte": now.isoformat()}}},
                                     {"range": {"next_poll": {"gt": now.isoformat()}}},
                                     {"bool": {"should": shared, "minimum_should_match": 1}}]}}
        with es_errors(self.settings):
            response = self.es.search(index=self.videos, size=self.settings.spread_max_videos, query=query,
                                      source_includes=VIDEO_FIELDS, track_total_hits=False,
                                      sort=[{"next_poll": {"order": "asc"}}, {"video_uid": "asc"}])
        return [hit["_source"] for hit in response["hits"]["hits"]]

    def backlog(self, now: datetime) -> dict[str, int]:
        """How far the readings are behind: followed videos due now, and those past their reading's deadline (a
        missed checkpoint)."""
        with es_errors(self.settings):
            due = self.es.count(index=self.videos, query={"bool": {"filter": [*self._active(now), self._due(now)]}})
            overdue = self.es.count(index=self.videos, query={"bool": {"filter": [
                *self._active(now), {"range": {"poll_deadline": {"lt": now.isoformat()}}}]}})
        return {"due": int(due["count"]), "overdue": int(overdue["count"])}

    def videos_by_uid(self, uids: Iterable[str]) -> dict[str, dict[str, Any]]:
        ids = sorted(set(uids))
        if not ids:
            return {}
        with es_errors(self.settings):
            response = self.es.mget(index=self.videos, ids=ids, source_includes=VIDEO_FIELDS)
        return {d["_id"]: d["_source"] for d in response["docs"] if d.get("found")}

    def histories(self, uids: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
        """Every snapshot of the given videos, oldest first."""
        ids = sorted(set(uids))
        out: dict[str, list[dict[str, Any]]] = {uid: [] for uid in ids}
        if not ids:
            return out
        query = {"query": {"terms": {"video_uid": ids}},
                 "_source": ["video_uid", "@timestamp", "views", "likes", "comments", "reposts", "age_h"]}
        with es_errors(self.settings):
            for hit in helpers.scan(self.es, index=self.spread, query=query, size=1000):
                src = hit["_source"]
                out.setdefault(src["video_uid"], []).append(src)
        for snaps in out.values():
            snaps.sort(key=lambda s: s["@timestamp"])
        return out

    def channel_videos(self, channel_ids: Iterable[str], per_channel: int) -> dict[str, list[str]]:
        """The uids of each channel's most recent videos (by upload time), newest first."""
        out: dict[str, list[str]] = {}
        for channel in sorted({c for c in channel_ids if c}):
            with es_errors(self.settings):
                response = self.es.search(
                    index=self.videos, size=per_channel, track_total_hits=False, source_includes=["video_uid"],
                    query={"bool": {"filter": [{"term": {"channel.id": channel}}]}},
                    sort=[{"published": {"order": "desc", "unmapped_type": "date", "missing": "_last"}},
                          {"video_uid": "asc"}])
            out[channel] = [hit["_id"] for hit in response["hits"]["hits"]]
        return out

    def to_hash(self, limit: int) -> list[dict[str, Any]]:
        """Videos with stored media and no perceptual hash yet, newest first (an undecodable file is tried again
        next run, but never keeps newer videos waiting)."""
        query = {"bool": {"filter": [{"exists": {"field": "media.uri"}}],
                          "must_not": [{"exists": {"field": "phash"}}]}}
        with es_errors(self.settings):
            response = self.es.search(index=self.videos, size=limit, query=query, track_total_hits=False,
                                      source_includes=["video_uid", "media.uri", "media.sha256"],
                                      sort=[{"first_seen": {"order": "desc", "unmapped_type": "date"}}])
        return [hit["_source"] for hit in response["hits"]["hits"]]

    def cluster_candidates(self, now: datetime) -> list[dict[str, Any]]:
        """Every hashed video plus the active ones (hashed or not): what clustering looks at, however many.

        Read page by page through a point in time (a consistent view while pages are read) with
        ``search_after``, so a re-upload of a video older than any page size still finds it."""
        since = now - timedelta(days=self.settings.spread_active_days)
        query = {"bool": {"should": [{"exists": {"field": "phash"}},
                                     {"bool": {"filter": [{"range": {"first_seen": {"gte": since.isoformat()}}},
                                                          {"terms": {"status": list(POLLED_STATUSES)}}]}}],
                          "minimum_should_match": 1}}
        return list(self._paged(query))

    def _paged(self, query: Mapping[str, Any], fields: Sequence[str] = VIDEO_FIELDS) -> Iterable[dict[str, Any]]:
        """Every matching video's source, ``PAGE_SIZE`` at a time, through a point in time and ``search_after``."""
        with es_errors(self.settings):
            pit = self.es.open_point_in_time(index=self.videos, keep_alive=PIT_KEEP_ALIVE)["id"]
        try:
            after: list[Any] | None = None
            while True:
                with es_errors(self.settings):
                    response = self.es.search(pit={"id": pit, "keep_alive": PIT_KEEP_ALIVE}, size=PAGE_SIZE,
                                              query=query, source_includes=list(fields), track_total_hits=False,
                                              sort=[{"_shard_doc": "asc"}], search_after=after)
                pit = response.get("pit_id", pit)
                hits = response["hits"]["hits"]
                for hit in hits:
                    yield hit["_source"]
                if len(hits) < PAGE_SIZE:
                    return
                after = hits[-1]["sort"]
        finally:
            try:
                self.es.close_point_in_time(id=pit)
            except Exception as exc:  # noqa: BLE001 - it expires by itself after PIT_KEEP_ALIVE
                logger.debug("point in time not closed: %s", exc)

    def write(self, snapshots: Sequence[Mapping[str, Any]] = (),
              updates: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        """Index snapshots (one per video and time: written twice, stored once) and apply partial video updates;
        visible to searches on return."""
        actions: list[dict[str, Any]] = [snapshot_action(self.spread, dict(snap)) for snap in snapshots]
        for uid, doc in (updates or {}).items():
            actions.append({"_op_type": "update", "_index": self.videos, "_id": uid, "doc": dict(doc)})
        if not actions:
            return
        with es_errors(self.settings):
            ok, errors = helpers.bulk(self.es, actions, raise_on_error=False, stats_only=False, refresh=True)
        errors = refused(errors)
        if errors:
            raise ServiceUnavailable(f"Elasticsearch refused {len(errors)} of {len(actions)} spread writes, e.g. "
                                     f"{errors[0]}", service="elasticsearch", hint="run `vigil setup`")
        logger.debug("wrote %d spread documents", ok)
