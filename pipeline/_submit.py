"""`vigil submit URL|FILE`: queue one video on the jobs topic by hand.

A local file is hashed and copied into the content-addressed media store (``<store>/<sha[:2]>/<sha><ext>``) and
gets the video_uid ``file:<sha[:16]>``. A URL goes through the crawler's discovery and download
(``pipeline.crawl``: the download caps ``max_download_mb``, ``max_duration_s``, ``max_height``, the network safety
rules — no private addresses but ``allowed_private_networks``, ``domain_allowlist`` — checked on every request, and
retries), then into the store the same way; its video_uid is ``<extractor>:<id>`` as yt-dlp reports them (both
environments install the crawler: there is no second, weaker download path). No detectors are imported here.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


from ._exceptions import ConfigError, VigilError
from ._kafka import make_producer
from ._media_store import MediaStore, sha256_file
from ._messages import JobMessage, SourceMetadata, encode
from ._settings import Settings

__all__ = ["submit_target", "store_file", "enqueue", "SubmitRefused"]

logger = logging.getLogger(__name__)


class SubmitRefused(VigilError):
    """The target cannot be queued: not a file or URL, unsafe address, over a cap, download failed."""


def sniff_media(path: Path) -> None:
    """SubmitRefused unless ``path`` decodes as video, by the rules `vigil scan` applies (detectors._decode): not
    text, a container FFmpeg opens, a video stream that is not a still image, and a first frame that decodes."""
    import av

    with open(path, "rb") as handle:
        head = handle.read(4096)
    try:
        head.decode("utf-8")
        printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in head.decode("utf-8"))
        if head and printable >= 0.95 * len(head.decode("utf-8")):
            raise SubmitRefused(f"refused: {path.name} is a text file, not media")
    except UnicodeDecodeError:
        pass
    try:
        with av.open(str(path), mode="r") as container:
            if not container.streams.video:
                raise SubmitRefused(f"refused: {path.name} has no video stream")
            if container.format.name == "image2" or container.format.name.endswith("_pipe"):
                raise SubmitRefused(f"refused: {path.name} is a still image, not a video")
            next(container.decode(video=0))
    except (av.error.FFmpegError, StopIteration, UnicodeDecodeError) as exc:
        raise SubmitRefused(f"refused: {path.name} does not decode as video ({type(exc).__name__})") from exc


def local_roots(settings: Settings) -> list[Path]:
    """Directories `vigil submit FILE` may read without --allow-local."""
    roots = settings.submit_local_roots or [str(Path.cwd()), str(Path.home()), tempfile.gettempdir()]
    return [Path(r).expanduser().resolve() for r in roots]


def store_file(path: Path, settings: Settings) -> tuple[str, str]:
    """Copy ``path`` into the media store under its hash (idempotent, mode 0640 on a local store); returns (sha256,
    URI of the stored file). SubmitRefused unless it decodes as video."""
    sniff_media(path)
    sha = sha256_file(path)
    return sha, MediaStore.from_settings(settings).put(path, sha256=sha, mode=0o640)


def enqueue(job: JobMessage, settings: Settings, *, producer: Any = None) -> None:
    """Produce ``job`` to the jobs topic (key = video_uid) and wait for the broker's acknowledgement."""
    own = producer is None
    producer = producer or make_producer(settings)
    try:
        producer.send(settings.topic_jobs, key=job.video_uid.encode(), value=encode(job)).get(
            timeout=settings.kafka_request_timeout_ms / 1000)
    finally:
        if own:
            producer.close(timeout=10)


def _job_for_url(url: str, settings: Settings, video_uid: str | None) -> JobMessage:
    """Download through the crawler: its caps, network safety rules (every hop) and retries."""
    from ._media_store import MediaStore
    from .crawl import WatchlistEntry, build_job, discover_entry, fetch_to_store

    found = discover_entry(WatchlistEntry(kind="url", target=url), settings, watchlist="submit")
    if found.error:
        raise SubmitRefused(f"{url}: {found.error}")
    refused = [c for c in found.candidates if c.decided]
    open_ = [c for c in found.candidates if not c.decided]
    if not open_:
        reason = refused[0].status_reason if refused else "no video found at this URL"
        raise SubmitRefused(f"{url}: {reason}")
    try:
        candidate = fetch_to_store(open_[0], settings, MediaStore.from_settings(settings))
    except VigilError as exc:
        raise SubmitRefused(f"{url}: {exc}") from exc
    job = build_job(candidate)
    return job.model_copy(update={"video_uid": video_uid}) if video_uid else job


def submit_target(target: str, settings: Settings, *, video_uid: str | None = None,
                  producer: Any = None, allow_local: bool = False) -> JobMessage:
    """Store ``target`` (file or URL) in the media store and queue a ``vigil.job/1`` for it. A local file must lie
    under `local_roots` unless ``allow_local``, and decode as video."""
    path = Path(target[len("file://"):] if target.startswith("file://") else target).expanduser()
    if path.is_file() and not allow_local:
        real = path.resolve()
        if not any(real.is_relative_to(root) for root in local_roots(settings)):
            raise SubmitRefused(f"refused: {path} is outside the directories submit reads "
                                "(VIGIL_SUBMIT_LOCAL_ROOTS); pass --allow-local to read it anyway")
    if path.is_file():
        size = path.stat().st_size
        if size > settings.max_download_mb * 1024 * 1024:
            raise SubmitRefused(f"refused: {path} is larger than the {settings.max_download_mb} MB cap")
        sha, uri = store_file(path, settings)
        job = JobMessage(video_uid=video_uid or f"file:{sha[:16]}", media_uri=uri, media_sha256=sha,
                         source=SourceMetadata(platform="file", url=path.resolve().as_uri(), title=path.name))
    elif urlsplit(target).scheme in ("http", "https"):
        job = _job_for_url(target, settings, video_uid)
    else:
        raise ConfigError(f"{target!r} is neither a file nor an http(s) URL")
    enqueue(job, settings, producer=producer)
    logger.info("queued %s (%s)", job.video_uid, job.media_uri)
    return job
