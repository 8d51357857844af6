"""Server-side console sessions: the cookie holds a random id (signed), the session lives in the console's own index.

    POST /login ─ password ok ─▶ session:<sha256(id)> {name, epoch, csrf, created_s, seen_s} ─▶ Set-Cookie: id.sig
    any request ─ cookie ─▶ signature ─▶ the document (a real-time GET) ─▶ idle / absolute lifetime ─▶ user's epoch

A session ends when its document is gone or stale: logout deletes it; saving the user (new password or role),
removing it or revoking all its tokens deletes all of the user's sessions and gives the user a new ``epoch`` (a
session made under an older one is refused even if a delete raced it); ``VIGIL_CONSOLE_SESSION_IDLE_S`` after its last
use or ``VIGIL_CONSOLE_SESSION_MAX_AGE_S`` after login it is refused and deleted. Only the id's sha256 is stored, so
reading the index does not yield a usable cookie. ``seen_s`` is written at most once a minute.

Before login there is no session: the login form's CSRF token is an HMAC of a random nonce kept in a short-lived
signed cookie (``vigil_login``), so an anonymous visitor writes nothing to Elasticsearch.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

import elasticsearch
from itsdangerous import BadSignature, Signer

from .._elasticsearch import es_errors
from ._accounts import Accounts, User

__all__ = ["Session", "Sessions", "SESSION_COOKIE", "LOGIN_COOKIE"]

SESSION_COOKIE = "vigil_session"
LOGIN_COOKIE = "vigil_login"
LOGIN_COOKIE_MAX_AGE_S = 3600
TOUCH_EVERY_S = 60.0


@dataclass(frozen=True)
class Session:
    """One logged-in browser."""

    key: str  # sha256 of the id: the document is session:<key>
    name: str
    epoch: str
    csrf: str
    created_s: float
    seen_s: float


class Sessions:
    """Start, load and end sessions in the accounts index."""

    def __init__(self, accounts: Accounts, secret: str) -> None:
        self.accounts = accounts
        self.settings = accounts.settings
        self.signer = Signer(secret, salt="vigil-console-session")
        self.login_signer = Signer(secret, salt="vigil-console-login")
        self._secret = secret.encode()

    @staticmethod
    def _key(session_id: str) -> str:
        return hashlib.sha256(session_id.encode()).hexdigest()

    def start(self, user: User) -> tuple[str, Session]:
        """A new session for ``user``: (the cookie's value, the session)."""
        session_id = secrets.token_urlsafe(32)
        now = time.time()
        session = Session(self._key(session_id), user.name, user.epoch, secrets.token_urlsafe(32), now, now)
        self.accounts._put(f"session:{session.key}", {
            "kind": "session", "name": user.name, "epoch": user.epoch, "csrf": session.csrf, "created_s": now,
            "seen_s": now}, create=True)
        return self.signer.sign(session_id).decode(), session

    def load(self, cookie: str | None) -> tuple[Session, User] | None:
        """The live session of a cookie and its user; None when unsigned, unknown, expired or outdated."""
        if not cookie or len(cookie) > 200:
            return None
        try:
            session_id = self.signer.unsign(cookie).decode()
        except BadSignature:
            return None
        key = self._key(session_id)
        doc = self.accounts._get(f"session:{key}")
        if not doc or doc.get("kind") != "session":
            return None
        now = time.time()
        created, seen = float(doc.get("created_s") or 0), float(doc.get("seen_s") or 0)
        session = Session(key, str(doc.get("name")), str(doc.get("epoch") or ""), str(doc.get("csrf")), created, seen)
        if now - created > self.settings.console_session_max_age_s or now - seen > self.settings.console_session_idle_s:
            self.end(session)
            return None
        user = self.accounts.user(session.name)
        if user is None or user.epoch != session.epoch:
            self.end(session)
            return None
        if now - seen > TOUCH_EVERY_S:
            with es_errors(self.settings):
                self.accounts.es.options(ignore_status=404).update(
                    index=self.accounts.index, id=f"session:{key}", doc={"seen_s": now})
        return session, user

    def end(self, session: Session) -> None:
        with es_errors(self.settings):
            try:
                self.accounts.es.delete(index=self.accounts.index, id=f"session:{session.key}", refresh="wait_for")
            except elasticsearch.NotFoundError:
                pass

    # ------------------------------------------------------------ the login form's CSRF token
    def login_nonce(self) -> tuple[str, str]:
        """(a new ``vigil_login`` cookie value, the form token that goes with it)."""
        nonce = secrets.token_urlsafe(24)
        return self.login_signer.sign(nonce).decode(), self._login_token(nonce)

    def login_token(self, cookie: str | None) -> str | None:
        """The form token of a ``vigil_login`` cookie; None when the cookie is missing or forged."""
        if not cookie or len(cookie) > 200:
            return None
        try:
            return self._login_token(self.login_signer.unsign(cookie).decode())
        except BadSignature:
            return None

    def _login_token(self, nonce: str) -> str:
        return hmac.new(self._secret, f"login:{nonce}".encode(), hashlib.sha256).hexdigest()


def cookie_options(settings: Any, max_age: int) -> dict[str, Any]:
    return {"max_age": max_age, "httponly": True, "samesite": "lax", "secure": settings.console_secure_cookies,
            "path": "/"}
