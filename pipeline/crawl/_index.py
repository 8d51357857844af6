"""What the crawl writes and reads: `vigil-videos` documents, `vigil-spread` snapshots and `vigil.job/1` messages.

Writes are idempotent: a video document's id is its uid, a snapshot's id is (uid, time), and a job's key is the uid.
A downloaded video's job is produced (acks=all, awaited) *before* its document says ``queued``, so the document is
the crawl's commit: a crash in between means the next run downloads again and produces a duplicate job, which
downstream writes absorb; never a queued document without a job.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from elasticsearch import Elasticsearch, helpers

from .._elasticsearch import es_errors, make_es_client, refused, snapshot_action
from .._exceptions import ServiceUnavailable
from .._kafka import make_producer
from .._messages import JobMessage, SourceMetadata, encode
from .._settings import Settings
from ..spread._schedule import PollSchedule
from ._candidate import Candidate, utcnow

__all__ = ["CrawlIndex", "JobQueue", "video_document", "spread_snapshot", "RETRYABLE_REASONS", "build_job"]

logger = logging.getLogger(__name__)

#: documents with a reason starting like this are tried again by later runs (everything else is final)
RETRYABLE_REASONS = ("failed:", "skipped: download budget")
CHANNEL_SAMPLE = 200


def _first_reading(c: Candidate, schedule: PollSchedule | None) -> dict[str, str]:
    """The counters read at discovery are the first reading; the next is the spread refresh's first checkpoint."""
    return (schedule or PollSchedule()).next_poll(c.discovered_at, c.published).fields()


def _engagement(c: Candidate) -> float | None:
    if not c.views or c.likes is None or c.comments is None:
        return None
    return round((c.likes + c.comments) / c.views, 6)


def video_document(c: Candidate, now: datetime | None = None, schedule: PollSchedule | None = None) -> dict[str, Any]:
    """The `vigil-videos` document of a candidate (fields as in infra/elasticsearch/index/videos.json); ``schedule``
    places its next spread reading (the default checkpoints when None)."""
    now = now or utcnow()
    doc: dict[str, Any] = {
        "@timestamp": now.isoformat(),
        "video_uid": c.video_uid,
        "platform": c.platform,
        "platform_id": c.platform_id,
        "url": {"full": c.url, "domain": c.domain},
        "title": c.title,
        "description": c.description,
        "channel": {"id": c.channel_id, "name": c.channel, "url": c.channel_url},
        "language": c.language,
        "tags": c.tags,
        "watchlist": {"kind": c.entry_kind, "target": c.entry_target, "name": c.watchlist},
        "published": c.published.isoformat() if c.published else None,
        "first_seen": (c.first_seen or c.discovered_at).isoformat(),
        "last_polled": c.discovered_at.isoformat(),
        **_first_reading(c, schedule),
        "status": c.status,
        "status_reason": c.status_reason,
        "relevance": {"score": c.relevance_score, "reason": c.relevance_reason},
        "rank": {"position": c.rank, "score": c.rank_score, "reason": c.rank_reason,
                 "channel_ratio": c.channel_ratio},
        "spread": {
            "views": c.views, "likes": c.likes, "comments": c.comments, "reposts": c.reposts,
            "views_per_hour": round(c.views_per_hour, 3) if c.views_per_hour is not None else None,
            # overperformance (CrowdTangle's, pipeline.spread) needs snapshots of the channel's other videos:
            # the spread refresh fills it in; the crawl's channel ratio above is a ranking signal only
            "overperformance": None, "engagement_rate": _engagement(c), "age_h": c.age_h,
            "updated": c.discovered_at.isoformat(),
        },
        "event": {"created": now.isoformat(), "dataset": "vigil.crawl"},
        "timings_ms": c.timings_ms,
    }
    if c.media_sha256:
        doc["media"] = {"sha256": c.media_sha256, "uri": c.media_uri, "bytes": c.media_bytes,
                        "duration_s": c.media_duration_s, "width": c.media_width, "height": c.media_height}
    return doc


def spread_snapshot(c: Candidate) -> dict[str, Any]:
    """The first `vigil-spread` snapshot of a candidate; counters the platform withholds stay null."""
    counters = {"views": c.views, "likes": c.likes, "comments": c.comments, "reposts": c.reposts}
    at = c.discovered_at.isoformat()
    return {
        "@timestamp": at,
        "video_uid": c.video_uid,
        "platform": c.platform,
        "channel": {"id": c.channel_id},
        **counters,
        "age_h": c.age_h,
        "views_per_hour": round(c.views_per_hour, 3) if c.views_per_hour is not None else None,
        "acceleration": None,  # needs a second snapshot
        "engagement_rate": _engagement(c),
        "overperformance": None,  # see video_document
        "counters_missing": sorted(k for k, v in counters.items() if v is None),
        "event": {"created": utcnow().isoformat(), "dataset": "vigil.crawl"},
    }


def build_job(c: Candidate) -> JobMessage:
    """The `vigil.job/1` message of a downloaded candidate."""
    assert c.media_uri and c.media_sha256, "only downloaded candidates become jobs"
    source = SourceMetadata(platform=c.platform or "unknown", url=c.url, title=c.title, channel=c.channel,
                            channel_id=c.channel_id, published=c.published, views=c.views, likes=c.likes,
                            comments=c.comments, watchlist=c.watchlist, tags=c.tags, language=c.language,
                            relevance=c.relevance_score, rank=c.rank)
    return JobMessage(video_uid=c.video_uid, media_uri=c.media_uri, media_sha256=c.media_sha256, source=source)


