"""Discovery: turn one watchlist entry into candidates with yt-dlp metadata extraction (nothing is downloaded).

A search, feed or page is listed flat (one request), then each video's page is read for its metadata: platform,
id, title, description, channel, upload time and public counters (None when the page withholds them, never 0).
Videos whose page is refused or fails become candidates with that status, so nothing is dropped silently. What the
page declares itself (JSON-LD VideoObject, OpenGraph) names the video whichever extractor claimed it (`_pagemeta`);
a page with several videos gives one candidate each.
"""
from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .._exceptions import DownloadFailed, DownloadRefused, UnsafeURL
from .._settings import Settings
from ._candidate import Candidate, url_uid
from ._extractors import check_entry
from ._pagemeta import (
    GENERIC_EXTRACTORS,
    PageVideo,
    decode_page,
    match_video,
    needs_page,
    page_videos,
    read_page,
    strip_entry_suffix,
)
from ._safety import UrlPolicy
from ._watchlist import WatchlistEntry
from ._ytdlp import GuardedYoutubeDL, transient_retrying, translate_ytdlp_error, unsmuggle, ytdlp_options

__all__ = ["DiscoveryResult", "discover_entry", "format_selector", "video_uid", "candidate_from_info", "apply_page"]

logger = logging.getLogger(__name__)

SUBTITLE_CHARS = 4000
SUBTITLE_BYTES = 256 * 1024
KnownUids = Callable[[Iterable[str]], set[str]]


@dataclass
class DiscoveryResult:
    """What one entry yielded: candidates (some already decided), uids skipped as known, and an entry-level error."""

    entry: WatchlistEntry
    candidates: list[Candidate] = field(default_factory=list)
    known: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    extractor: str | None = None  # the yt-dlp extractor that read the entry (IE_NAME: youtube:search, generic)
    watchlist: str = "watchlist"

    def to_xcom(self) -> dict[str, Any]:
        return {"entry": self.entry.model_dump(mode="json"), "candidates": [c.to_xcom() for c in self.candidates],
                "known": self.known, "error": self.error, "seconds": round(self.seconds, 3),
                "extractor": self.extractor, "watchlist": self.watchlist}

    @classmethod
    def from_xcom(cls, data: dict[str, Any]) -> DiscoveryResult:
        return cls(entry=WatchlistEntry(**data["entry"]),
                   candidates=[Candidate(**c) for c in data["candidates"]], known=list(data["known"]),
                   error=data["error"], seconds=data["seconds"], extractor=data.get("extractor"),
                   watchlist=data.get("watchlist") or "watchlist")


def video_uid(extractor_key: str, video_id: str) -> str:
    """``<extractor_key lower-cased>:<id>``, the uid every index and topic uses."""
    platform = re.sub(r"[^a-z0-9_]", "_", extractor_key.lower())
    return f"{platform}:{video_id}"


def format_selector(settings: Settings) -> str:
    """yt-dlp format selection within the height cap, over protocols our guarded handler fetches itself."""
    h = settings.max_height
    return (f"bv*[height<=?{h}][protocol^=http]+ba[protocol^=http]/b[height<=?{h}][protocol^=http]"
            f"/b[height<=?{h}][protocol=m3u8_native]")


