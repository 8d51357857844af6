"""Helpers of the spread and alert tests: a channel on the fake platform, videos seeded into the index the way the
crawl writes them (its own discovery and index code), a flagged score the way the sink writes it, a re-encoded
copy of a clip, and a webhook receiver."""
from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from elasticsearch import helpers
from .fakeplatform import FakePlatform

from pipeline import Settings, make_es_client
from pipeline._media_store import MediaStore
from pipeline._messages import DetectorOutput, FusedScore, ResultMessage
from pipeline.crawl import CrawlIndex, WatchlistEntry, discover_entry, rank_candidates
from pipeline.sink import bulk_actions

__all__ = ["set_video_fields", "transcode", "lavfi_clip", "seed_videos", "flag", "WebhookReceiver", "whole_seconds",
           "documents", "snapshots", "fixture_videos", "index_videos"]


def whole_seconds(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def _ffmpeg(*args: str) -> None:
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True,
                   capture_output=True, timeout=120)


def lavfi_clip(path: Path, source: str = "testsrc2", seconds: float = 2.0, size: str = "160x120") -> Path:
    """A clip of another lavfi pattern than the platform's usual testsrc (an unrelated video)."""
    if not path.exists():
        _ffmpeg("-f", "lavfi", "-i", f"{source}=size={size}:rate=10", "-t", f"{seconds:g}", "-c:v", "libx264",
                "-preset", "ultrafast", "-crf", "30", "-pix_fmt", "yuv420p", str(path))
    return path


def transcode(source: Path, path: Path, size: str = "320x240", crf: int = 38, rate: int = 25) -> Path:
    """A re-upload: the same video re-encoded at another size, quality and frame rate."""
    if not path.exists():
        w, h = size.split("x")
        _ffmpeg("-i", str(source), "-vf", f"scale={w}:{h}", "-r", str(rate), "-c:v", "libx264", "-preset",
                "ultrafast", "-crf", str(crf), "-pix_fmt", "yuv420p", "-c:a", "aac", str(path))
    return path


def seed_videos(platform: FakePlatform, settings: Settings, video_ids: list[str],
                stored: set[str] | None = None) -> dict[str, str]:
    """Discover each video's page and index it as the crawl does after a download: {video_id: video_uid}.
    Only the videos in ``stored`` (default: all) get their media put in the media store."""
    store = MediaStore.from_settings(settings)
    candidates = []
    for video_id in video_ids:
        result = discover_entry(WatchlistEntry(kind="url", target=platform.page_url(video_id)), settings,
                                watchlist="test")
        assert not result.error and len(result.candidates) == 1, result
        candidate = result.candidates[0]
        assert candidate.status is None, candidate.status_reason
        candidate.relevance_score = 0.9
        media: Path | None = platform.videos[video_id].media
        if media is not None and (stored is None or video_id in stored):
            candidate.media_uri = store.put(media)
            candidate.media_sha256 = candidate.media_uri.rsplit("/", 1)[-1].split(".")[0]
        rank_candidates([candidate])
        candidate.decide("queued", "downloaded")
        candidates.append(candidate)
    index = CrawlIndex(settings)
    try:
        index.write(candidates)
    finally:
        index.close()
    return {video_id: c.video_uid for video_id, c in zip(video_ids, candidates)}


def flag(settings: Settings, video_uid: str, score: float, verdict: str = "likely_manipulated") -> None:
    """Write a detector result for the video the way the sink does (detection + partial video update)."""
    es = make_es_client(settings)
    try:
        sha = es.get(index=settings.index("videos"), id=video_uid)["_source"].get("media", {}).get("sha256") or "0" * 64
        result = ResultMessage(video_uid=video_uid, media_sha256=sha, suite_version="test-1", duration_s=2.0,
                               fused=FusedScore(score=score, verdict=verdict, reasons=["mouth lags speech"]),
                               detectors={"lipsync": DetectorOutput(version="1", applicable=True, score=score)})
        helpers.bulk(es, bulk_actions(result, settings), refresh=True)
    finally:
        es.close()


