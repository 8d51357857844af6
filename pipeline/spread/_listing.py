"""Counters of many videos from one request: a channel or feed listing that carries each listed video's counters.

A platform's listings often show every listed video's views (a channel's video tab, a news site's video hub with a
schema.org ``ItemList`` of ``VideoObject``s, a YouTube channel feed with ``media:statistics``), so one request
reads what would otherwise take one page request per video. Three readings, chosen by the extractor that claims the
listing URL:

- a dedicated yt-dlp extractor (a platform's channel or playlist): its flat entries (``extract_flat``, nothing
  below the listing is read), each with the ids and the counters the extractor gives (``view_count``, ...);
- a generic page: the JSON-LD ``VideoObject``s the page declares with their page ``url`` (top level, ``@graph``,
  ``ItemList`` elements, ``ListItem``s);
- a feed (RSS or Atom): each item's link with Media RSS ``media:statistics`` (views) and ``media:starRating``
  (likes, as YouTube's feeds give them).

Only videos whose listing gives their views are taken from it; the others are read from their own page as before
(``_poll``). The listing is read through the crawl's guarded yt-dlp, so the URL policy holds for it and its redirects.
"""
from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

from .._settings import Settings
from ..crawl._pagemeta import _count

__all__ = ["ListedVideo", "read_listing", "listing_keys", "page_key", "host_key", "from_flat_entries", "from_json_ld",
           "from_feed"]

logger = logging.getLogger(__name__)

#: the watchlist kinds whose target lists many videos
LISTING_KINDS = ("feed", "page")
_MEDIA = "{http://search.yahoo.com/mrss/}"
_ATOM = "{http://www.w3.org/2005/Atom}"


@dataclass(frozen=True)
class ListedVideo:
    """One video as a listing shows it: its page URL and/or uid, and the counters shown (None = not shown)."""

    page_url: str | None
    uid: str | None
    views: int | None
    likes: int | None = None
    comments: int | None = None
    reposts: int | None = None


def host_key(url: str) -> str:
    """The host a request goes to (lower case): per-host rate limits, batches and listings are per host."""
    return (urlsplit(url).hostname or "").lower()


