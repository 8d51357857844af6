"""One spread refresh, as steps the Airflow DAG maps and `vigil spread` runs in one process:

    select_active ─▶ poll (per host) ─▶ update_metrics ─▶ hash_media ─▶ update_clusters ─▶ summarize
                                                                                       (+ backlog)

``select_active`` reads the videos whose next reading is due (checkpoints at fixed ages, promoted by risk:
``_schedule``); ``update_metrics`` writes each one's next reading.

Every step takes and returns JSON-friendly values. ``now`` / ``clock`` arguments exist so a test can poll "an hour
later" without waiting an hour.
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from .._media_store import open_media
from .._settings import Settings
from ._cluster import Member, assign_clusters, cluster_stats
from ._index import SpreadIndex
from ._metrics import Snapshot, compute_metrics, expected_views, overperformance, risk_of
from ._phash import PhashError, video_phash
from ._poll import HostRateLimiter, Observation, host_key, poll_videos
from ._schedule import PollSchedule
from .._documents import get_field as _get
from .._time import parse_moment as _parse
from .._time import utcnow as _utcnow

__all__ = ["select_active", "poll", "update_metrics", "hash_media", "update_clusters", "backlog", "report_backlog",
           "summarize", "run_refresh", "RefreshSummary"]

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
HASH_BATCH = 50


# ------------------------------------------------------------------ steps

def _poll_item(doc: Mapping[str, Any], *, due: bool) -> dict[str, Any]:
    """What `poll` needs of a followed video: its page, its listings, whether it is due."""
    return {"video_uid": doc["video_uid"], "url": _get(doc, "url.full"), "platform": doc.get("platform"),
            "channel_url": _get(doc, "channel.url"), "watchlist_kind": _get(doc, "watchlist.kind"),
            "watchlist_target": _get(doc, "watchlist.target"), "listings_missed": doc.get("listings_missed") or [],
            "due": due}


def select_active(settings: Settings, *, now: datetime | None = None,
                  index: SpreadIndex | None = None) -> list[list[dict[str, Any]]]:
    """Videos whose reading is due (``pipeline.spread._schedule``: checkpoints by age, promoted by risk), and, when
    listings are read (``spread_listings``), the videos inside their early window that share a listing with a due
    one (``due`` False: read only if a listing shows them); grouped by host (one batch per host, so per-host rate
    limits hold across mapped tasks)."""
    from ._listing import LISTING_KINDS

    own = index is None
    index = index or SpreadIndex(settings)
    now = now or _utcnow()
    try:
        items = [_poll_item(doc, due=True) for doc in index.active_videos(now) if _get(doc, "url.full")]
        early: list[dict[str, Any]] = []
        if settings.spread_listings and items:
            channels = {i["channel_url"] for i in items if i["channel_url"]}
            targets = {i["watchlist_target"] for i in items
                       if i["watchlist_target"] and i["watchlist_kind"] in LISTING_KINDS}
            chosen = {i["video_uid"] for i in items}
            early = [_poll_item(doc, due=False) for doc in index.early_videos(now, channels, targets)
                     if _get(doc, "url.full") and doc["video_uid"] not in chosen]
    finally:
        if own:
            index.close()
    batches: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in [*items, *early]:
        batches[host_key(item["url"])].append(item)
    logger.info("%d videos due and %d inside their early window on %d hosts", len(items), len(early), len(batches))
    return [batches[host] for host in sorted(batches)]


def poll(batch: Sequence[Mapping[str, Any]], settings: Settings, *, clock: Clock = _utcnow,
         limiter: HostRateLimiter | None = None) -> list[dict[str, Any]]:
    """Read the counters of one batch of videos (metadata only, no download)."""
    return [o.to_xcom() for o in poll_videos(batch, settings, clock=clock, limiter=limiter)]


def _snapshot_of(raw: Mapping[str, Any]) -> Snapshot:
    return Snapshot(at=_parse(raw["@timestamp"]) or _utcnow(), views=raw.get("views"), likes=raw.get("likes"),
                    comments=raw.get("comments"), reposts=raw.get("reposts"))


def _age_points(raw_snaps: Sequence[Mapping[str, Any]]) -> list[tuple[float, int]]:
    return [(float(s["age_h"]), int(s["views"])) for s in raw_snaps
            if s.get("age_h") is not None and s.get("views") is not None]


def update_metrics(observations: Sequence[Mapping[str, Any]], settings: Settings, *,
                   index: SpreadIndex | None = None) -> list[dict[str, Any]]:
    """Write a snapshot per successful observation and the video's latest counters and metrics; rows per video."""
    obs = [Observation.from_xcom(o) for o in observations]
    own = index is None
    index = index or SpreadIndex(settings)
    try:
        return _update_metrics(obs, settings, index)
    finally:
        if own:
            index.close()