class CrawlIndex:
    """The crawl's reads and writes on Elasticsearch (one client, passed in or built from Settings)."""

    def __init__(self, settings: Settings, es: Elasticsearch | None = None) -> None:
        self.settings = settings
        self.es = es or make_es_client(settings)
        self.videos = settings.index("videos")
        self.spread = settings.index("spread")

    def close(self) -> None:
        self.es.close()

    def lookup(self, uids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Existing documents (status, status_reason, first_seen) by uid; real-time, no refresh needed."""
        ids = sorted(set(uids))
        if not ids:
            return {}
        with es_errors(self.settings):
            response = self.es.mget(index=self.videos, ids=ids,
                                    source_includes=["status", "status_reason", "first_seen"])
        return {d["_id"]: d.get("_source", {}) for d in response["docs"] if d.get("found")}

    def known(self, uids: Iterable[str]) -> set[str]:
        """Uids already decided for good (not failed, not waiting for download budget)."""
        return {uid for uid, src in self.lookup(uids).items()
                if not str(src.get("status_reason") or "").startswith(RETRYABLE_REASONS)}

    def known_urls(self, urls: Iterable[str]) -> set[str]:
        """Page URLs whose videos are already decided for good (for feeds whose entries carry no video id)."""
        wanted = sorted(set(urls))
        if not wanted:
            return set()
        with es_errors(self.settings):
            response = self.es.search(index=self.videos, size=len(wanted), track_total_hits=False,
                                      query={"bool": {"filter": [{"terms": {"url.full": wanted}}]}},
                                      source_includes=["url.full", "status_reason"])
        return {hit["_source"]["url"]["full"] for hit in response["hits"]["hits"]
                if not str(hit["_source"].get("status_reason") or "").startswith(RETRYABLE_REASONS)}

    def channel_rates(self, channel_ids: Iterable[str]) -> dict[str, list[float]]:
        """Views per hour of earlier videos per channel (the channel's usual), newest first."""
        ids = sorted({c for c in channel_ids if c})
        if not ids:
            return {}
        with es_errors(self.settings):
            response = self.es.search(index=self.videos, size=CHANNEL_SAMPLE, track_total_hits=False,
                                      query={"bool": {"filter": [{"terms": {"channel.id": ids}},
                                                                 {"exists": {"field": "spread.views_per_hour"}}]}},
                                      source_includes=["channel.id", "spread.views_per_hour"],
                                      sort=[{"first_seen": {"order": "desc", "unmapped_type": "date"}}])
        rates: dict[str, list[float]] = {}
        for hit in response["hits"]["hits"]:
            src = hit["_source"]
            rate = (src.get("spread") or {}).get("views_per_hour")
            channel = (src.get("channel") or {}).get("id")
            if channel and rate is not None:
                rates.setdefault(channel, []).append(float(rate))
        return rates

    def write(self, candidates: Sequence[Candidate], *, snapshots: bool = True) -> None:
        """Write the candidates' documents and, for relevant ones with metadata, a spread snapshot."""
        if not candidates:
            return
        now = utcnow()
        schedule = PollSchedule.from_settings(self.settings)
        actions: list[dict[str, Any]] = []
        for c in candidates:
            # merged into an existing document: fields other jobs add (spread, cluster, scores) stay
            actions.append({"_op_type": "update", "_index": self.videos, "_id": c.video_uid,
                            "doc": video_document(c, now, schedule), "doc_as_upsert": True})
            political = c.relevance_score is not None and not (c.status_reason or "").startswith(
                "skipped: not political")
            if snapshots and c.platform_id is not None and political:
                actions.append(snapshot_action(self.spread, spread_snapshot(c)))
        with es_errors(self.settings):
            ok, errors = helpers.bulk(self.es, actions, raise_on_error=False, stats_only=False)
        errors = refused(errors)
        if errors:
            first = errors[0]
            raise ServiceUnavailable(f"Elasticsearch refused {len(errors)} of {len(actions)} crawl documents, "
                                     f"e.g. {first}", service="elasticsearch", hint="run `vigil setup`")
        logger.debug("indexed %d crawl documents", ok)


class JobQueue:
    """Produces `vigil.job/1` messages (key = video_uid) with an acks=all producer and waits for each."""

    def __init__(self, settings: Settings, producer: Any = None) -> None:
        self.settings = settings
        self._own = producer is None
        self.producer = producer or make_producer(settings)

    def send(self, job: JobMessage) -> None:
        from kafka import errors as kafka_errors

        future = self.producer.send(self.settings.topic_jobs, key=job.video_uid.encode("utf-8"), value=encode(job))
        try:
            future.get(timeout=self.settings.kafka_request_timeout_ms / 1000)
        except kafka_errors.KafkaError as exc:
            raise ServiceUnavailable(f"Kafka did not take the job for {job.video_uid}: {exc}", service="kafka",
                                     hint="is the broker running? check VIGIL_KAFKA_BOOTSTRAP") from exc

    def close(self) -> None:
        if self._own:
            self.producer.flush()
            self.producer.close()