def documents(settings: Settings) -> dict[str, dict[str, Any]]:
    es = make_es_client(settings)
    try:
        es.indices.refresh(index=settings.index("videos"))
        hits = es.search(index=settings.index("videos"), size=200, query={"match_all": {}})["hits"]["hits"]
        return {hit["_id"]: hit["_source"] for hit in hits}
    finally:
        es.close()


def snapshots(settings: Settings, video_uid: str) -> list[dict[str, Any]]:
    es = make_es_client(settings)
    try:
        es.indices.refresh(index=settings.index("spread"))
        hits = es.search(index=settings.index("spread"), size=200, query={"term": {"video_uid": video_uid}},
                         sort=[{"@timestamp": "asc"}])["hits"]["hits"]
        return [hit["_source"] for hit in hits]
    finally:
        es.close()


class WebhookReceiver:
    """A real HTTP server on 127.0.0.1 that records every JSON body posted to it; ``fail_first`` answers 503 first."""

    def __init__(self, fail_first: int = 0) -> None:
        self.received: list[dict[str, Any]] = []
        self.attempts = 0
        self.fail_first = fail_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                receiver.attempts += 1
                if receiver.attempts <= receiver.fail_first:
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                receiver.received.append({"path": self.path, "content_type": self.headers.get("Content-Type"),
                                          "body": json.loads(body)})
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/vigil"

    @contextmanager
    def running(self) -> Iterator[WebhookReceiver]:
        self.thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()


def fixture_videos(now: datetime) -> dict[str, dict[str, Any]]:
    """Videos as spread refresh and the sink leave them; risk deliberately absent (alerts recompute it)."""
    def doc(uid: str, score: float | None, vph: float | None, *, updated_ago: timedelta = timedelta(minutes=10),
            acceleration: float | None = None, cluster: dict[str, Any] | None = None,
            first_seen_ago: timedelta = timedelta(days=2)) -> dict[str, Any]:
        return {"video_uid": uid, "platform": uid.split(":")[0], "title": f"video {uid}", "status": "scored",
                "url": {"full": f"https://example.org/watch/{uid.split(':')[1]}"},
                "channel": {"id": "chan", "name": "Capitol News"},
                "first_seen": (now - first_seen_ago).isoformat(),
                "fused": {"score": score, "verdict": "likely_manipulated" if (score or 0) >= 0.5 else "no_signal",
                          "reasons": ["mouth lags speech by 200 ms"]} if score is not None else None,
                "spread": {"views": 10_000, "views_per_hour": vph, "acceleration": acceleration,
                           "updated": (now - updated_ago).isoformat()},
                "cluster": cluster or {"id": f"c-{uid}", "size": 1, "original": True, "max_score": score}}

    return {
        "youtube:hot": doc("youtube:hot", 0.9, 2000.0),  # risk 1800 → manipulated-spreading
        "youtube:slow": doc("youtube:slow", 0.9, 10.0),  # flagged but barely watched
        "youtube:clean": doc("youtube:clean", 0.1, 9000.0),  # viral but clean
        "youtube:stale": doc("youtube:stale", 0.9, 2000.0, updated_ago=timedelta(hours=5)),  # not refreshed lately
        "youtube:unscored": doc("youtube:unscored", None, 5000.0),
        "youtube:quiet": doc("youtube:quiet", 0.9, None),  # views withheld
        "tiktok:copy": doc("tiktok:copy", None, 30.0, first_seen_ago=timedelta(hours=3),  # → reupload-of-flagged
                           cluster={"id": "c-youtube:hot", "size": 2, "original": False, "max_score": 0.9}),
        "tiktok:oldcopy": doc("tiktok:oldcopy", None, 30.0, first_seen_ago=timedelta(days=4),
                              cluster={"id": "c-youtube:hot", "size": 3, "original": False, "max_score": 0.9}),
        "youtube:faster": doc("youtube:faster", 0.7, 300.0, acceleration=500.0),  # → flagged-accelerating
    }


