"""Which extractor of the installed yt-dlp reads a watchlist entry, checked before anything is fetched.

    search  "<key>[N|all]:<query>"   the key must be a search key of the installed yt-dlp (``ytsearch``, ``scsearch``,
                                      ``nicosearchdate``...); a removed one (``ytsearchdate`` is gone since 2026.10)
                                      is refused with what to write instead
    feed / page / url   http(s)      the first site extractor whose pattern claims the URL, else the generic page
                                      reader (RSS feeds and news pages are read by it), if the settings allow it

Extractor names are yt-dlp's ``IE_NAME`` (``youtube:search``, ``youtube:tab``, ``generic``). The extractor list
is yt-dlp's own (``gen_extractor_classes``), read once per process; nothing here touches the network.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import quote_plus

__all__ = ["EntryCheck", "check_entry", "search_keys", "ytdlp_version", "suggest_search", "YOUTUBE_BY_DATE"]

#: YouTube's results page sorted by upload date (the page's own filter, kept by yt-dlp's youtube:search_url)
YOUTUBE_BY_DATE = "https://www.youtube.com/results?search_query={query}&sp=CAI%253D"
GENERIC = "generic"
#: search keys yt-dlp once had, and what replaces each (``{n}`` the count, ``{query}`` the query, ``{url_query}``
#: the query for a URL)
REMOVED_SEARCH_KEYS = {
    "ytsearchdate": ("write 'ytsearch{n}:{query}' (relevance order), or, for the newest first, an entry "
                     "'kind: page' with target '" + YOUTUBE_BY_DATE.replace("{query}", "{url_query}") +
                     "' (YouTube's results sorted by upload date)"),
}


def ytdlp_version() -> str | None:
    """The installed yt-dlp's version, None where it is not installed."""
    try:
        from yt_dlp.version import __version__
    except ImportError:
        return None
    return str(__version__)


@lru_cache(maxsize=1)
def _classes() -> tuple[Any, ...]:
    from yt_dlp.extractor import gen_extractor_classes

    return tuple(gen_extractor_classes())


@lru_cache(maxsize=1)
def search_keys() -> dict[str, str]:
    """{search key: extractor name} of the installed yt-dlp (``ytsearch`` → ``youtube:search``)."""
    out = {}
    for ie in _classes():
        key = getattr(ie, "SEARCH_KEY", None)  # a class property of search extractors, lazy or loaded
        if isinstance(key, str) and key:
            out[key] = str(ie.IE_NAME)
    return out


def _allowed(name: str, allowed: Sequence[str]) -> bool:
    """Whether an extractor is allowed by the settings' ``ytdlp_extractors`` (empty, ``all``, ``default``: any)."""
    wanted = [a.strip().lower() for a in allowed if a.strip()]
    if not wanted or {"all", "default"} & set(wanted):
        return True
    name = name.lower()
    return any(name == a or re.fullmatch(a, name) for a in wanted)


@dataclass(frozen=True)
class EntryCheck:
    """The outcome for one entry: the extractor that reads it, or the problem in words."""

    extractor: str | None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


_SEARCH = re.compile(r"^(?P<key>[a-z]+?)(?P<count>\d+|all)?:(?P<query>.*)$", re.DOTALL)


def suggest_search(key: str, count: str | None, query: str) -> str | None:
    """What to write instead of a search key the installed yt-dlp lacks, or None when nothing obvious."""
    n, query = count or "", query.strip()
    if key in REMOVED_SEARCH_KEYS:
        return REMOVED_SEARCH_KEYS[key].format(n=n, query=query, url_query=quote_plus(query))
    keys = search_keys()
    if key.endswith("date") and key[:-4] in keys:
        return f"write '{key[:-4]}{n}:{query}' (the key without 'date')"
    close = [k for k in keys if k.startswith(key[:2])]
    return f"search keys yt-dlp {ytdlp_version()} has: {', '.join(sorted(close or keys))}"


def check_entry(kind: str, target: str, allowed: Sequence[str] = ()) -> EntryCheck:
    """Which extractor of the installed yt-dlp reads ``target``, or why none does."""
    version = ytdlp_version()
    if version is None:
        return EntryCheck(None, "yt-dlp is not installed here: entries cannot be checked")
    if kind == "search":
        match = _SEARCH.match(target)
        if not match or not match.group("query").strip():
            return EntryCheck(None, "a search target is a yt-dlp search key and a query, e.g. "
                                    "'ytsearch50:election fraud'")
        key, count, query = match.group("key"), match.group("count"), match.group("query")
        if key in ("http", "https"):
            return EntryCheck(None, "a URL is not a search key: use kind 'page' for a results URL")
        name = search_keys().get(key)
        if name is None:
            hint = suggest_search(key, count, query)
            return EntryCheck(None, f"yt-dlp {version} has no search key {key!r}" + (f": {hint}" if hint else ""))
        if not _allowed(name, allowed):
            return EntryCheck(None, f"its extractor {name} is not among VIGIL_YTDLP_EXTRACTORS")
        return EntryCheck(name)
    for ie in _classes():
        name = str(ie.IE_NAME)
        if name.lower() == GENERIC or not _allowed(name, allowed):
            continue
        if ie.suitable(target):
            return EntryCheck(name)
    if _allowed(GENERIC, allowed):
        return EntryCheck(GENERIC)
    return EntryCheck(None, f"no extractor among VIGIL_YTDLP_EXTRACTORS ({', '.join(allowed)}) reads this URL")


def check_entries(entries: Iterable[Any], allowed: Sequence[str] = ()) -> list[tuple[Any, EntryCheck]]:
    """Each entry (anything with ``kind`` and ``target``) with its check."""
    return [(entry, check_entry(entry.kind, entry.target, allowed)) for entry in entries]
