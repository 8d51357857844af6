"""Platform host families: which hosts belong to one platform, so work that reaches a platform (crawl discovery and
downloads, spread re-polls) can share one Airflow pool per family and two DAGs never hammer a platform at once.

    host_family("https://m.youtube.com/watch?v=x") == "youtube"; pool_name("youtube") == "vigil-platform-youtube"

Hosts of no listed family are ``other``. Pure functions over constants: DAG files import this at parse time.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

__all__ = ["PLATFORM_FAMILIES", "FAMILIES", "OTHER", "host_family", "entry_family", "pool_name", "POOL_SLOTS",
           "by_family", "gather"]

#: family -> registrable domains of its sites, short links and media CDNs
PLATFORM_FAMILIES: dict[str, tuple[str, ...]] = {
    "youtube": ("youtube.com", "youtu.be", "youtube-nocookie.com", "googlevideo.com", "ytimg.com"),
    "tiktok": ("tiktok.com", "tiktokcdn.com", "tiktokv.com"),
    "x": ("x.com", "twitter.com", "twimg.com", "t.co"),
    "meta": ("facebook.com", "fb.watch", "fbcdn.net", "instagram.com", "cdninstagram.com", "threads.net"),
    "telegram": ("t.me", "telegram.org", "telegram.me"),
}
OTHER = "other"
FAMILIES: tuple[str, ...] = (*PLATFORM_FAMILIES, OTHER)
#: slots of each family's pool (infra/airflow/pools.json): at most this many tasks on one platform at once
POOL_SLOTS = 2
#: yt-dlp search keys -> family (the installed yt-dlp's keys: `pipeline.crawl._extractors.search_keys`)
_SEARCH_PREFIXES = {"ytsearch": "youtube"}


def host_family(url_or_host: str) -> str:
    """The family of a URL's host (or of a bare host name); ``other`` when it belongs to none."""
    host = (urlsplit(url_or_host).hostname if "//" in url_or_host else url_or_host) or ""
    host = host.lower().rstrip(".")
    for family, domains in PLATFORM_FAMILIES.items():
        if any(host == d or host.endswith("." + d) for d in domains):
            return family
    return OTHER


def entry_family(entry: Mapping[str, Any]) -> str:
    """The family a watchlist entry reaches: its target's host, or the platform of a yt-dlp search prefix."""
    target = str(entry.get("target") or "")
    if entry.get("kind") == "search":
        prefix = target.split(":", 1)[0].rstrip("0123456789").lower()
        prefix = prefix.removesuffix("all")
        return _SEARCH_PREFIXES.get(prefix, OTHER)
    return host_family(target)


def pool_name(family: str) -> str:
    """The Airflow pool of one family."""
    return f"vigil-platform-{family}"


def by_family(items: Iterable[Any], family_of: Callable[[Any], str]) -> dict[str, list[Any]]:
    """Items grouped by family, every family present (empty lists included), in `FAMILIES` order."""
    out: dict[str, list[Any]] = {family: [] for family in FAMILIES}
    for item in items:
        out[family_of(item)].append(item)
    return out


def gather(per_family: Iterable[Sequence[Any] | None]) -> list[Any]:
    """The results of the per-family mapped tasks as one list, in `FAMILIES` order (a family whose task did not run:
    None or empty).

    Each family's results are read whole, as a slice: one request for Airflow's lazy XCom sequence. Iterating one
    instead reads item by item until Airflow answers "not found", which it logs as an error on every run.
    """
    out: list[Any] = []
    for results in per_family:
        if results:
            out.extend(results[:])
    return out
