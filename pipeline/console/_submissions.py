"""Submissions from the console: an analyst's link or file, checked like the crawl checks its videos, queued at once.

    link ─▶ already known by URL? ─▶ discover (URL policy, yt-dlp) ─▶ known by uid? ─▶ declared caps ─▶ download
         (caps, sniffed as video, sha256) ─▶ known by sha256? ─▶ store ─▶ vigil.jobs ─▶ vigil-videos (queued)
    file ─▶ size cap while it arrives ─▶ sniffed as video (PyAV decodes a frame; caps) ─▶ known by sha256? ─▶ store
         ─▶ vigil.jobs ─▶ vigil-videos (queued)

Relevance is not required (an analyst chose the video). A duplicate (same URL, uid or sha256) leads to the existing
video instead of a second job. A link that is refused or fails still gets its document (``refused`` / ``failed``
with the reason), so it shows in the queue; a file that is not media is refused and nothing is stored. Who submitted
it, the note and the tags are kept on the video (``submission.*``, tags added).
"""
from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from .._exceptions import DownloadFailed, DownloadRefused
from .._media_store import MediaStore
from .._settings import Settings

__all__ = ["Submission", "SubmissionRefused", "submit_link", "submit_upload", "add_submission_routes"]

logger = logging.getLogger(__name__)

MAX_NOTE = 2000
MAX_TAGS = 20
SUBMISSIONS = "console-submission"
CHUNK = 1 << 20


class SubmissionRefused(Exception):
    """A submission that cannot be accepted; the message says why in words an analyst can act on."""


@dataclass(frozen=True)
class Submission:
    """The outcome: the video's uid and state, and whether it was already there."""

    video_uid: str
    status: str
    status_reason: str | None
    duplicate: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"video_uid": self.video_uid, "status": self.status, "status_reason": self.status_reason,
                "duplicate": self.duplicate, "url": f"/videos/{self.video_uid}"}


def _clean(note: str, tags: list[str]) -> tuple[str, list[str]]:
    if len(note) > MAX_NOTE:
        raise SubmissionRefused(f"the note is longer than {MAX_NOTE} characters")
    tags = [t.strip()[:64] for t in tags if t.strip()]
    if len(tags) > MAX_TAGS:
        raise SubmissionRefused(f"at most {MAX_TAGS} tags")
    return note, tags


def _existing(es: Any, settings: Settings, field: str, value: str) -> dict[str, Any] | None:
    index = settings.index("videos")
    es.indices.refresh(index=index)
    hits = es.search(index=index, size=1, query={"term": {field: value}},
                     source_includes=["video_uid", "status", "status_reason"])["hits"]["hits"]
    return hits[0]["_source"] if hits else None


def _duplicate(found: dict[str, Any]) -> Submission:
    return Submission(found["video_uid"], found.get("status") or "queued", found.get("status_reason"), duplicate=True)


def _write(es: Any, settings: Settings, candidate: Any, submission: dict[str, Any]) -> None:
    from ..crawl import CrawlIndex

    index = CrawlIndex(settings, es=es)
    index.write([candidate], snapshots=False)
    es.update(index=settings.index("videos"), id=candidate.video_uid, doc={"submission": submission},
              refresh="wait_for")


def _queue(es: Any, settings: Settings, candidate: Any, submission: dict[str, Any], producer: Any = None) -> None:
    from ..crawl import JobQueue, build_job

    jobs = JobQueue(settings, producer=producer)
    try:
        jobs.send(build_job(candidate))  # durable before the document says queued
    finally:
        if producer is None:
            jobs.close()
    candidate.decide("queued", "submitted in the console, waiting for the detectors")
    _write(es, settings, candidate, submission)


def _record(by: str, note: str, webhook: str | None) -> dict[str, Any]:
    return {"by": by, "note": note or None, "at": datetime.now(UTC).isoformat(), "webhook": webhook or None,
            "channel": SUBMISSIONS}


def submit_link(url: str, settings: Settings, es: Any, *, by: str, note: str = "", tags: list[str] | None = None,
                webhook: str | None = None, producer: Any = None) -> Submission:
    """A link through the crawler's rules (URL policy, caps; relevance not required) into the queue."""
    from ..crawl import WatchlistEntry, check_declared_caps, discover_entry, fetch_to_store

    note, tags = _clean(note, list(tags or []))
    url = url.strip()
    if not url.lower().startswith(("http://", "https://")):
        raise SubmissionRefused("a link starts with http:// or https://")
    if (found := _existing(es, settings, "url.full", url)) is not None:
        return _duplicate(found)
    record = _record(by, note, webhook)
    result = discover_entry(WatchlistEntry(kind="url", target=url, tags=tags), settings, watchlist=SUBMISSIONS)
    if result.error:
        raise SubmissionRefused(result.error)
    candidate = result.candidates[0]
    candidate.tags = sorted(set(candidate.tags) | set(tags))
    if not candidate.decided:
        if (found := _existing(es, settings, "video_uid", candidate.video_uid)) is not None:
            return _duplicate(found)
        try:
            check_declared_caps(candidate, settings)
            fetch_to_store(candidate, settings, MediaStore.from_settings(settings))
        except DownloadRefused as exc:
            candidate.decide("refused", str(exc))
        except DownloadFailed as exc:
            candidate.decide("failed", str(exc))
    if candidate.decided:  # refused or failed: the document says why, in the queue like any other
        _write(es, settings, candidate, record)
        return Submission(candidate.video_uid, str(candidate.status), candidate.status_reason)
    if (found := _existing(es, settings, "media.sha256", str(candidate.media_sha256))) is not None:
        return _duplicate(found)
    _queue(es, settings, candidate, record, producer)
    return Submission(candidate.video_uid, "queued", candidate.status_reason)