def _update_metrics(obs: Sequence[Observation], settings: Settings, index: SpreadIndex) -> list[dict[str, Any]]:
    videos = index.videos_by_uid(o.video_uid for o in obs)
    ok = [o for o in obs if o.error is None and o.video_uid in videos]
    channels = {_get(videos[o.video_uid], "channel.id") for o in ok} - {None}
    channel_uids = index.channel_videos(channels, settings.spread_baseline_videos + 1)
    histories = index.histories({o.video_uid for o in ok} | {u for us in channel_uids.values() for u in us})
    published_of = {uid: _parse(doc.get("published")) for uid, doc in videos.items()}

    # this cycle's observations join the histories first, so baselines see the same moment for every video
    new_snaps: dict[str, dict[str, Any]] = {}
    for o in ok:
        published = published_of.get(o.video_uid)
        age_h = max((o.at - published).total_seconds() / 3600, 0.0) if published else None
        raw = {"video_uid": o.video_uid, "@timestamp": o.at.isoformat(), "views": o.views, "likes": o.likes,
               "comments": o.comments, "reposts": o.reposts, "age_h": age_h}
        histories.setdefault(o.video_uid, []).append(raw)
        new_snaps[o.video_uid] = raw

    rows: list[dict[str, Any]] = []
    snapshots: list[dict[str, Any]] = []
    updates: dict[str, dict[str, Any]] = {}
    schedule = PollSchedule.from_settings(settings)

    def next_poll(o: Observation, doc: Mapping[str, Any], risk: float | None) -> dict[str, Any]:
        born = published_of.get(o.video_uid) or _parse(doc.get("first_seen"))
        fields: dict[str, Any] = schedule.next_poll(o.at, born, risk,
                                                    watched=_get(doc, "analyst.verdict") == "manipulated").fields()
        if o.listings_missed:  # not asked again for this video
            fields["listings_missed"] = sorted({*(doc.get("listings_missed") or []), *o.listings_missed})
        return fields

    for o in obs:
        doc = videos.get(o.video_uid)
        if doc is None:
            rows.append({"video_uid": o.video_uid, "error": "no longer in the index", "reads": o.reads})
            continue
        if o.error is not None:  # the checkpoint is spent; the next one is read as usual
            updates[o.video_uid] = {"last_polled": o.at.isoformat(), **next_poll(o, doc, doc.get("risk"))}
            rows.append({"video_uid": o.video_uid, "title": doc.get("title"), "error": o.error, "reads": o.reads})
            continue
        published = published_of.get(o.video_uid)
        snaps = [_snapshot_of(s) for s in histories[o.video_uid]]
        metrics = compute_metrics(snaps, published)
        channel = _get(doc, "channel.id")
        expected = None
        if channel and metrics.age_h is not None:
            others = [_age_points(histories.get(u, [])) for u in channel_uids.get(channel, []) if u != o.video_uid]
            others = [p for p in others if p][: settings.spread_baseline_videos]
            expected = expected_views(others, metrics.age_h, min_videos=settings.spread_baseline_min_videos)
        ratio = overperformance(o.views, expected)
        fields = {**metrics.as_fields(), "overperformance": None if ratio is None else round(ratio, 3)}
        counters = {"views": o.views, "likes": o.likes, "comments": o.comments, "reposts": o.reposts}
        snap = new_snaps[o.video_uid]
        snapshots.append({
            **snap, **fields,
            "platform": doc.get("platform"),
            "channel": {"id": channel},
            "cluster": {"id": _get(doc, "cluster.id")},
            "counters_missing": sorted(k for k, v in counters.items() if v is None),
            "source": o.source,
            "event": {"created": _utcnow().isoformat(), "dataset": "vigil.spread"},
        })
        risk = risk_of(_get(doc, "fused.score"), fields["views_per_hour"])
        latest = {**counters, **fields, "updated": o.at.isoformat()}
        if o.source == "listing":  # what a listing does not show keeps its last value from a page read
            latest = {k: v for k, v in latest.items() if v is not None}
        updates[o.video_uid] = {"spread": latest,
                                "last_polled": o.at.isoformat(), "risk": risk, **next_poll(o, doc, risk)}
        rows.append({"video_uid": o.video_uid, "title": doc.get("title"), **counters, **fields,
                     "expected_views": None if expected is None else round(expected, 1), "risk": risk,
                     "reads": o.reads, "source": o.source})
    index.write(snapshots, updates)
    logger.info("wrote %d snapshots, %d video updates", len(snapshots), len(updates))
    return rows


