"""The console's Watchlists page (admins only; analysts get 403): the stored watchlists with each entry's last runs,
forms to add an entry (a channel, a hashtag page, a search, one video), pause, resume, remove, change limit and tags,
import YAML and export it::

    GET  /watchlists                      the page
    POST /watchlists/add                  add an entry (the watchlist is made when new)
    POST /watchlists/entry                action = pause | resume | remove | save (limit, tags)
    POST /watchlists/import               YAML file or text: replaces the watchlist of that name
    GET  /watchlists/export?name=N        the YAML format
    GET  /api/watchlists                  the same data as JSON

Every save checks every entry against the installed yt-dlp (`pipeline.crawl._stored`); a refusal is shown on the
page with what to write instead.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import ValidationError

from .._exceptions import WatchlistError
from .._settings import Settings

__all__ = ["add_watchlist_routes"]

MAX_IMPORT_BYTES = 256 * 1024


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _tags(value: str) -> list[str]:
    return [t.strip() for t in value.split(",") if t.strip()]


def _validation_message(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'entry'}: {e['msg'].removeprefix('Value error, ')}"
                     for e in exc.errors())


def add_watchlist_routes(app: FastAPI, *, settings: Settings, es: Any, require: Callable[..., Any],
                         page: Callable[..., HTMLResponse], check_csrf: Callable[[Request, str | None], None]) -> None:
    """Add the Watchlists page and its forms to the console ``app`` (the console's own auth helpers passed in)."""
    from ..crawl._extractors import ytdlp_version
    from ..crawl._stored import WatchlistStore, watchlist_yaml
    from ..crawl._watchlist import WatchlistEntry

    def store() -> WatchlistStore:
        return WatchlistStore(settings, es=es)

    def show(request: Request, *, status: int = 200, error: str | None = None) -> HTMLResponse:
        return page(request, "watchlists.html", status=status, watchlists=store().overview(), error=error,
                    message=request.query_params.get("message"), ytdlp=ytdlp_version(),
                    file=str(settings.watchlist) if settings.watchlist else None)

    def done(message: str) -> RedirectResponse:
        return RedirectResponse("/watchlists?" + urlencode({"message": message}), status_code=303)

    async def admin_form(request: Request) -> tuple[Any, Any]:
        user = require(request, admin=True)
        form = await request.form()
        check_csrf(request, _text(form.get("csrf_token")))
        return user, form

    @app.get("/watchlists")
    def watchlists_page(request: Request) -> HTMLResponse:
        require(request, admin=True)
        return show(request)

    @app.get("/api/watchlists")
    def api_watchlists(request: Request) -> JSONResponse:
        require(request, admin=True)
        out = [{"name": w["name"], "entries": [
            {"id": row["id"], **row["entry"].model_dump(mode="json"), "runs": row["runs"],
             "last_worked": row["last_worked"]} for row in w["entries"]]} for w in store().overview()]
        return JSONResponse({"watchlists": out})

    @app.post("/watchlists/add")
    async def add_entry(request: Request) -> Response:
        user, form = await admin_form(request)
        limit = _text(form.get("limit")).strip()
        try:
            entry = WatchlistEntry(kind=_text(form.get("kind")), target=_text(form.get("target")),
                                   name=_text(form.get("name")).strip() or None, limit=int(limit) if limit else None,
                                   language=_text(form.get("language")).strip() or None,
                                   tags=_tags(_text(form.get("tags"))))
            store().add_entry(_text(form.get("watchlist")).strip(), entry, by=user.name)
        except ValidationError as exc:
            return show(request, status=400, error=f"not added: {_validation_message(exc)}")
        except (WatchlistError, ValueError) as exc:
            return show(request, status=400, error=f"not added: {exc}")
        return done(f"added {entry.label} to {_text(form.get('watchlist')).strip()}")

    @app.post("/watchlists/entry")
    async def change_entry(request: Request) -> Response:
        user, form = await admin_form(request)
        name, eid, action = (_text(form.get(k)) for k in ("watchlist", "entry_id", "action"))
        changes: dict[str, Any] = {}
        if action in ("pause", "resume"):
            changes["paused"] = action == "pause"
        elif action == "save":
            limit = _text(form.get("limit")).strip()
            changes.update(limit=int(limit) if limit.isdigit() else None, tags=_tags(_text(form.get("tags"))))
        elif action != "remove":
            return show(request, status=400, error=f"unknown action {action!r}")
        try:
            store().update_entry(name, eid, by=user.name, remove=action == "remove", **changes)
        except ValidationError as exc:
            return show(request, status=400, error=f"not changed: {_validation_message(exc)}")
        except WatchlistError as exc:
            return show(request, status=400, error=f"not changed: {exc}")
        verb = {"pause": "paused", "resume": "resumed", "remove": "removed", "save": "saved"}[action]
        return done(f"{verb} an entry of {name}")

    @app.post("/watchlists/import")
    async def import_yaml(request: Request) -> Response:
        user, form = await admin_form(request)
        upload = form.get("file")
        text = _text(form.get("text"))
        if upload is not None and not isinstance(upload, str) and upload.filename:
            raw = await upload.read(MAX_IMPORT_BYTES + 1)
            if len(raw) > MAX_IMPORT_BYTES:
                return show(request, status=400, error=f"not imported: larger than {MAX_IMPORT_BYTES // 1024} KB")
            text = raw.decode("utf-8", "replace")
        if not text.strip():
            return show(request, status=400, error="not imported: choose a YAML file or paste its text")
        try:
            saved = store().import_yaml(text, by=user.name)
        except WatchlistError as exc:
            return show(request, status=400, error=f"not imported: {exc}")
        return done(f"imported {saved.name} ({len(saved.entries)} entries)")

    @app.get("/watchlists/export")
    def export_yaml(request: Request, name: str) -> Response:
        require(request, admin=True)
        watchlist = store().get(name)
        if watchlist is None:
            return show(request, status=404, error=f"no watchlist {name!r}")
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "watchlist"
        return Response(watchlist_yaml(watchlist), media_type="application/yaml",
                        headers={"Content-Disposition": f'attachment; filename="{safe}.yaml"'})
