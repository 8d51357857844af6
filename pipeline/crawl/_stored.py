"""Watchlists as data: one document per watchlist in ``<prefix>-watchlists``, edited in the console, imported from
and exported to the YAML format, read by the crawl DAG and `vigil crawl`.

    console / `vigil watchlist import` ─▶ WatchlistStore.save (validated, every entry checked against yt-dlp)
                                                   │
    crawl_trending / `vigil crawl` ◀── active_entries (entries not paused, of every stored watchlist)

A stored entry is a `WatchlistEntry` (the YAML fields) plus its ``id`` (stable per watchlist, kind and target: its
health history in ``<prefix>-watchlist-runs`` is kept under it). Saving refuses what loading a file refuses.
"""
from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import yaml

from .._elasticsearch import es_errors, make_es_client
from .._exceptions import WatchlistError
from .._settings import Settings
from ._extractors import check_entry
from ._health import entry_id, last_runs
from ._watchlist import Watchlist, WatchlistEntry, parse_watchlist

__all__ = ["WatchlistStore", "watchlist_yaml", "entries_from_store"]

logger = logging.getLogger(__name__)

NAME_CHARS = 100


def watchlist_yaml(watchlist: Watchlist) -> str:
    """The YAML format of a watchlist (what `parse_watchlist` reads back)."""
    entries = []
    for entry in watchlist.entries:
        data = entry.model_dump(mode="json", exclude_defaults=True)
        entries.append({k: data[k] for k in ("kind", "target", "name", "limit", "language", "tags", "paused")
                        if k in data})
    return yaml.safe_dump({"name": watchlist.name, "entries": entries}, sort_keys=False, allow_unicode=True,
                          width=120)


