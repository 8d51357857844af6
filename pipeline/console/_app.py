"""The console's web application (FastAPI, Jinja2 templates rendered on the server, every asset served from
``static/``; no CDN). Pages for people (session cookie), the same data as JSON under ``/api`` for scripts (bearer
token, or the page's session for reads)::

    GET  /healthz                       no login: is the console up, can it reach Elasticsearch
    GET  /login  POST /login  POST /logout
    GET  /                              the queue            GET /api/queue, GET /api/counters
    GET  /videos/{uid}                  one video            GET /api/videos/{uid}
    POST /verdicts                      record a verdict     POST /api/verdicts
    GET  /media/{uid}                   the video file (HTTP range requests)
    GET  /evidence/{detection_id}/{n}   a face crop named in the detection's evidence_uris
    GET  /alerts                        alerts               GET /api/alerts
    GET  /admin  POST /admin/users  POST /admin/tokens/revoke   (admins only)   GET /api/admin/users
    GET  /watchlists  POST /watchlists/add|entry|import  GET /watchlists/export   (admins only; `_watchlists`)
    GET  /submit  POST /submit          "Check a video"      POST /api/submissions   (any user; `_submissions`)

Sessions live in the console's own index (`_sessions`): logout, a new password or role and "revoke all" end them at
once. Page numbers and byte ranges are checked before any arithmetic; a bad one is a 400 or 416, never a 500.
"""
from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from elasticsearch import Elasticsearch
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from .._elasticsearch import make_es_client
from .._exceptions import ServiceError
from .._media_store import MediaStore
from .._settings import Settings
from ._accounts import Accounts, User, make_store_client
from ._charts import flagged_windows, spread_svg, timeline_svg
from ._exceptions import ConsoleError, LoginThrottled
from ._media import locate_media, parse_range, read_small, stream
from ._queries import ANALYST_VERDICTS, FLAG_THRESHOLD, MAX_WINDOW, QueueFilters, QueueIndex, effective_score
from ._security import LoginThrottle, add_security_headers, same_origin
from ._sessions import LOGIN_COOKIE, LOGIN_COOKIE_MAX_AGE_S, SESSION_COOKIE, Session, Sessions, cookie_options
from ._verdicts import MAX_NOTE, record_verdict
from ._submissions import add_submission_routes
from ._watchlists import add_watchlist_routes
from .._time import parse_moment

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
ALERTS_PAGE_SIZE = 50
ADDRESS_FACTOR = 4  # failed logins allowed per client address = this × VIGIL_CONSOLE_LOGIN_MAX_FAILURES
_FACE = re.compile(r"/faces/(\d+)\.(?:jpe?g|png|webp)$")