def page_key(url: str | None) -> str | None:
    """A page URL compared across a listing and the index: no fragment, no trailing slash, lower-case host."""
    if not url:
        return None
    parts = urlsplit(str(url).strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    netloc = parts.netloc.lower()
    return urlunsplit((parts.scheme.lower(), netloc, parts.path.rstrip("/") or "/", parts.query, ""))


def listing_keys(video: Mapping[str, Any]) -> list[str]:
    """The listings that may show a followed video's counters, best first: its channel's page, then the feed or page
    it was discovered on. Only listings on the video page's own host (so per-host rate limits hold), never the
    video's page itself, and none that was read before and did not show it (``listings_missed``)."""
    url = str(video.get("url") or "")
    host = host_key(url)
    out: list[str] = []
    missed = set(video.get("listings_missed") or ())
    candidates = [video.get("channel_url")]
    if video.get("watchlist_kind") in LISTING_KINDS:
        candidates.append(video.get("watchlist_target"))
    for candidate in candidates:
        key = page_key(candidate)
        if key and host and host_key(key) == host and key != page_key(url) and key not in out and key not in missed:
            out.append(key)
    return out


def from_flat_entries(entries: Iterable[Mapping[str, Any]], base_url: str) -> list[ListedVideo]:
    """A dedicated extractor's flat entries (``extract_flat``): uid from ``ie_key`` and ``id``, counters as given."""
    from ..crawl import video_uid

    out = []
    for item in entries:
        if not isinstance(item, Mapping):
            continue
        uid = video_uid(str(item["ie_key"]), str(item["id"])) if item.get("ie_key") and item.get("id") else None
        url = item.get("webpage_url") or item.get("url")
        out.append(ListedVideo(page_url=page_key(urljoin(base_url, str(url))) if url else None, uid=uid,
                               views=_count(item.get("view_count")), likes=_count(item.get("like_count")),
                               comments=_count(item.get("comment_count")), reposts=_count(item.get("repost_count"))))
    return out


def from_json_ld(ydl: Any, webpage: str, base_url: str) -> list[ListedVideo]:
    """The VideoObjects a listing page declares with their page URL (a VideoObject's ``url`` or
    ``mainEntityOfPage``, or the ``url`` of the ListItem around it)."""
    from ..crawl._pagemeta import _extractor, _from_json_ld, video_nodes_in_lists

    ie = _extractor(ydl)
    out = []
    for obj in ie._yield_json_ld(webpage, base_url, fatal=False):
        for node, list_item_url in video_nodes_in_lists(obj):
            url = node.get("url") or _entity_url(node.get("mainEntityOfPage")) or list_item_url
            if not isinstance(url, str):
                continue
            declared = _from_json_ld(ie, node, base_url)
            out.append(ListedVideo(page_url=page_key(urljoin(base_url, url)), uid=None, views=declared.views,
                                   likes=declared.likes, comments=declared.comments))
    return out


def _entity_url(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        found = value.get("@id") or value.get("url")
        return found if isinstance(found, str) else None
    return None


def from_feed(text: str, base_url: str) -> list[ListedVideo]:
    """RSS items and Atom entries with Media RSS statistics (``<media:statistics views>``, ``<media:starRating
    count>``); items without statistics are listed with no counters. Parsed with expat (no external entities; its
    entity-expansion limits hold)."""
    try:
        root = ET.fromstring(text.strip().encode("utf-8"))
    except ET.ParseError as exc:
        logger.info("feed %s not parsed: %s", base_url, exc)
        return []
    out = []
    for item in [*root.iter("item"), *root.iter(f"{_ATOM}entry")]:
        link = item.findtext("link")
        if not link:
            atom = [e for e in item.findall(f"{_ATOM}link") if e.get("rel", "alternate") == "alternate"]
            link = atom[0].get("href") if atom else None
        stats = item.find(f".//{_MEDIA}statistics")
        rating = item.find(f".//{_MEDIA}starRating")
        out.append(ListedVideo(page_url=page_key(urljoin(base_url, link.strip())) if link else None, uid=None,
                               views=_count(stats.get("views")) if stats is not None else None,
                               likes=_count(rating.get("count")) if rating is not None else None))
    return out


def read_listing(url: str, settings: Settings, policy: Any, *, limit: int) -> list[ListedVideo] | None:
    """The videos one listing shows with their counters, or None when it cannot be read (refused, failed, not a
    listing): its videos are then read from their pages. One request (a dedicated extractor's listing may take
    more when the platform pages it; ``limit`` caps the entries)."""
    from ..crawl._extractors import GENERIC, check_entry
    from ..crawl._pagemeta import GENERIC_EXTRACTORS, read_page
    from ..crawl._ytdlp import GuardedYoutubeDL, ytdlp_options

    checked = check_entry("page", url, settings.ytdlp_extractors)
    if not checked.ok:
        logger.info("listing %s not read: %s", url, checked.problem)
        return None
    try:
        policy.check(url)
    except Exception as exc:  # noqa: BLE001 - UnsafeURL: the listing is skipped, the pages are read as before
        logger.warning("listing %s refused: %s", url, exc)
        return None
    if str(checked.extractor).lower() in GENERIC_EXTRACTORS | {GENERIC}:
        ydl = GuardedYoutubeDL(ytdlp_options(settings), policy=policy)
        with ydl:
            text = read_page(ydl, url)
            if text is None:
                return None
            head = text.lstrip()[:512].lower()
            if head.startswith("<?xml") or head.startswith("<rss") or head.startswith("<feed"):
                return from_feed(text, url)[:limit]
            return from_json_ld(ydl, text, url)[:limit]
    from ..crawl._discover import _flat_entries
    from ..crawl._watchlist import WatchlistEntry

    lister = GuardedYoutubeDL(ytdlp_options(settings, extract_flat="in_playlist", playlistend=limit), policy=policy)
    try:
        with lister:
            flat, _ = _flat_entries(lister, WatchlistEntry(kind="page", target=url), limit)
    except Exception as exc:  # noqa: BLE001 - the listing is extra; its videos' pages are read as before
        logger.info("listing %s not read: %s", url, exc)
        return None
    return from_flat_entries(flat, url)


def counters_by_key(listed: Sequence[ListedVideo]) -> dict[str, ListedVideo]:
    """Listed videos that show their views, by uid and by page URL."""
    out: dict[str, ListedVideo] = {}
    for video in listed:
        if video.views is None:
            continue
        for key in (video.uid, video.page_url):
            if key:
                out.setdefault(key, video)
    return out