async def submit_upload(chunks: AsyncIterator[bytes], filename: str, settings: Settings, es: Any, *, by: str,
                        note: str = "", tags: list[str] | None = None, webhook: str | None = None,
                        producer: Any = None) -> Submission:
    """An uploaded file: the size cap while it arrives, sniffed as video (PyAV) before anything is stored."""
    from ..crawl import Candidate, probe_media

    note, tags = _clean(note, list(tags or []))
    cap = settings.max_download_mb * CHUNK
    name = Path(filename or "upload").name[:200] or "upload"
    ext = Path(name).suffix.lower().lstrip(".")
    ext = ext if ext.isalnum() and len(ext) <= 5 else "bin"
    workdir = Path(tempfile.mkdtemp(prefix="vigil-upload-"))
    try:
        path = workdir / f"upload.{ext}"
        digest = hashlib.sha256()
        size = 0
        with open(path, "wb") as out:
            async for chunk in chunks:
                size += len(chunk)
                if size > cap:
                    raise SubmissionRefused(f"refused: larger than the {settings.max_download_mb} MB cap")
                digest.update(chunk)
                out.write(chunk)
        if size == 0:
            raise SubmissionRefused("refused: the file is empty")
        try:
            duration, width, height = probe_media(path, settings)
        except DownloadRefused as exc:
            raise SubmissionRefused(f"refused: {name} is {exc}".replace(" is not a video", " is not a video file")
                                    ) from exc
        sha = digest.hexdigest()
        if (found := _existing(es, settings, "media.sha256", sha)) is not None:
            return _duplicate(found)
        uri = MediaStore.from_settings(settings).put(path, sha256=sha, ext=ext)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    candidate = Candidate(video_uid=f"file:{sha[:16]}", url=f"upload:{sha[:16]}/{name}", platform="file",
                          platform_id=sha[:16], title=name, tags=tags, watchlist=SUBMISSIONS, entry_kind="url",
                          media_sha256=sha, media_uri=uri, media_bytes=size, media_duration_s=duration,
                          media_width=width, media_height=height)
    _queue(es, settings, candidate, _record(by, note, webhook), producer)
    return Submission(candidate.video_uid, "queued", candidate.status_reason)


def add_submission_routes(app: Any, *, settings: Settings, es: Any, require: Any, page: Any, check_csrf: Any,
                          bearer: Any) -> None:
    """``GET /submit`` (the "Check a video" form), ``POST /submit`` and ``POST /api/submissions`` (bearer token, or
    the page's session with its CSRF header): any logged-in user (analysts included)."""
    def text(value: Any) -> str:
        return value if isinstance(value, str) else ""

    async def handle(form: Any, user: Any) -> Submission:
        tags = [t for t in text(form.get("tags")).split(",")]
        note, webhook = text(form.get("note")), text(form.get("webhook")).strip() or None
        if webhook and not webhook.startswith(("https://", "http://")):
            raise SubmissionRefused("the webhook must be an http(s) URL")
        if webhook:  # the rules the sink applies when it calls it (pipeline/sink/_webhook.py), told at once
            from ..crawl import UrlPolicy
            from .._exceptions import UnsafeURL

            try:
                UrlPolicy.from_settings(settings.model_copy(update={"domain_allowlist": []})).check(webhook)
            except UnsafeURL as exc:
                raise SubmissionRefused(f"the webhook is refused: {exc}") from exc
        upload = form.get("file")
        if upload is not None and not isinstance(upload, str) and upload.filename:
            async def chunks() -> AsyncIterator[bytes]:
                while data := await upload.read(CHUNK):
                    yield data
            return await submit_upload(chunks(), upload.filename, settings, es, by=user.name, note=note, tags=tags,
                                       webhook=webhook)
        url = text(form.get("url")).strip()
        if not url:
            raise SubmissionRefused("give a link or choose a file")
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(submit_link, url, settings, es, by=user.name, note=note, tags=tags,
                                       webhook=webhook)

    @app.get("/submit")
    def submit_form(request: Request) -> Response:
        require(request)
        return page(request, "submit.html", error=None, form={})

    @app.post("/submit")
    async def submit_page(request: Request) -> Response:
        user = require(request)
        form = await request.form()
        check_csrf(request, text(form.get("csrf_token")))
        try:
            outcome = await handle(form, user)
        except SubmissionRefused as exc:
            return page(request, "submit.html", status=400, error=str(exc),
                        form={k: text(form.get(k)) for k in ("url", "note", "tags", "webhook")})
        return RedirectResponse(f"/videos/{outcome.video_uid}" + ("?duplicate=1" if outcome.duplicate else ""),
                                status_code=303)

    @app.post("/api/submissions")
    async def api_submit(request: Request) -> JSONResponse:
        user = require(request)
        if bearer(request) is None:
            check_csrf(request, request.headers.get("x-csrf-token"))
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                body = await request.json()
            except ValueError:
                body = None
            if not isinstance(body, dict):
                return JSONResponse({"error": "send JSON {url, note, tags, webhook} or a multipart form with file"},
                                    status_code=400)
            form = {**body, "tags": ",".join(body.get("tags") or []) if isinstance(body.get("tags"), list)
                    else text(body.get("tags"))}
        else:
            form = await request.form()
        try:
            outcome = await handle(form, user)
        except SubmissionRefused as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(outcome.to_dict(), status_code=200 if outcome.duplicate else 201)
