"""Re-polling public counters: yt-dlp metadata only (no download), through the crawl's discovery and its URL policy.

Each video page is read with `pipeline.crawl.discover_entry` as a ``url`` entry, so every request (and redirect)
passes the same network safety checks as the crawl; videos that share a page (several on one page, each with its
counters in the page's metadata) are read with one request. Requests to one host are spaced by a minimum interval
(`HostRateLimiter`); cookies files and proxies can differ per host or platform. A page that fails gives an
observation with ``error`` set and no counters; a page that withholds a counter gives None for it, never 0.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from .._settings import Settings

__all__ = ["Observation", "HostRateLimiter", "poll_videos", "settings_for_host", "host_key"]

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Observation:
    """The counters read from one video's page at one moment (None = withheld), or why they could not be read."""

    video_uid: str
    url: str
    at: datetime
    views: int | None = None
    likes: int | None = None
    comments: int | None = None
    reposts: int | None = None
    error: str | None = None
    seconds: float = 0.0
    reads: float = 1.0  # page requests this observation made (0: it came with another video's read of its page)

    def to_xcom(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = self.at.isoformat()
        return data

    @classmethod
    def from_xcom(cls, data: Mapping[str, Any]) -> Observation:
        values = dict(data)
        at = values["at"]
        values["at"] = datetime.fromisoformat(at) if isinstance(at, str) else at
        return cls(**values)


def host_key(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def _lookup(table: Mapping[str, Any], host: str, platform: str | None) -> Any:
    """A per-host value: exact host, then a parent domain, then the platform name."""
    parts = host.split(".")
    for i in range(len(parts)):
        candidate = ".".join(parts[i:])
        if candidate in table:
            return table[candidate]
    if platform and platform in table:
        return table[platform]
    return None


@dataclass
class HostRateLimiter:
    """Keeps at least ``interval(host)`` seconds between the starts of two requests to one host (thread-safe)."""

    default_s: float = 0.0
    per_host: Mapping[str, float] = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _last: dict[str, float] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> HostRateLimiter:
        return cls(default_s=settings.spread_min_interval_s, per_host=dict(settings.spread_host_intervals))

    def interval(self, host: str, platform: str | None = None) -> float:
        found = _lookup(self.per_host, host, platform)
        return float(found) if found is not None else self.default_s

    def wait(self, host: str, platform: str | None = None) -> float:
        """Sleep until ``host`` may be asked again; returns the seconds slept."""
        with self._lock:
            interval = self.interval(host, platform)
            now = self.clock()
            last = self._last.get(host)
            delay = max(0.0, last + interval - now) if last is not None else 0.0
            self._last[host] = now + delay
        if delay > 0:
            logger.debug("waiting %.2f s before asking %s again", delay, host)
            self.sleep(delay)
        return delay


def settings_for_host(settings: Settings, host: str, platform: str | None = None) -> Settings:
    """Settings for re-polling one host: no subtitles, and that host's cookies file and proxy when configured."""
    update: dict[str, Any] = {"crawl_fetch_subtitles": False}
    cookies = _lookup(settings.spread_cookies_files, host, platform)
    if cookies is not None:
        update["ytdlp_cookies_file"] = cookies
    proxy = _lookup(settings.spread_proxies, host, platform)
    if proxy is not None:
        update["ytdlp_proxy"] = proxy
    return settings.model_copy(update=update)


def poll_videos(videos: Sequence[Mapping[str, Any]], settings: Settings, *, limiter: HostRateLimiter | None = None,
                clock: Clock = _utcnow) -> list[Observation]:
    """Read the counters of each video (``{"video_uid", "url", "platform"}``) with yt-dlp: one page read per page,
    not per video. Videos listed together on one page (a news page with several videos, each with its counters in
    the page's metadata) share that page's read; each observation's ``reads`` says which read the request (1) and
    which came with it (0)."""
    from ..crawl import UrlPolicy, WatchlistEntry, discover_entry

    limiter = limiter or HostRateLimiter.from_settings(settings)
    policy = UrlPolicy.from_settings(settings)
    by_page: dict[str, list[Mapping[str, Any]]] = {}
    for video in videos:
        by_page.setdefault(str(video["url"]), []).append(video)
    out: list[Observation] = []
    for url, group in by_page.items():
        platform = group[0].get("platform")
        host = host_key(url)
        at = clock()
        try:
            entry = WatchlistEntry(kind="url", target=url)
        except ValueError as exc:
            out.extend(Observation(v["video_uid"], url, at, error=f"not a pollable URL: {exc}", reads=0.0)
                       for v in group)
            continue
        limiter.wait(host, platform)
        started = time.monotonic()
        at = clock()
        result = discover_entry(entry, settings_for_host(settings, host, platform), watchlist="spread", policy=policy)
        seconds = round(time.monotonic() - started, 3)
        for position, video in enumerate(group):
            uid, reads = video["video_uid"], 1.0 if position == 0 else 0.0
            if result.error or not result.candidates:
                out.append(Observation(uid, url, at, error=result.error or "no video found", seconds=seconds,
                                       reads=reads))
                continue
            found = next((c for c in result.candidates if c.video_uid == uid), None)
            if found is None and len(result.candidates) == 1:  # a page read by another URL form (a redirect)
                found = result.candidates[0]
            if found is None:
                out.append(Observation(uid, url, at, error="no longer listed on its page", seconds=seconds,
                                       reads=reads))
                continue
            if found.platform_id is None:  # the page itself was refused or failed; a refused media URL still counts
                out.append(Observation(uid, url, at, error=found.status_reason, seconds=seconds, reads=reads))
                continue
            out.append(Observation(uid, url, at, views=found.views, likes=found.likes, comments=found.comments,
                                   reposts=found.reposts, seconds=seconds, reads=reads))
    failed = sum(1 for o in out if o.error)
    logger.info("re-polled %d videos with %d page reads (%d failed)", len(out), len(by_page), failed)
    return out
