"""Login throttling, CSRF tokens and the security headers of every response.

Throttling counts failed logins per user name (``VIGIL_CONSOLE_LOGIN_MAX_FAILURES`` within
``VIGIL_CONSOLE_LOGIN_LOCKOUT_S``) and per client address (four times as many), in a sliding window; while either is
over its limit a login is refused (429) before the password is checked. The counts live in the console process (a restart forgets them).

CSRF: each session holds a random token; every form carries it in a hidden ``csrf_token`` field (scripts send it as
``X-CSRF-Token``), and a POST whose token is missing or different is refused with 403. Bearer-token requests carry
no cookie, so they need none.
"""
from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ._exceptions import LoginThrottled

__all__ = ["LoginThrottle", "csrf_token", "csrf_ok", "SECURITY_HEADERS"]

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
            for key in keys:
                self._prune(key, now).append(now)

    def succeeded(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)


def csrf_token(session: MutableMapping[str, Any]) -> str:
    """The session's CSRF token (made on first use)."""
    token = session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return str(token)


def csrf_ok(session: MutableMapping[str, Any], sent: str | None) -> bool:
    expected = session.get("csrf")
    return bool(expected and sent and hmac.compare_digest(str(expected), str(sent)))


async def add_security_headers(request: Any, call_next: Callable[[Any], Awaitable[Any]]) -> Any:
    response = await call_next(request)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if response.headers.get("content-type", "").startswith("text/html"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response
