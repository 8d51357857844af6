"""Watchlists: what the crawler looks at, as YAML validated with pydantic.

    entries:
      - kind: search                      # search | feed | page | url
        target: "ytsearch50:election fraud"   # a search key of the installed yt-dlp
        limit: 50
        language: en
        tags: [us, election-2026]
        paused: false                      # a paused entry is kept but not crawled

A problem is a WatchlistError naming the file, the entry (its index and target) and the line it starts on. Loading
also checks every entry against the installed yt-dlp (`_extractors.check_entry`): a search key it lacks, or a URL no
allowed extractor reads, is refused with what to write instead.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .._exceptions import WatchlistError
from .._yaml import BoundedSafeLoader, YamlTooLarge, load_yaml, short

__all__ = ["EntryKind", "WatchlistEntry", "Watchlist", "load_watchlist", "parse_watchlist"]

EntryKind = Literal["search", "feed", "page", "url"]
#: yt-dlp search keys with a count: ytsearch50, ytsearchall, scsearch10, nicosearchdate5, prxseries3, ...
SEARCH_PREFIX = re.compile(r"^(?P<key>[a-z]+?)(?P<count>\d+|all)?:(?P<query>.+)$", re.DOTALL)
LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
MAX_LIMIT = 1000
DEFAULT_MAX_ENTRIES = 1000  # VIGIL_WATCHLIST_MAX_ENTRIES


class WatchlistEntry(BaseModel):
    """One thing to watch: a platform search, a channel/playlist/RSS feed, a hashtag/page, or a single video URL."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: EntryKind
    target: str = Field(min_length=1, max_length=2048)
    limit: int | None = Field(None, ge=1, le=MAX_LIMIT, description="videos taken from this entry per run")
    language: str | None = Field(None, description="ISO 639 code of the entry's videos (e.g. en, de, pt-BR)")
    tags: list[str] = Field(default_factory=list)
    name: str | None = Field(None, max_length=200, description="a label for dashboards; defaults to the target")
    paused: bool = Field(False, description="kept, but not crawled until resumed")
    line: int | None = Field(None, exclude=True, description="line of the YAML file the entry starts on")

    @field_validator("target")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @field_validator("language")
    @classmethod
    def _language(cls, value: str | None) -> str | None:
        if value is not None and not LANGUAGE.match(value):
            raise ValueError(f"language must be an ISO 639 code such as 'en' or 'pt-BR', not {value!r}")
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        return [tag.strip() for tag in value if tag.strip()]

    @model_validator(mode="after")
    def _target_fits_kind(self) -> WatchlistEntry:
        if self.kind == "search":
            match = SEARCH_PREFIX.match(self.target)
            if not match:
                raise ValueError("a search target is a yt-dlp search key and a query, e.g. "
                                 f"'ytsearch50:election fraud', not {self.target!r}")
            if not match.group("query").strip():
                raise ValueError("the search query is empty")
        else:
            scheme = urlsplit(self.target).scheme.lower()
            if scheme not in ("http", "https"):
                # hostile or unsupported schemes are refused here already; the crawler checks again before fetching
                raise ValueError(f"a {self.kind} target must be an http(s) URL, not {self.target!r}")
            if not urlsplit(self.target).hostname:
                raise ValueError(f"{self.target!r} has no host")
        return self

    @property
    def label(self) -> str:
        return self.name or self.target

    def effective_limit(self, default: int) -> int:
        """The entry's limit, else the count of its search prefix, else ``default``."""
        if self.limit is not None:
            return self.limit
        if self.kind == "search":
            match = SEARCH_PREFIX.match(self.target)
            count = match.group("count") if match else None
            if count and count.isdigit():
                return int(count)
        return default if self.kind != "url" else 1

    def search_query(self, limit: int) -> str:
        """The yt-dlp search URL with the count set to ``limit`` (``ytsearch50:q`` with limit 10 → ``ytsearch10:q``)."""
        match = SEARCH_PREFIX.match(self.target)
        assert match is not None and self.kind == "search"
        return f"{match.group('key')}{limit}:{match.group('query').strip()}"