def _int_or_none(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _published(info: dict[str, Any]) -> datetime | None:
    for key in ("timestamp", "release_timestamp"):
        if isinstance(info.get(key), int | float):
            return datetime.fromtimestamp(info[key], UTC)
    for key in ("upload_date", "release_date"):
        value = info.get(key)
        if isinstance(value, str) and re.fullmatch(r"\d{8}", value):
            return datetime.strptime(value, "%Y%m%d").replace(tzinfo=UTC)
    return None


def _selected_formats(info: dict[str, Any]) -> list[dict[str, Any]]:
    if info.get("requested_formats"):
        return list(info["requested_formats"])
    if info.get("url"):
        return [info]
    return []


def candidate_from_info(info: dict[str, Any], entry: WatchlistEntry, *, watchlist: str) -> Candidate:
    """A candidate from yt-dlp's info dict of one video."""
    formats = _selected_formats(info)
    sizes = [_int_or_none(f.get("filesize")) or _int_or_none(f.get("filesize_approx")) for f in formats]
    declared = sum(s for s in sizes if s) if formats and all(sizes) else (
        _int_or_none(info.get("filesize")) or _int_or_none(info.get("filesize_approx")))
    return Candidate(
        video_uid=video_uid(info.get("extractor_key") or info.get("ie_key") or "unknown", str(info["id"])),
        url=info.get("webpage_url") or info.get("original_url") or "",
        platform=(info.get("extractor_key") or "unknown").lower(),
        platform_id=str(info["id"]),
        title=info.get("title") or info.get("fulltitle"),
        description=info.get("description"),
        channel=info.get("channel") or info.get("uploader") or info.get("creator"),
        channel_id=info.get("channel_id") or info.get("uploader_id") or (
            info.get("channel") or info.get("uploader")),
        channel_url=info.get("channel_url") or info.get("uploader_url"),
        published=_published(info),
        views=_int_or_none(info.get("view_count")),
        likes=_int_or_none(info.get("like_count")),
        comments=_int_or_none(info.get("comment_count")),
        reposts=_int_or_none(info.get("repost_count")),
        duration_s=float(info["duration"]) if isinstance(info.get("duration"), int | float) else None,
        filesize=declared,
        media_urls=[f["url"] for f in formats if isinstance(f.get("url"), str)],
        language=entry.language or info.get("language"),
        tags=list(entry.tags),
        watchlist=watchlist,
        entry_kind=entry.kind,
        entry_target=entry.target,
    )


def _vtt_to_text(raw: str) -> str:
    lines = []
    for line in raw.splitlines():
        line = line.strip()
        if not line or line == "WEBVTT" or "-->" in line or line.isdigit() or line.startswith(("NOTE", "Kind:",
                                                                                                 "Language:")):
            continue
        line = re.sub(r"<[^>]+>", "", line)
        if not lines or lines[-1] != line:
            lines.append(line)
    return " ".join(lines)


def _subtitles(ydl: Any, info: dict[str, Any], language: str | None) -> str | None:
    """Text of one subtitle track (the entry's language, else English, else any), or None."""
    for source in ("subtitles", "automatic_captions"):
        tracks: dict[str, list[dict[str, Any]]] = info.get(source) or {}
        if not tracks:
            continue
        order = [lang for lang in (language, "en") if lang] + sorted(tracks)
        for lang in order:
            for track in tracks.get(lang) or []:
                if track.get("ext") != "vtt" or not track.get("url"):
                    continue
                try:
                    with ydl.urlopen(track["url"]) as response:
                        raw = response.read(SUBTITLE_BYTES).decode("utf-8", "replace")
                except Exception as exc:  # noqa: BLE001 - subtitles are optional; a failure is logged, not fatal
                    logger.info("subtitles of %s not read: %s", info.get("webpage_url"), exc)
                    return None
                text = _vtt_to_text(raw)
                return text[:SUBTITLE_CHARS] or None
    return None


def _flat_entries(ydl: Any, entry: WatchlistEntry, limit: int) -> tuple[list[dict[str, Any]], str | None]:
    """The listed videos (flat) and the extractor that listed them."""
    target = entry.search_query(limit) if entry.kind == "search" else entry.target
    # processed with extract_flat="in_playlist": nested tabs and pages are followed, videos are not read yet
    info = ydl.extract_info(target, download=False)
    if info is None:
        return [], None
    extractor = info.get("extractor") or info.get("extractor_key")
    if info.get("_type") in ("playlist", "multi_video") or "entries" in info:
        out = []
        for item in info.get("entries") or []:
            if item is None:
                continue
            out.append(item)
            if len(out) >= limit:
                break
        return out, extractor
    return [info], extractor


def discover_entry(entry: WatchlistEntry, settings: Settings, *, watchlist: str = "watchlist",
                   known_uids: KnownUids | None = None, known_urls: KnownUids | None = None,
                   policy: UrlPolicy | None = None) -> DiscoveryResult:
    """List an entry and read each new video's metadata. Never raises for one video; entry errors go in ``error``.

    ``known_uids`` / ``known_urls`` say which videos are already decided (by uid when the listing gives ids, by
    page URL otherwise); their pages are not read again.
    """
    started = time.monotonic()
    policy = policy or UrlPolicy.from_settings(settings)
    result = DiscoveryResult(entry=entry, watchlist=watchlist)
    limit = entry.effective_limit(settings.crawl_default_limit)

    checked = check_entry(entry.kind, entry.target, settings.ytdlp_extractors)
    if not checked.ok:  # e.g. a search key the installed yt-dlp no longer has: nothing is fetched
        result.error = f"unreadable: {checked.problem}"
        logger.warning("watchlist entry %s %s", entry.label, result.error)
        result.seconds = time.monotonic() - started
        return result
    result.extractor = checked.extractor

    if entry.kind != "search":
        try:
            policy.check(entry.target)
        except UnsafeURL as exc:
            # refused before discovery: the entry's own error (its health row), never a video in the queue
            logger.warning("watchlist entry %s refused: %s", entry.label, exc)
            result.error = f"refused: {exc}"
            result.seconds = time.monotonic() - started
            return result

    if entry.kind == "url":
        flat: list[dict[str, Any]] = [{"url": entry.target}]
    else:
        lister = GuardedYoutubeDL(ytdlp_options(settings, extract_flat="in_playlist", playlistend=limit),
                                  policy=policy)
        try:
            with lister:
                flat, listed_by = _flat_entries(lister, entry, limit)
            result.extractor = listed_by or result.extractor
        except Exception as exc:  # noqa: BLE001 - translated; the entry fails, the run goes on
            error = translate_ytdlp_error(exc, url=entry.target, refusals=lister.refusals)
            verb = "refused" if isinstance(error, UnsafeURL) else "failed"
            result.error = f"{verb}: {error}"
            logger.warning("watchlist entry %s %s", entry.label, result.error)
            result.seconds = time.monotonic() - started
            return result

    seen_urls: set[str] = set()
    pending: list[tuple[str, str | None]] = []
    for item in flat:
        url = unsmuggle(str(item.get("webpage_url") or item.get("url") or ""))
        if not url or url in seen_urls:
            continue
        seen_urls.add(url)
        uid = video_uid(item["ie_key"], str(item["id"])) if item.get("ie_key") and item.get("id") else None
        pending.append((url, uid))
    early = {uid for _, uid in pending if uid}
    known = known_uids(early) if known_uids and early else set()
    anonymous = {url for url, uid in pending if not uid}
    seen = known_urls(anonymous) if known_urls and anonymous else set()
    result.known.extend(sorted(known) + sorted(seen))

    options = ytdlp_options(settings, format=format_selector(settings), skip_download=True)
    ydl = GuardedYoutubeDL(options, policy=policy)
    with ydl:
        for url, uid in pending:
            if uid in known or url in seen:
                continue
            result.candidates.extend(_read_video(ydl, url, uid, entry, watchlist, policy, settings))
    result.seconds = time.monotonic() - started
    logger.info("entry %s: %d candidates, %d already known, %.1f s", entry.label, len(result.candidates),
                len(result.known), result.seconds)
    return result


def _undecided(url: str, entry: WatchlistEntry, watchlist: str, uid: str | None = None) -> Candidate:
    return Candidate(video_uid=uid or url_uid(url), url=url, language=entry.language, tags=list(entry.tags),
                     watchlist=watchlist, entry_kind=entry.kind, entry_target=entry.target)


def _read_video(ydl: Any, url: str, uid: str | None, entry: WatchlistEntry, watchlist: str, policy: UrlPolicy,
                settings: Settings) -> list[Candidate]:
    """The metadata of the video(s) on one page as candidates; a refused or failed page gives a decided one."""
    started = time.monotonic()
    try:
        policy.check(url)
    except UnsafeURL as exc:
        logger.warning("video %s refused: %s", url, exc)
        return [_undecided(url, entry, watchlist, uid).decide("refused", str(exc))]

    def extract() -> dict[str, Any] | None:
        ydl.refusals.clear()
        ydl.capture_url, ydl.captured_page = url, None
        try:
            return ydl.extract_info(url, download=False)
        except Exception as exc:  # noqa: BLE001 - translated; transient errors are tried again
            raise translate_ytdlp_error(exc, url=url, refusals=ydl.refusals) from exc
        finally:
            ydl.capture_url = None

    try:
        info = transient_retrying(settings, f"metadata of {url}")(extract)
    except (DownloadFailed, DownloadRefused) as error:
        verb = "refused" if isinstance(error, DownloadRefused) else "failed"
        reason = str(error)
        if isinstance(error, UnsafeURL) and error.url and error.url != url:
            reason += f" ({error.url})"
        logger.warning("video %s %s: %s", url, verb, reason)
        return [_undecided(url, entry, watchlist, uid).decide(verb, reason)]  # type: ignore[arg-type]
    if info is None or not info.get("id"):
        return [_undecided(url, entry, watchlist, uid).decide("failed", "no video found at this URL")]
    infos = [info]
    if info.get("_type") in ("playlist", "multi_video"):
        infos = _page_entries(info)
        if not infos:
            return [_undecided(url, entry, watchlist, uid).decide(
                "failed", "the URL is a playlist, not a video (watch it as a feed entry)")]
    declared: list[PageVideo] = []
    if any(needs_page(i) for i in infos):  # the page as the extractor read it, else read now
        webpage = (decode_page(ydl.captured_page, ydl.captured_type) if ydl.captured_page is not None
                   else read_page(ydl, url))
        declared = page_videos(ydl, webpage, url) if webpage else []
    candidates = []
    for position, item in enumerate(infos):
        candidate = candidate_from_info(item, entry, watchlist=watchlist)
        candidate.url = candidate.url or url
        candidate.title = strip_entry_suffix(candidate.title, item)
        page = match_video(declared, candidate.media_urls, position=position, total=len(infos))
        if page is not None:
            apply_page(candidate, page, generic=str(item.get("extractor_key") or "").lower() in GENERIC_EXTRACTORS)
        if settings.crawl_fetch_subtitles:
            candidate.subtitles = _subtitles(ydl, item, entry.language)
        for media_url in candidate.media_urls:
            try:
                policy.check(media_url)
            except UnsafeURL as exc:
                candidate.decide("refused", f"{exc} ({media_url})")
                break
        candidate.timings_ms["metadata"] = round((time.monotonic() - started) * 1000, 1)
        candidates.append(candidate)
    return candidates


def _page_entries(info: dict[str, Any]) -> list[dict[str, Any]]:
    """The videos of a page yt-dlp read as several (html5 ``<video>`` tags, embeds), each already resolved; none
    when the URL is a real playlist (its entries are links to other pages)."""
    entries = [e for e in info.get("entries") or [] if isinstance(e, dict)]
    if not entries or not all(e.get("id") and (e.get("formats") or e.get("url")) and e.get("_type", "video") ==
                              "video" for e in entries):
        return []
    if str(info.get("extractor_key") or "").lower() not in GENERIC_EXTRACTORS:
        return []
    return entries


def apply_page(candidate: Candidate, page: PageVideo, *, generic: bool) -> None:
    """The page's declared metadata onto a candidate: over a generic extractor's guesses, else where missing."""
    for name in ("title", "description", "channel", "channel_url", "published", "views", "likes", "comments",
                 "duration_s"):
        value = getattr(page, name)
        if value is not None and (generic or getattr(candidate, name) is None):
            setattr(candidate, name, value)
    if page.channel and (generic or not candidate.channel_id):
        candidate.channel_id = page.channel_url or page.channel