def index_videos(settings: Settings, docs: dict[str, dict[str, Any]]) -> None:
    es = make_es_client(settings)
    try:
        helpers.bulk(es, [{"_index": settings.index("videos"), "_id": k, "_source": v} for k, v in docs.items()],
                     refresh=True)
    finally:
        es.close()


def persons_videos(now: datetime) -> dict[str, dict[str, Any]]:
    """Scored videos on which enrolled persons were seen (the identity detector's ``persons`` field), barely watched so
    that only the watched-person rule concerns them."""
    def doc(uid: str, score: float, persons: list[dict[str, Any]], scored_ago: timedelta) -> dict[str, Any]:
        return {"video_uid": uid, "platform": uid.split(":")[0], "title": f"video {uid}", "status": "scored",
                "url": {"full": f"https://example.org/watch/{uid.split(':')[1]}"},
                "first_seen": (now - timedelta(hours=5)).isoformat(), "scored_at": (now - scored_ago).isoformat(),
                "fused": {"score": score, "verdict": "likely_manipulated" if score >= 0.75 else "no_signal",
                          "reasons": ["identity: the voice does not match her enrolled voice"]},
                "spread": {"views": 40, "views_per_hour": 4.0, "acceleration": 0.0,
                           "updated": (now - timedelta(minutes=10)).isoformat()},
                "persons": persons}

    jane = {"name": "Jane Doe", "role": "candidate", "face_similarity": 0.62, "voice_similarity": 0.41,
            "voice_match": False}
    john = {"name": "John Roe", "role": "official", "face_similarity": 0.58, "voice_similarity": 0.93,
            "voice_match": True}
    return {
        "youtube:jane-fake": doc("youtube:jane-fake", 0.91, [jane], timedelta(minutes=30)),  # → watched-person
        "youtube:jane-real": doc("youtube:jane-real", 0.05, [jane | {"voice_similarity": 0.95, "voice_match": True}],
                                 timedelta(minutes=30)),  # watched, not flagged
        "youtube:john-fake": doc("youtube:john-fake", 0.8, [john], timedelta(minutes=20)),  # official, flagged
        "youtube:jane-old": doc("youtube:jane-old", 0.91, [jane], timedelta(hours=9)),  # scored before the window
    }


def set_video_fields(settings: Settings, fields: dict[str, dict[str, Any]]) -> None:
    """Partial updates of videos' documents ({video_uid: fields}), e.g. when their next reading is due."""
    es = make_es_client(settings)
    try:
        es.indices.refresh(index=settings.index("videos"))
        helpers.bulk(es, [{"_op_type": "update", "_index": settings.index("videos"), "_id": uid,
                           "doc": {k: v.isoformat() if isinstance(v, datetime) else v for k, v in doc.items()}}
                          for uid, doc in fields.items()], refresh=True)
    finally:
        es.close()


def make_due(settings: Settings, video_uids: list[str] | None = None) -> None:
    """Bring the given videos' (default: all) next spread reading to now, as if their checkpoint had come (partial
    updates: the integ-test Elasticsearch has no update-by-query)."""
    es = make_es_client(settings)
    now = datetime.now(UTC)
    fields = {"next_poll": now.isoformat(), "poll_deadline": (now + timedelta(hours=1)).isoformat()}
    try:
        query = {"terms": {"video_uid": video_uids}} if video_uids else {"match_all": {}}
        es.indices.refresh(index=settings.index("videos"))  # the crawl's writes do not wait for a refresh
        ids = [hit["_id"] for hit in helpers.scan(es, index=settings.index("videos"), query={"query": query},
                                                   _source=False)]
        helpers.bulk(es, [{"_op_type": "update", "_index": settings.index("videos"), "_id": i, "doc": fields}
                          for i in ids], refresh=True)
    finally:
        es.close()