def hash_media(settings: Settings, *, limit: int = HASH_BATCH, index: SpreadIndex | None = None) -> list[str]:
    """Perceptual hashes of stored media not hashed yet; returns the uids hashed."""
    own = index is None
    index = index or SpreadIndex(settings)
    hashed: dict[str, dict[str, Any]] = {}
    try:
        for doc in index.to_hash(limit):
            uri = _get(doc, "media.uri")
            started = time.monotonic()
            try:
                with open_media(uri) as handle:
                    hashes = video_phash(handle, settings.phash_frames)
            except (PhashError, OSError) as exc:
                logger.warning("no perceptual hash for %s (%s): %s", doc["video_uid"], uri, exc)
                continue
            logger.debug("hashed %s in %.2f s", doc["video_uid"], time.monotonic() - started)
            hashed[doc["video_uid"]] = {"phash": hashes}
        index.write(updates=hashed)
    finally:
        if own:
            index.close()
    logger.info("hashed %d videos", len(hashed))
    return sorted(hashed)


def _member(doc: Mapping[str, Any], new: bool) -> Member:
    return Member(uid=doc["video_uid"], hashes=doc.get("phash") or None, cluster_id=_get(doc, "cluster.id"),
                  first_seen=doc.get("first_seen"), published=doc.get("published"),
                  uploader=_get(doc, "channel.name") or _get(doc, "channel.id"), views=_get(doc, "spread.views"),
                  score=_get(doc, "fused.score"), new=new)


def update_clusters(new_uids: Sequence[str], settings: Settings, *, now: datetime | None = None,
                    index: SpreadIndex | None = None) -> dict[str, Any]:
    """Join newly hashed videos to clusters and refresh every cluster's stats; writes only what changed."""
    own = index is None
    index = index or SpreadIndex(settings)
    try:
        docs = index.cluster_candidates(now or _utcnow())
        fresh = set(new_uids)
        members = [_member(d, new=d["video_uid"] in fresh or (bool(d.get("phash")) and not _get(d, "cluster.id")))
                   for d in docs]
        clusters = assign_clusters(members, settings.phash_threshold)
        current = {d["video_uid"]: d.get("cluster") or {} for d in docs}
        updates: dict[str, dict[str, Any]] = {}
        for cid, group in clusters.items():
            for uid, stats in cluster_stats(cid, group).items():
                if current.get(uid) != stats:
                    updates[uid] = {"cluster": stats}
        index.write(updates=updates)
    finally:
        if own:
            index.close()
    multi = {cid: [m.uid for m in group] for cid, group in clusters.items() if len(group) > 1}
    logger.info("%d clusters (%d with re-uploads), %d videos updated", len(clusters), len(multi), len(updates))
    return {"clusters": len(clusters), "reuploads": multi, "updated": len(updates)}


@dataclass
class RefreshSummary:
    """What one refresh did."""

    polled: int = 0
    failed: int = 0
    hashed: int = 0
    clusters_with_reuploads: int = 0
    page_reads: float = 0.0  # requests to platforms: videos sharing a page share its read
    due: int | None = None  # followed videos whose reading is due after this refresh
    overdue: int | None = None  # ... and past its deadline: missed checkpoints (pipeline.spread._schedule)
    rows: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def to_xcom(self) -> dict[str, Any]:
        return asdict(self)


