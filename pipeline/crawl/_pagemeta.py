"""Metadata a video page declares about itself: JSON-LD ``VideoObject`` (schema.org) and OpenGraph video tags.

Whichever yt-dlp extractor claims a page, the page's own declaration is what names the video: yt-dlp's html5
extractor takes any page with a ``<video>`` tag and reports the page title with an entry number (" (1)") and no
counters, upload time or channel, even when a JSON-LD VideoObject beside the tag says all of them.

    page (as the extractor read it, kept by the guarded yt-dlp; else read again, size-capped) ─▶ JSON-LD VideoObjects (top level, @graph, ItemList,
    Article.video) ─▶ else OpenGraph video tags ─▶ each matched to the video yt-dlp found by its media URL
    (or the only one) ─▶ title, description, channel, upload time, counters onto the candidate

The JSON-LD parsing is yt-dlp's own (``InfoExtractor._json_ld``: interaction counters as schema.org URLs, as typed
objects or as text with separators); the legacy ``interactionCount: "UserPlays:1234"`` and ``datePublished`` are read
here. Values the page does not declare stay as yt-dlp found them (None, never 0).
"""
from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["PageVideo", "GENERIC_EXTRACTORS", "PAGE_BYTES", "needs_page", "read_page", "decode_page", "page_videos",
           "match_video", "strip_entry_suffix"]

logger = logging.getLogger(__name__)

#: extractors that read a page generically (their titles and counters come from the page, if at all)
GENERIC_EXTRACTORS = frozenset({"generic", "html5mediaembed"})
PAGE_BYTES = 2 * 1024 * 1024
_ENTRY_SUFFIX = re.compile(r"\s\(\d+\)$")
_CONTAINERS = ("@graph", "itemListElement", "item", "video", "subjectOf", "mainEntity", "hasPart")


@dataclass
class PageVideo:
    """One video as the page declares it (None = not declared)."""

    title: str | None = None
    description: str | None = None
    channel: str | None = None
    channel_url: str | None = None
    published: datetime | None = None
    views: int | None = None
    likes: int | None = None
    comments: int | None = None
    duration_s: float | None = None
    media_urls: set[str] = field(default_factory=set)
    source: str = "json-ld"  # or "opengraph"


def needs_page(info: Mapping[str, Any]) -> bool:
    """Whether the page itself should be read: a generic extractor claimed it, or metadata is missing."""
    key = str(info.get("extractor_key") or info.get("ie_key") or "").lower()
    if key in GENERIC_EXTRACTORS:
        return True
    return info.get("view_count") is None or not (info.get("timestamp") or info.get("upload_date")) or not (
        info.get("channel") or info.get("uploader"))


def strip_entry_suffix(title: str | None, info: Mapping[str, Any]) -> str | None:
    """A title without the " (N)" entry number yt-dlp's html5 extractor appends to the page title."""
    if title and str(info.get("extractor_key") or "").lower() == "html5mediaembed":
        return _ENTRY_SUFFIX.sub("", title)
    return title


def read_page(ydl: Any, url: str) -> str | None:
    """The page's HTML (first PAGE_BYTES) through ``ydl`` (so the URL policy applies), or None when unreadable."""
    try:
        with ydl.urlopen(url) as response:
            content_type = str(response.headers.get("Content-Type") or "")
            if content_type and "html" not in content_type and "xml" not in content_type:
                return None
            raw = response.read(PAGE_BYTES)
    except Exception as exc:  # noqa: BLE001 - the page's own metadata is extra; yt-dlp's stays
        logger.info("page %s not read for its metadata: %s", url, exc)
        return None
    return decode_page(raw, content_type)


def decode_page(raw: bytes, content_type: str) -> str:
    """HTML bytes as text, in the charset the Content-Type names (else UTF-8)."""
    charset = re.search(r"charset=([\w-]+)", content_type)
    try:
        return raw.decode(charset.group(1) if charset else "utf-8", "replace")
    except LookupError:
        return raw.decode("utf-8", "replace")


def _extractor(ydl: Any) -> Any:
    from yt_dlp.extractor.generic import GenericIE

    return GenericIE(ydl)


def _is_video(node: Mapping[str, Any]) -> bool:
    kind = node.get("@type")
    return "VideoObject" in (kind if isinstance(kind, list) else [kind])


