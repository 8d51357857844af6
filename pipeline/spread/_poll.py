"""Re-polling public counters: yt-dlp metadata only (no download), through the crawl's discovery and its URL policy.

First the listings (``_listing``): where at least ``spread_listing_min_videos`` followed videos of one host share a
listing that shows counters (their channel's page, the feed they were found on), one request reads them all, the due
videos and those inside their reading's early window (``_schedule``); a due video the listing does not show is read
from its own page. Each video page is read with `pipeline.crawl.discover_entry` as a ``url`` entry, so every request
(and redirect) passes the same network safety checks as the crawl; videos that share a page (several on one page,
each with its counters in the page's metadata) are read with one request. Requests to one host are spaced by a minimum interval
(`HostRateLimiter`); cookies files and proxies can differ per host or platform. A page that fails gives an
observation with ``error`` set and no counters; a page that withholds a counter gives None for it, never 0.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from .._settings import Settings
from .._time import utcnow as _utcnow
from ._listing import counters_by_key, host_key, listing_keys, page_key, read_listing

__all__ = ["Observation", "HostRateLimiter", "poll_videos", "settings_for_host", "host_key"]

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


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
    reads: float = 1.0  # requests this observation made (a listing's read is shared by the videos it showed)
    source: str = "page"  # where the counters were read: its page, or a listing ("listing")
    listings_missed: list[str] = field(default_factory=list)  # listings read this time that did not show it

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
    """Read the counters of each video (``{"video_uid", "url", "platform"}``, with ``channel_url``,
    ``watchlist_kind``, ``watchlist_target`` for its listings and ``due`` False for one that is only inside its
    early window): from shared listings first (``spread_listings``), then one page read per page, not per video.

    Videos listed together on one page (a news page with several videos, each with its counters in the page's
    metadata) share that page's read; videos a listing shows share the listing's read. Each observation's ``reads``
    is its share of the requests (they add up to the requests made). A video that is not due is only read when a
    listing shows it."""
    from ..crawl import UrlPolicy

    limiter = limiter or HostRateLimiter.from_settings(settings)
    policy = UrlPolicy.from_settings(settings)
    out: list[Observation] = []
    if settings.spread_listings:
        listed, pending, unread, missed = _poll_listings(videos, settings, limiter, policy, clock)
        out.extend(listed)
    else:
        pending, unread, missed = [v for v in videos if v.get("due", True)], 0.0, {}
    out.extend(_poll_pages(pending, settings, limiter, policy, clock))
    for observation in out:
        observation.listings_missed = missed.get(observation.video_uid, [])
    if out and unread:  # listings that showed none of their videos: their requests count all the same
        out[-1].reads += unread
    failed = sum(1 for o in out if o.error)
    logger.info("re-polled %d videos with %g requests (%d from listings, %d failed)", len(out),
                sum(o.reads for o in out), sum(1 for o in out if o.source == "listing"), failed)
    return out


def _poll_listings(videos: Sequence[Mapping[str, Any]], settings: Settings, limiter: HostRateLimiter, policy: Any,
                   clock: Clock) -> tuple[list[Observation], list[Mapping[str, Any]], float, dict[str, list[str]]]:
    """Read the listings shared by enough of the videos, the one most due videos prefer first; returns the
    observations from listings, the due videos still to read from their pages, the requests of listings that
    showed none of them, and for each video the listings read that did not show it (not asked again for it)."""
    keys = {v["video_uid"]: listing_keys(v) for v in videos}
    open_videos = {v["video_uid"]: v for v in videos}
    tried: set[str] = set()
    out: list[Observation] = []
    missed: dict[str, list[str]] = {}
    unread = 0.0
    while True:
        # each due video asks for its best listing not tried yet (its channel's before its feed); a listing read
        # also takes every open video it may show
        asked: dict[str, list[Mapping[str, Any]]] = {}
        preferred: dict[str, int] = {}
        for uid, video in open_videos.items():
            untried = [key for key in keys[uid] if key not in tried]
            for key in untried:
                asked.setdefault(key, []).append(video)
            if untried and video.get("due", True):
                preferred[untried[0]] = preferred.get(untried[0], 0) + 1
        enough = [key for key in preferred if len(asked[key]) >= settings.spread_listing_min_videos]
        if not enough:
            break
        key = min(enough, key=lambda k: (-preferred[k], -len(asked[k]), k))
        tried.add(key)
        host = host_key(key)
        platform = asked[key][0].get("platform")
        limiter.wait(host, platform)
        started = time.monotonic()
        at = clock()
        listed = read_listing(key, settings_for_host(settings, host, platform), policy,
                              limit=settings.spread_listing_size)
        seconds = round(time.monotonic() - started, 3)
        shown = counters_by_key(listed or [])
        found = [(video, shown.get(video["video_uid"]) or shown.get(page_key(str(video["url"])) or ""))
                 for video in asked[key]]
        if listed is not None:  # read, and these videos are not on it (a failed read is tried again next time)
            for video, item in found:
                if item is None:
                    missed.setdefault(video["video_uid"], []).append(key)
        found = [(video, item) for video, item in found if item is not None]
        if not found:
            unread += 1.0
            logger.info("listing %s shows none of its %d followed videos' counters", key, len(asked[key]))
            continue
        for video, item in found:
            open_videos.pop(video["video_uid"], None)
            out.append(Observation(video["video_uid"], str(video["url"]), at, views=item.views, likes=item.likes,
                                   comments=item.comments, reposts=item.reposts, seconds=seconds,
                                   reads=round(1.0 / len(found), 6), source="listing"))
    pending = [v for v in open_videos.values() if v.get("due", True)]
    return out, pending, unread, missed


def _poll_pages(videos: Sequence[Mapping[str, Any]], settings: Settings, limiter: HostRateLimiter, policy: Any,
                clock: Clock) -> list[Observation]:
    """One read per page (videos sharing a page share its read)."""
    from ..crawl import WatchlistEntry, discover_entry

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
    return out