class Watchlist(BaseModel):
    """A named list of entries (the name is the file's stem unless the file sets ``name:``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "watchlist"
    entries: list[WatchlistEntry] = Field(min_length=1)


class _LineLoader(BoundedSafeLoader):
    """Records the line each mapping starts on (1-based) under the key ``__line__``; aliases are bounded
    (`pipeline._yaml`: a YAML bomb is refused while it is read)."""


def _mapping_with_line(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_with_line)


def _describe(entry: Any, index: int) -> str:
    if isinstance(entry, dict):
        target = entry.get("target")
        where = f" (line {entry['__line__']})" if "__line__" in entry else ""
        return f"entry {index + 1}{where}" + (f" {short(target)}" if target else "")
    return f"entry {index + 1}"


def parse_watchlist(text: str, *, source: str = "<watchlist>", name: str | None = None,
                    extractors: Sequence[str] | None = (), max_entries: int = DEFAULT_MAX_ENTRIES) -> Watchlist:
    """Parse and validate watchlist YAML; every problem is listed in one WatchlistError.

    ``extractors``: the allowed yt-dlp extractors (the settings' ``ytdlp_extractors``, empty = all); each entry must
    be read by one of them. None skips that check (yt-dlp not installed, or a caller that checks itself). More than
    ``max_entries`` entries (VIGIL_WATCHLIST_MAX_ENTRIES) refuse the whole watchlist."""
    try:
        data = load_yaml(text, loader=_LineLoader, what=source)
    except YamlTooLarge as exc:
        raise WatchlistError(f"{source}: {exc}", path=source) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise WatchlistError(f"{source}: not valid YAML{f' at line {line}' if line else ''}: "
                             f"{getattr(exc, 'problem', None) or exc}", path=source, line=line) from exc
    if not isinstance(data, dict) or "entries" not in data:
        raise WatchlistError(f"{source}: expected a mapping with an 'entries:' list", path=source)
    data.pop("__line__", None)
    entries = data.get("entries")
    if not isinstance(entries, list) or not entries:
        raise WatchlistError(f"{source}: 'entries' must be a non-empty list", path=source)
    if len(entries) > max_entries:
        raise WatchlistError(f"{source}: {len(entries):,} entries, more than the {max_entries:,} a watchlist may have "
                             f"(VIGIL_WATCHLIST_MAX_ENTRIES): split it or raise the limit", path=source)
    problems: list[str] = []
    first_line: int | None = None
    parsed: list[WatchlistEntry] = []
    for index, raw in enumerate(entries):
        if not isinstance(raw, dict):
            problems.append(f"{_describe(raw, index)}: expected a mapping with kind and target, got {short(raw)}")
            continue
        line = raw.pop("__line__", None)
        try:
            parsed.append(WatchlistEntry(**raw, line=line))
        except ValidationError as exc:
            raw["__line__"] = line
            first_line = first_line or line
            for error in exc.errors():
                field = ".".join(str(part) for part in error["loc"]) or "entry"
                message = error["msg"].removeprefix("Value error, ")
                problems.append(f"{_describe(raw, index)}: {field}: {message}")
        except TypeError as exc:  # e.g. a key that is not a string
            problems.append(f"{_describe(raw, index)}: {exc}")
    if extractors is not None and parsed:
        from ._extractors import check_entry

        for index, entry in enumerate(parsed):
            found = check_entry(entry.kind, entry.target, extractors)
            if not found.ok:
                first_line = first_line or entry.line
                where = f" (line {entry.line})" if entry.line else ""
                problems.append(f"entry {index + 1}{where} {short(entry.target)}: {found.problem}")
    unknown = sorted(set(data) - {"entries", "name"})
    if unknown:
        problems.insert(0, f"unknown top-level key(s): {', '.join(map(str, unknown))}")
    if problems:
        raise WatchlistError(f"{source}: invalid watchlist: " + "; ".join(problems), path=source, line=first_line)
    return Watchlist(name=str(data.get("name") or name or "watchlist"), entries=parsed)


def load_watchlist(path: str | Path, *, extractors: Sequence[str] | None = (),
                   max_entries: int = DEFAULT_MAX_ENTRIES) -> Watchlist:
    """Read a watchlist file; WatchlistError if it is missing or invalid (``extractors``: see `parse_watchlist`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise WatchlistError(f"cannot read watchlist {path}: {exc.strerror or exc}", path=str(path)) from exc
    return parse_watchlist(text, source=str(path), name=path.stem, extractors=extractors, max_entries=max_entries)
