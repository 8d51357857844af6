"""Login throttling, CSRF tokens, the Origin check and the security headers of every response.

Throttling counts failed logins per account *from one address* (``VIGIL_CONSOLE_LOGIN_MAX_FAILURES`` within
``VIGIL_CONSOLE_LOGIN_LOCKOUT_S``) and per client address (four times as many), in a sliding window; while either is
over its limit a login is refused (429) before the password is checked. So a client that guesses passwords locks
out itself, never the account for everyone else: the owner logging in from another address is not refused. The
counts live in the console process (a restart forgets them; each replica counts its own).

CSRF: each session holds a random token; every form carries it in a hidden ``csrf_token`` field (scripts send it as
``X-CSRF-Token``), and a POST whose token is missing or different is refused with 403. On top, a state-changing
request whose ``Origin`` (or, without one, ``Referer``) names another site is refused with 403. Bearer-token requests
carry no cookie, so they need neither.

Every answer, errors and unexpected failures included, carries `SECURITY_HEADERS`; pages and ``/api/*`` answers are
``Cache-Control: no-store``.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from ._exceptions import LoginThrottled

__all__ = ["LoginThrottle", "SECURITY_HEADERS", "same_origin", "add_security_headers"]

logger = logging.getLogger(__name__)

SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; img-src 'self' data:; media-src 'self'; style-src 'self'; "
                                "script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
                                "form-action 'self'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


class LoginThrottle:
    """Failed logins per key in a sliding window (thread-safe)."""

    def __init__(self, max_failures: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.clock = clock
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _prune(self, key: str, now: float) -> deque[float]:
        times = self._failures[key]
        while times and now - times[0] > self.window_s:
            times.popleft()
        return times

    def check(self, *keys: str) -> None:
        """Raise LoginThrottled when any key has too many recent failures."""
        now = self.clock()
        with self._lock:
            for key in keys:
                times = self._prune(key, now)
                if len(times) >= self.max_failures:
                    wait = self.window_s - (now - times[0])
                    raise LoginThrottled(f"too many failed logins; try again in {int(wait) + 1} s",
                                         retry_after_s=wait)

    def failed(self, *keys: str) -> None:
        now = self.clock()
        with self._lock:
            if len(self._failures) > 100_000:  # random user names must not grow this without bound
                for key in [k for k in self._failures if not self._prune(k, now)]:
                    del self._failures[key]
            for key in keys:
                self._prune(key, now).append(now)

    def succeeded(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)


def same_origin(headers: Any, allowed: Iterable[str] = ()) -> bool:
    """Whether a state-changing request comes from the console's own pages: its ``Origin`` (else its ``Referer``)
    has the request's own ``Host`` or one of ``allowed`` (``https://host[:port]``). Neither header (scripts, old
    clients) passes: the CSRF token still has to match."""
    source = headers.get("origin")
    if source is None:
        referer = headers.get("referer")
        if not referer:
            return True
        source = referer
    if source == "null":
        return False
    parts = urlsplit(source)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    own = (headers.get("host") or "").lower()
    if parts.netloc.lower() == own:
        return True
    return f"{parts.scheme}://{parts.netloc}".lower() in {a.rstrip("/").lower() for a in allowed}


async def add_security_headers(request: Any, call_next: Callable[[Any], Awaitable[Any]]) -> Any:
    try:
        response = await call_next(request)
    except Exception:  # an unexpected failure still answers with the headers, and says nothing of its cause
        logger.exception("console: %s %s failed", request.method, request.url.path)
        from starlette.responses import JSONResponse, PlainTextResponse

        response = (JSONResponse({"error": "internal error"}, status_code=500)
                    if request.url.path.startswith("/api/") else PlainTextResponse("internal error", status_code=500))
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.url.path.startswith("/api/") or response.headers.get("content-type", "").startswith("text/html"):
        response.headers["Cache-Control"] = "no-store"
    return response