def backlog(settings: Settings, *, now: datetime | None = None, index: SpreadIndex | None = None) -> dict[str, int]:
    """Followed videos due for a reading now, and those past its deadline (missed checkpoints)."""
    own = index is None
    index = index or SpreadIndex(settings)
    try:
        return index.backlog(now or _utcnow())
    finally:
        if own:
            index.close()


def report_backlog(settings: Settings, pending: Mapping[str, int | None]) -> list[dict[str, Any]]:
    """Post a backlog alert to every ``alert_webhooks`` URL when at least ``spread_backlog_alert`` checkpoints were
    missed (each refresh while it lasts: the operators' cue to add capacity); the deliveries, never the URLs."""
    overdue = int(pending.get("overdue") or 0)
    if not settings.spread_backlog_alert or overdue < settings.spread_backlog_alert or not settings.alert_webhooks:
        return []
    import httpx

    from ..alerts._webhook import deliver_all

    text = (f":warning: Vigil spread backlog: {overdue} followed videos missed a checkpoint "
            f"({pending.get('due')} readings due). The refresh is not keeping up: shorten VIGIL_SPREAD_SCHEDULE, "
            f"raise VIGIL_SPREAD_MAX_VIDEOS or the per-host rates.")
    payload = {"text": text, "blocks": [
        {"type": "header", "text": {"type": "plain_text", "text": "Vigil spread backlog", "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": text}}]}
    with httpx.Client(timeout=settings.alert_webhook_timeout_s, follow_redirects=False) as client:
        deliveries = deliver_all([u.get_secret_value() for u in settings.alert_webhooks], payload, client=client,
                                 attempts=settings.alert_webhook_attempts)
    return [{"target": d.target, "ok": d.ok, "attempts": d.attempts, "error": d.error} for d in deliveries]


def summarize(rows: Sequence[Mapping[str, Any]], hashed: Sequence[str], clusters: Mapping[str, Any],
              pending: Mapping[str, int] | None = None) -> dict[str, Any]:
    """Counts of one refresh and the backlog after it (``pending``: `backlog`), logged and returned; missed
    checkpoints are logged as a warning: the refresh is not keeping up (more hosts in parallel, a larger
    spread_max_videos or a shorter spread_schedule)."""
    pending = pending or {}
    summary = RefreshSummary(polled=sum(1 for r in rows if not r.get("error")),
                             failed=sum(1 for r in rows if r.get("error")), hashed=len(hashed),
                             clusters_with_reuploads=len(clusters.get("reuploads", {})),
                             page_reads=float(sum(float(r.get("reads", 1.0)) for r in rows)),
                             due=pending.get("due"), overdue=pending.get("overdue"), rows=list(rows))
    logger.info("spread refresh: %d polled, %d failed with %g page reads, %d hashed, %d re-upload clusters; %s due, "
                "%s overdue", summary.polled, summary.failed, summary.page_reads, summary.hashed,
                summary.clusters_with_reuploads, summary.due, summary.overdue)
    if summary.overdue:
        logger.warning("spread backlog: %d followed videos are past their reading's deadline (missed checkpoints); "
                       "%s due in all", summary.overdue, summary.due)
    return summary.to_xcom()


def run_refresh(settings: Settings, *, clock: Clock = _utcnow, limiter: HostRateLimiter | None = None) -> RefreshSummary:
    """One refresh cycle in one process (what `vigil spread` runs)."""
    started = time.monotonic()
    index = SpreadIndex(settings)
    try:
        limiter = limiter or HostRateLimiter.from_settings(settings)
        observations: list[dict[str, Any]] = []
        for batch in select_active(settings, now=clock(), index=index):
            observations.extend(poll(batch, settings, clock=clock, limiter=limiter))
        rows = update_metrics(observations, settings, index=index)
        hashed = hash_media(settings, index=index)
        clusters = update_clusters(hashed, settings, now=clock(), index=index)
        pending = backlog(settings, now=clock(), index=index)
    finally:
        index.close()
    report_backlog(settings, pending)
    summary = RefreshSummary(**{k: v for k, v in summarize(rows, hashed, clusters, pending).items()
                                if k != "seconds"})
    summary.seconds = round(time.monotonic() - started, 3)
    return summary