class _Denied(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _safe_url(value: Any) -> str | None:
    """An http(s) URL for an href, or None (no javascript: or data: links from platform data)."""
    text = str(value or "")
    return text if urlsplit(text).scheme in ("http", "https") else None


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return "—" if value is None else str(value)
    return f"{value:,.{digits}f}"


def _when(value: Any) -> str:
    if not value:
        return "—"
    try:
        moment = parse_moment(value)
    except ValueError:
        return str(value)
    assert moment is not None
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _templates() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(fmt=_fmt, when=_when, safe_url=_safe_url)
    env.globals.update(FLAG_THRESHOLD=FLAG_THRESHOLD, ANALYST_VERDICTS=ANALYST_VERDICTS)
    return env


def face_crops(detection: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """[{index, t_s}] of the face-crop keyframes among a detection's evidence_uris."""
    out = []
    for i, uri in enumerate((detection or {}).get("evidence_uris") or []):
        match = _FACE.search(str(uri))
        if match:
            out.append({"index": i, "t_s": int(match.group(1)) / 1000})
    return sorted(out, key=lambda c: c["t_s"])


def detector_rows(detection: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Each detector's score, rank, offsets and reasons, for the page and the API."""
    rows = []
    for name, out in sorted(((detection or {}).get("detectors") or {}).items()):
        evidence = out.get("evidence") or {}
        reasons = evidence.get("reasons") or ([evidence["reason"]] if evidence.get("reason") else [])
        offsets = {k: v for k, v in evidence.items() if "offset" in k and isinstance(v, int | float)}
        facts = {k: v for k, v in evidence.items() if k not in offsets and k not in ("reasons", "reason")
                 and (isinstance(v, int | float | bool) or (isinstance(v, str) and len(v) <= 120))}
        rows.append({"name": name, "version": out.get("version"), "applicable": out.get("applicable"),
                     "score": out.get("score"), "rank": out.get("rank"), "error": out.get("error"),
                     "reasons": [str(r) for r in reasons][:10], "offsets": offsets, "facts": facts,
                     "keyframes_s": evidence.get("keyframe_times_s") or evidence.get("keyframes_s") or [],
                     "timeline": out.get("timeline") or [],
                     "flagged": flagged_windows(out.get("timeline") or [])})
    return rows


def video_payload(index: QueueIndex, video: Mapping[str, Any]) -> dict[str, Any]:
    """Everything about one video (what GET /api/videos/{uid} returns and the page shows)."""
    detection = index.detection(video)
    cluster_id = (video.get("cluster") or {}).get("id")
    return {
        "video": dict(video),
        "effective_score": effective_score(video),
        "detection": detection,
        "detectors": detector_rows(detection),
        "segments": (detection or {}).get("segments") or [],
        "fused_timeline": ((detection or {}).get("fused") or {}).get("timeline") or [],
        "face_crops": face_crops(detection),
        "spread_history": index.spread_history(str(video["video_uid"])),
        "cluster": index.cluster_members(cluster_id) if cluster_id else [],
        "alerts": index.video_alerts(str(video["video_uid"])),
        "verdicts": index.video_verdicts(str(video["video_uid"])),
    }


def create_app(settings: Settings, *, es: Elasticsearch | None = None,
               store_es: Elasticsearch | None = None) -> FastAPI:
    """The console for ``settings``; ``es`` (the pipeline's indices) and ``store_es`` (the console's own index, its
    own credentials) may be passed in (tests), else they are made from the settings."""
    store_es = store_es or (es if es is not None else make_store_client(settings))
    es = es or make_es_client(settings)
    accounts = Accounts(store_es, settings)
    sessions = Sessions(accounts, accounts.session_secret())
    index = QueueIndex(es, settings)
    store = MediaStore.from_settings(settings)
    # per account from one address, and per client address with a looser limit (several people may share one)
    throttles = (LoginThrottle(settings.console_login_max_failures, settings.console_login_lockout_s),
                 LoginThrottle(settings.console_login_max_failures * ADDRESS_FACTOR, settings.console_login_lockout_s))
    templates = _templates()
    app = FastAPI(title="Vigil console", docs_url=None, redoc_url=None, openapi_url=None)
    app.middleware("http")(add_security_headers)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.state.settings, app.state.es, app.state.accounts = settings, es, accounts

    # ------------------------------------------------------------ who is asking
    def bearer(request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        return value.strip() if scheme.lower() == "bearer" and value.strip() else None

    def current(request: Request) -> tuple[Session, User] | None:
        """The request's live session and its user (looked up once per request)."""
        if not hasattr(request.state, "session"):
            request.state.session = sessions.load(request.cookies.get(SESSION_COOKIE))
        return request.state.session  # type: ignore[no-any-return]

    def who(request: Request) -> User | None:
        token = bearer(request)
        if token is not None:
            return accounts.user_for_token(token)
        found = current(request)
        return found[1] if found else None

    def require(request: Request, *, admin: bool = False) -> User:
        user = who(request)
        if user is None:
            raise _Denied(401, "log in first" if bearer(request) is None else "invalid or revoked token")
        if admin and not user.is_admin:
            raise _Denied(403, "this needs the admin role")
        return user

    def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        user = who(request)
        found = current(request) if bearer(request) is None else None
        new_login_cookie = None
        if found:
            csrf = found[0].csrf
        else:  # before login: the form's token goes with a signed nonce cookie
            csrf = sessions.login_token(request.cookies.get(LOGIN_COOKIE)) or ""
            if not csrf:
                new_login_cookie, csrf = sessions.login_nonce()
        html = templates.get_template(name).render(request=request, user=user, csrf=csrf, **context)
        response = HTMLResponse(html, status_code=status)
        if new_login_cookie:
            response.set_cookie(LOGIN_COOKIE, new_login_cookie, **cookie_options(settings, LOGIN_COOKIE_MAX_AGE_S))
        return response

    @app.exception_handler(_Denied)
    async def _denied(request: Request, exc: _Denied) -> Response:
        if request.url.path.startswith("/api/") or request.url.path.startswith("/media/"):
            headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
            return JSONResponse({"error": exc.message}, status_code=exc.status, headers=headers)
        if exc.status == 401:
            return RedirectResponse("/login?" + urlencode({"next": request.url.path}), status_code=303)
        return page(request, "error.html", status=exc.status, message=exc.message)

    @app.exception_handler(ServiceError)
    async def _service(request: Request, exc: ServiceError) -> Response:
        logger.warning("console: %s", exc)
        message = "Elasticsearch is not reachable right now; try again shortly"  # never the URL or credentials
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": message}, status_code=503)
        return HTMLResponse(templates.get_template("error.html").render(request=request, user=None, csrf="",
                                                                        message=message), status_code=503)

    def check_csrf(request: Request, sent: str | None) -> None:
        """The Origin/Referer check and the token of the session (or, before login, of the login cookie)."""
        if not same_origin(request.headers, settings.console_origins):
            raise _Denied(403, "this request comes from another site")
        found = current(request)
        expected = found[0].csrf if found else sessions.login_token(request.cookies.get(LOGIN_COOKIE))
        if not (expected and sent and hmac.compare_digest(expected, sent)):
            raise _Denied(403, "the form's CSRF token is missing or wrong: reload the page and try again")

    # ------------------------------------------------------------ health and login
    @app.get("/healthz")
    def healthz() -> JSONResponse:
        try:
            health = es.cluster.health(timeout="2s")
            ok = health.get("status") in ("green", "yellow")
        except Exception:  # noqa: BLE001 - any failure means "not healthy"; details stay in the log
            ok = False
        return JSONResponse({"status": "ok" if ok else "degraded", "elasticsearch": "ok" if ok else "unreachable"},
                            status_code=200 if ok else 503)

    @app.get("/login")
    def login_form(request: Request, next: str = "/") -> HTMLResponse:  # noqa: A002
        return page(request, "login.html", next=_local(next), error=None)

    @app.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        check_csrf(request, _str(form.get("csrf_token")))
        name = _str(form.get("username")).strip().lower()
        password = _str(form.get("password"))
        target = _local(_str(form.get("next")) or "/")
        client = request.client.host if request.client else "unknown"
        keys = (f"{name}\n{client}", client)
        try:
            for throttle, key in zip(throttles, keys):
                throttle.check(key)
        except LoginThrottled as exc:
            response = page(request, "login.html", status=429, next=target, error=str(exc))
            response.headers["Retry-After"] = str(int(exc.retry_after_s) + 1)
            return response
        user = accounts.authenticate(name, password)
        if user is None:
            for throttle, key in zip(throttles, keys):
                throttle.failed(key)
            logger.info("console: failed login for %r from %s", name, client)
            return page(request, "login.html", status=401, next=target, error="wrong user name or password")
        throttles[0].succeeded(keys[0])
        old = current(request)
        if old:  # a new session on every login (no fixation), the old one gone
            sessions.end(old[0])
        cookie, _ = sessions.start(user)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(SESSION_COOKIE, cookie, **cookie_options(settings, settings.console_session_max_age_s))
        response.delete_cookie(LOGIN_COOKIE, path="/")
        return response

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        form = await request.form()
        check_csrf(request, _str(form.get("csrf_token")))
        found = current(request)
        if found:
            sessions.end(found[0])
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # ------------------------------------------------------------ the queue
    def _page_number(value: str | None, size: int) -> int:
        """A page number within Elasticsearch's result window (10,000 hits), or 400."""
        return _bounded_int(value, "page", 1, max(1, MAX_WINDOW // size))

    @app.get("/")
    def queue_page(request: Request) -> HTMLResponse:
        require(request)
        filters = QueueFilters.from_params(request.query_params)
        result = index.queue(filters, page=_page_number(request.query_params.get("page"), settings.console_page_size))
        return page(request, "queue.html", queue=result, filters=filters, counters=index.counters(),
                    params=filters.as_params())

    @app.get("/api/queue")
    def api_queue(request: Request) -> JSONResponse:
        require(request)
        filters = QueueFilters.from_params(request.query_params)
        size = _bounded_int(request.query_params.get("size") or str(settings.console_page_size), "size", 1, 500)
        result = index.queue(filters, page=_page_number(request.query_params.get("page"), size), size=size)
        return JSONResponse({**result.to_dict(), "filters": filters.as_params()})

    @app.get("/api/counters")
    def api_counters(request: Request) -> JSONResponse:
        require(request)
        return JSONResponse(index.counters())

    # ------------------------------------------------------------ one video
    def video_or_404(uid: str) -> dict[str, Any]:
        video = index.video(uid)
        if video is None:
            raise _Denied(404, f"no video {uid!r}")
        return video

    @app.get("/videos/{uid:path}")
    def video_page(request: Request, uid: str) -> HTMLResponse:
        require(request)
        data = video_payload(index, video_or_404(uid))
        duration = float((data["detection"] or {}).get("duration_s") or
                         (data["video"].get("media") or {}).get("duration_s") or 0)
        rows = [("fused", data["fused_timeline"])] if data["fused_timeline"] else []
        rows += [(r["name"], r["timeline"]) for r in data["detectors"] if r["applicable"]]
        return page(request, "video.html", d=data, v=data["video"], duration=duration,
                    timeline=timeline_svg(rows, duration, data["segments"]) if rows else None,
                    player_marks=[*({"start_s": s["start_s"], "end_s": s["end_s"], "title": "manipulated segment"}
                                    for s in data["segments"]),
                                  *({"start_s": a, "end_s": b, "title": f"{r['name']} flagged"}
                                    for r in data["detectors"] for a, b in r["flagged"])],
                    spread=spread_svg(data["spread_history"]))

    @app.get("/api/videos/{uid:path}")
    def api_video(request: Request, uid: str) -> JSONResponse:
        require(request)
        return JSONResponse(video_payload(index, video_or_404(uid)))

    def _verdict(user: User, uid: str, verdict: str, note: str) -> dict[str, Any]:
        video = video_or_404(uid)
        if verdict not in ANALYST_VERDICTS:
            raise _Denied(400, f"verdict must be one of {', '.join(ANALYST_VERDICTS)}")
        if len(note) > MAX_NOTE:
            raise _Denied(400, f"the note is longer than {MAX_NOTE} characters")
        try:
            return record_verdict(es, settings, video, index.detection(video), verdict=verdict, note=note,
                                  analyst=user.name)
        except ConsoleError as exc:
            raise _Denied(400, str(exc)) from exc

    @app.post("/verdicts")
    async def verdict_form(request: Request) -> Response:
        user = require(request)
        form = await request.form()
        check_csrf(request, _str(form.get("csrf_token")))
        uid = _str(form.get("video_uid"))
        _verdict(user, uid, _str(form.get("verdict")), _str(form.get("note")))
        return RedirectResponse(f"/videos/{uid}#verdict", status_code=303)

    @app.post("/api/verdicts")
    async def api_verdict(request: Request) -> JSONResponse:
        user = require(request)
        if bearer(request) is None:  # a browser session: the page's token in a header
            check_csrf(request, request.headers.get("x-csrf-token"))
        try:
            body = await request.json()
        except ValueError as exc:
            raise _Denied(400, "send JSON: {video_uid, verdict, note}") from exc
        if not isinstance(body, dict):
            raise _Denied(400, "send JSON: {video_uid, verdict, note}")
        doc = _verdict(user, _str(body.get("video_uid")), _str(body.get("verdict")), _str(body.get("note")))
        return JSONResponse(doc, status_code=201)

    # ------------------------------------------------------------ media and evidence files
    @app.get("/media/{uid:path}")
    def media(request: Request, uid: str) -> Response:
        require(request)
        found = locate_media(video_or_404(uid), store)
        if found is None:
            raise _Denied(404, "the media file is not in the store")
        wanted = parse_range(request.headers.get("range"), found.size)
        headers = {"Accept-Ranges": "bytes", "Content-Type": found.content_type, "Cache-Control": "private"}
        if wanted is False:
            return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{found.size}"})
        if wanted is None:
            return StreamingResponse(stream(found, 0, found.size - 1), headers={
                **headers, "Content-Length": str(found.size)}, media_type=found.content_type)
        first, last = wanted
        return StreamingResponse(stream(found, first, last), status_code=206, media_type=found.content_type,
                                 headers={**headers, "Content-Range": f"bytes {first}-{last}/{found.size}",
                                          "Content-Length": str(last - first + 1)})

    @app.get("/evidence/{detection_id}/{n}")
    def evidence(request: Request, detection_id: str, n: int) -> Response:
        require(request)
        detection = index.detection_by_id(detection_id)
        uris = (detection or {}).get("evidence_uris") or []
        if not 0 <= n < len(uris) or not _FACE.search(str(uris[n])):
            raise _Denied(404, "no such evidence file")
        found = read_small(str(uris[n]))
        if found is None:
            raise _Denied(404, "the evidence file is not in the store")
        data, content_type = found
        return Response(data, media_type=content_type, headers={"Cache-Control": "private, max-age=3600"})

    # ------------------------------------------------------------ alerts
    @app.get("/alerts")
    def alerts_page(request: Request) -> HTMLResponse:
        require(request)
        state = request.query_params.get("state") or None
        number = _page_number(request.query_params.get("page"), ALERTS_PAGE_SIZE)
        alerts, total = index.alerts_page(state=state, page=number, size=ALERTS_PAGE_SIZE)
        return page(request, "alerts.html", alerts=alerts, total=total, state=state, page_number=number,
                    pages=max(1, -(-min(total, MAX_WINDOW) // ALERTS_PAGE_SIZE)))

    @app.get("/api/alerts")
    def api_alerts(request: Request) -> JSONResponse:
        require(request)
        alerts, total = index.alerts_page(state=request.query_params.get("state") or None, size=ALERTS_PAGE_SIZE,
                                          page=_page_number(request.query_params.get("page"), ALERTS_PAGE_SIZE))
        return JSONResponse({"total": total, "items": alerts})

    # ------------------------------------------------------------ admin
    @app.get("/admin")
    def admin_page(request: Request) -> HTMLResponse:
        require(request, admin=True)
        users = accounts.users()
        return page(request, "admin.html", users=users, tokens={u.name: accounts.tokens(u.name) for u in users},
                    message=request.query_params.get("message"))

    async def admin_form(request: Request) -> Any:
        """The posted form of an admin page, after the role and CSRF checks."""
        require(request, admin=True)
        form = await request.form()
        check_csrf(request, _str(form.get("csrf_token")))
        return form

    @app.post("/admin/users")
    async def admin_add_user(request: Request) -> Response:
        form = await admin_form(request)
        try:
            added = accounts.add_user(_str(form.get("username")), _str(form.get("role")), _str(form.get("password")))
        except ConsoleError as exc:
            raise _Denied(400, str(exc)) from exc
        return RedirectResponse("/admin?" + urlencode({"message": f"saved {added.name} ({added.role})"}),
                                status_code=303)

    @app.post("/admin/tokens/revoke")
    async def admin_revoke(request: Request) -> Response:
        form = await admin_form(request)
        try:
            count = accounts.revoke(_str(form.get("username")), _str(form.get("token_id")) or "all")
        except ConsoleError as exc:
            raise _Denied(400, str(exc)) from exc
        return RedirectResponse("/admin?" + urlencode({"message": f"revoked {count} token(s)"}), status_code=303)

    @app.get("/api/admin/users")
    def api_users(request: Request) -> JSONResponse:
        require(request, admin=True)
        return JSONResponse({"users": [{"name": u.name, "role": u.role} for u in accounts.users()]})

    # ------------------------------------------------------------ watchlists (admins) and submissions (analysts)
    add_watchlist_routes(app, settings=settings, es=es, require=require, page=page, check_csrf=check_csrf)
    add_submission_routes(app, settings=settings, es=es, require=require, page=page, check_csrf=check_csrf,
                          bearer=bearer)

    return app


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _bounded_int(value: str | None, name: str, low: int, high: int) -> int:
    """A query parameter as an int in [low, high], read only when it is a short run of digits; else a 400."""
    text = (value or "").strip() or str(low)
    if len(text) > 9 or not text.isdecimal() or not low <= int(text) <= high:
        raise _Denied(400, f"{name} must be a whole number from {low} to {high}")
    return int(text)


def _local(target: str) -> str:
    """Only redirect within the console (no //host or scheme: an open redirect otherwise)."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target