def video_nodes_in_lists(node: Any, list_item_url: str | None = None,
                         depth: int = 0) -> Iterator[tuple[dict[str, Any], str | None]]:
    """Every VideoObject in a JSON-LD tree (top level, @graph, ItemList items, Article.video, ...), each with the
    ``url`` of the ListItem around it (a listing page names each video's page there), if any."""
    if depth > 6:
        return
    if isinstance(node, list):
        for item in node:
            yield from video_nodes_in_lists(item, list_item_url, depth + 1)
        return
    if not isinstance(node, dict):
        return
    if _is_video(node):
        yield node, list_item_url
        return
    kind = node.get("@type")
    if "ListItem" in (kind if isinstance(kind, list) else [kind]) and isinstance(node.get("url"), str):
        list_item_url = node["url"]
    for key in _CONTAINERS:
        if key in node:
            yield from video_nodes_in_lists(node[key], list_item_url, depth + 1)


def _video_nodes(node: Any) -> Iterator[dict[str, Any]]:
    """Every VideoObject in a JSON-LD tree."""
    return (video for video, _ in video_nodes_in_lists(node))


def _count(value: Any) -> int | None:
    from yt_dlp.utils import str_to_int

    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    text = str(value)
    return str_to_int(text.rsplit(":", 1)[-1]) if re.search(r"\d", text) else None


def _moment(value: Any) -> datetime | None:
    from yt_dlp.utils import unified_timestamp

    stamp = unified_timestamp(str(value)) if value else None
    return datetime.fromtimestamp(stamp, UTC) if stamp is not None else None


def _names(value: Any) -> tuple[str | None, str | None]:
    """(name, url) of a schema.org author/publisher: a Person, an Organization, a list of them, or text."""
    if isinstance(value, list):
        value = next((v for v in value if v), None)
    if isinstance(value, dict):
        name, url = value.get("name"), value.get("url")
        return (str(name) if name else None), (str(url) if isinstance(url, str) else None)
    return (str(value) if isinstance(value, str) and value else None), None


def _from_json_ld(ie: Any, node: dict[str, Any], url: str) -> PageVideo:
    from yt_dlp.utils import unescapeHTML

    info = ie._json_ld({"@context": "https://schema.org", **node}, url, fatal=False, expected_type="VideoObject")
    channel, channel_url = _names(node.get("author"))
    if channel is None:
        channel, channel_url = _names(node.get("publisher"))
    published = info.get("timestamp")
    urls = {str(node[k]) for k in ("contentUrl", "embedUrl", "url") if isinstance(node.get(k), str)}
    return PageVideo(
        title=info.get("title") or (unescapeHTML(node["headline"]) if node.get("headline") else None),
        description=info.get("description"),
        channel=channel, channel_url=channel_url,
        published=datetime.fromtimestamp(published, UTC) if published is not None else _moment(
            node.get("datePublished") or node.get("dateCreated")),
        views=info.get("view_count") if info.get("view_count") is not None else _count(node.get("interactionCount")),
        likes=info.get("like_count"), comments=info.get("comment_count"),
        duration_s=float(info["duration"]) if info.get("duration") is not None else None,
        media_urls=urls, source="json-ld")


def _from_opengraph(ie: Any, webpage: str) -> PageVideo | None:
    from yt_dlp.utils import unescapeHTML

    def meta(*names: str) -> str | None:
        for name in names:
            value = ie._html_search_meta(name, webpage, default=None)
            if value:
                return unescapeHTML(value)
        return None

    media = {m for m in (meta("og:video:secure_url"), meta("og:video:url"), meta("og:video")) if m}
    kind = meta("og:type") or ""
    if not media and not kind.startswith("video"):
        return None
    duration = meta("video:duration", "og:video:duration")
    return PageVideo(
        title=meta("og:title", "twitter:title"), description=meta("og:description", "twitter:description"),
        channel=meta("article:author", "video:director", "og:site_name"),
        published=_moment(meta("video:release_date", "article:published_time", "og:video:release_date")),
        duration_s=float(duration) if duration and re.fullmatch(r"\d+(\.\d+)?", duration) else None,
        media_urls=media, source="opengraph")


def page_videos(ydl: Any, webpage: str, url: str) -> list[PageVideo]:
    """The videos the page declares: its JSON-LD VideoObjects, else its OpenGraph video, else none."""
    ie = _extractor(ydl)
    videos = [_from_json_ld(ie, node, url) for obj in ie._yield_json_ld(webpage, url, fatal=False)
              for node in _video_nodes(obj)]
    if videos:
        return videos
    og = _from_opengraph(ie, webpage)
    return [og] if og else []


def match_video(videos: Sequence[PageVideo], media_urls: Sequence[str], *, position: int | None = None,
                total: int = 1) -> PageVideo | None:
    """The declared video that is yt-dlp's: same media URL; else the only one; else the same position on a page
    that declares as many videos as yt-dlp found."""
    urls = set(media_urls)
    for video in videos:
        if video.media_urls & urls:
            return video
    if len(videos) == 1 and total == 1:
        return videos[0]
    if position is not None and len(videos) == total and 0 <= position < total:
        return videos[position]
    return None