class WatchlistStore:
    """The stored watchlists (``es`` passed in, or made from the settings and closed by `close`)."""

    def __init__(self, settings: Settings, *, es: Any = None) -> None:
        self.settings = settings
        self._own = es is None
        self.es = es or make_es_client(settings)
        self.index = settings.index("watchlists")

    def close(self) -> None:
        if self._own:
            self.es.close()

    def __enter__(self) -> WatchlistStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ reading
    def _docs(self) -> list[dict[str, Any]]:
        with es_errors(self.settings):
            response = self.es.options(ignore_status=404).search(index=self.index, size=1000, sort=[{"name": "asc"}],
                                                                 query={"match_all": {}})
        if response.meta.status == 404:
            return []
        return [hit["_source"] for hit in response["hits"]["hits"]]

    @staticmethod
    def _watchlist(doc: dict[str, Any]) -> Watchlist:
        entries = [WatchlistEntry(**{k: v for k, v in e.items() if k != "id"}) for e in doc.get("entries") or []]
        return Watchlist.model_construct(name=doc["name"], entries=entries)

    def all(self) -> list[Watchlist]:
        """Every stored watchlist, by name."""
        return [self._watchlist(doc) for doc in self._docs()]

    def get(self, name: str) -> Watchlist | None:
        with es_errors(self.settings):
            found = self.es.options(ignore_status=404).get(index=self.index, id=name)
        return self._watchlist(found["_source"]) if found.meta.status == 200 and found.get("found") else None

    def active_entries(self) -> list[dict[str, Any]]:
        """The entries the crawl reads (each with its watchlist's name): every entry that is not paused."""
        return [{"watchlist": w.name, **e.model_dump(mode="json")} for w in self.all() for e in w.entries
                if not e.paused]

    def overview(self) -> list[dict[str, Any]]:
        """Each watchlist with its entries, and each entry with its id, last runs and when it last worked."""
        health = last_runs(self.es, self.settings, per_entry=5)
        out = []
        for watchlist in self.all():
            rows = []
            for entry in watchlist.entries:
                eid = entry_id(watchlist.name, entry.kind, entry.target)
                seen = health.get(eid) or {"runs": [], "last_worked": None}
                rows.append({"id": eid, "entry": entry, **seen})
            out.append({"name": watchlist.name, "entries": rows})
        return out

    # ------------------------------------------------------------ writing
    def _check(self, watchlist: Watchlist) -> None:
        problems = []
        for index, entry in enumerate(watchlist.entries, 1):
            found = check_entry(entry.kind, entry.target, self.settings.ytdlp_extractors)
            if not found.ok:
                problems.append(f"entry {index} {entry.target!r}: {found.problem}")
        if problems:
            raise WatchlistError(f"watchlist {watchlist.name!r}: " + "; ".join(problems))

    def save(self, watchlist: Watchlist, *, by: str = "vigil") -> Watchlist:
        """Store (create or replace) a watchlist after checking every entry; WatchlistError names the problems."""
        name = watchlist.name.strip()
        if not name or len(name) > NAME_CHARS or any(c in name for c in "/\\\n\r\t"):
            raise WatchlistError(f"a watchlist name is 1 to {NAME_CHARS} characters without slashes or line breaks")
        targets = [(e.kind, e.target) for e in watchlist.entries]
        if len(set(targets)) != len(targets):
            raise WatchlistError(f"watchlist {name!r} lists the same target twice")
        watchlist = Watchlist(name=name, entries=[e.model_copy(update={"line": None}) for e in watchlist.entries])
        self._check(watchlist)
        doc = {"name": name, "@timestamp": datetime.now(UTC).isoformat(), "updated_by": by,
               "entries": [{"id": entry_id(name, e.kind, e.target), **e.model_dump(mode="json")}
                           for e in watchlist.entries]}
        with es_errors(self.settings):
            self.es.index(index=self.index, id=name, document=doc, refresh="wait_for")
        logger.info("watchlist %s saved by %s (%d entries)", name, by, len(watchlist.entries))
        return watchlist

    def import_yaml(self, text: str, *, by: str = "vigil", name: str | None = None,
                    default_name: str | None = None) -> Watchlist:
        """Parse YAML (the file format, checked against yt-dlp) and store it under ``name``, else the name it sets,
        else ``default_name``."""
        parsed = parse_watchlist(text, source="imported watchlist", name=default_name,
                                 extractors=self.settings.ytdlp_extractors)
        if name:
            parsed = Watchlist(name=name, entries=parsed.entries)
        return self.save(parsed, by=by)

    def delete(self, name: str) -> bool:
        with es_errors(self.settings):
            response = self.es.options(ignore_status=404).delete(index=self.index, id=name, refresh="wait_for")
        return response.meta.status == 200

    def add_entry(self, name: str, entry: WatchlistEntry, *, by: str = "vigil") -> Watchlist:
        """Add an entry to a watchlist (made when it does not exist yet)."""
        current = self.get(name)
        entries = list(current.entries) if current else []
        return self.save(Watchlist.model_construct(name=name, entries=[*entries, entry]), by=by)

    def update_entry(self, name: str, eid: str, *, by: str = "vigil", remove: bool = False,
                     **changes: Any) -> Watchlist | None:
        """Change (``paused``, ``limit``, ``tags``, ``language``, ``name``) or remove one entry; None when that
        leaves the watchlist empty (it is deleted)."""
        current = self.get(name)
        if current is None:
            raise WatchlistError(f"no watchlist {name!r}")
        entries: list[WatchlistEntry] = []
        found = False
        for entry in current.entries:
            if entry_id(name, entry.kind, entry.target) != eid:
                entries.append(entry)
                continue
            found = True
            if not remove:
                data = {**entry.model_dump(), **changes}
                data.pop("line", None)
                entries.append(WatchlistEntry(**data))
        if not found:
            raise WatchlistError(f"watchlist {name!r} has no such entry")
        if not entries:
            self.delete(name)
            return None
        return self.save(Watchlist.model_construct(name=name, entries=entries), by=by)


def entries_from_store(settings: Settings, *, es: Any = None) -> tuple[bool, list[dict[str, Any]]]:
    """(whether any watchlist is stored, the active entries)."""
    with WatchlistStore(settings, es=es) as store:
        docs = store.all()
        return bool(docs), [{"watchlist": w.name, **e.model_dump(mode="json")} for w in docs for e in w.entries
                            if not e.paused]
