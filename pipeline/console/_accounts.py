"""Console accounts and bearer tokens, kept in an Elasticsearch index of the console's own:
``<prefix>-console-users`` (created on first use, explicit mapping, nothing dynamic).

Documents, by id::

    user:<name>          {kind: user, name, role: analyst|admin, password_hash (argon2id), created}
    token:<sha256>       {kind: token, name, token_id (first 12 hex of the hash), created, revoked}
    secret:session       {kind: secret, value}: the session-cookie key when VIGIL_CONSOLE_SECRET_KEY is unset

Passwords are hashed with argon2id (argon2-cffi, its default parameters). A bearer token is ``vgl_`` + 32 random
bytes (URL-safe); only its sha256 is stored, so a leaked index does not leak tokens. Revoking marks the token;
deleting or re-creating a user does not revive it.
"""
from __future__ import annotations

import hashlib
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import elasticsearch
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from elasticsearch import Elasticsearch

from .._elasticsearch import es_errors
from .._settings import Settings
from ._exceptions import AccountError

__all__ = ["Accounts", "User", "Role", "ROLES", "TOKEN_PREFIX", "accounts_index"]

logger = logging.getLogger(__name__)

Role = Literal["analyst", "admin"]
ROLES: tuple[Role, ...] = ("analyst", "admin")
TOKEN_PREFIX = "vgl_"
TOKEN_CACHE_S = 5.0
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789._-@")
MAPPINGS = {
    "dynamic": False,
    "properties": {
        "kind": {"type": "keyword"}, "name": {"type": "keyword"}, "role": {"type": "keyword"},
        "password_hash": {"type": "keyword", "index": False}, "token_id": {"type": "keyword"},
        "revoked": {"type": "boolean"}, "created": {"type": "date"}, "value": {"type": "keyword", "index": False},
    },
}


def accounts_index(settings: Settings) -> str:
    return f"{settings.es_index_prefix}-console-users"


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class User:
    """A console account (never carries the password hash out of this module)."""

    name: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class Accounts:
    """Reads and writes of users and tokens."""

    def __init__(self, es: Elasticsearch, settings: Settings) -> None:
        self.es = es
        self.settings = settings
        self.index = accounts_index(settings)
        self.hasher = PasswordHasher()
        self._ready = False
        self._token_cache: dict[str, tuple[float, User | None]] = {}

    def ensure_index(self) -> None:
        if self._ready:
            return
        with es_errors(self.settings):
            if not self.es.indices.exists(index=self.index):
                try:
                    self.es.indices.create(index=self.index, mappings=MAPPINGS, settings={
                        "number_of_shards": 1, "number_of_replicas": self.settings.es_replicas})
                except elasticsearch.BadRequestError as exc:
                    if exc.error != "resource_already_exists_exception":
                        raise
        self._ready = True

    def _get(self, doc_id: str) -> dict[str, Any] | None:
        self.ensure_index()
        with es_errors(self.settings):
            try:
                return self.es.get(index=self.index, id=doc_id)["_source"]
            except elasticsearch.NotFoundError:
                return None

    def _put(self, doc_id: str, body: dict[str, Any], *, create: bool = False) -> None:
        self.ensure_index()
        with es_errors(self.settings):
            self.es.index(index=self.index, id=doc_id, document=body, refresh="wait_for",
                          op_type="create" if create else "index")

    # ------------------------------------------------------------ users
    @staticmethod
    def check_name(name: str) -> str:
        name = name.strip().lower()
        if not name or len(name) > 64 or not set(name) <= _NAME_CHARS:
            raise AccountError(f"invalid user name {name!r}: use 1-64 of a-z 0-9 . _ - @")
        return name

    def add_user(self, name: str, role: str, password: str) -> User:
        """Create or replace a user (a new password and role for an existing name)."""
        name = self.check_name(name)
        if role not in ROLES:
            raise AccountError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        if len(password) < 8:
            raise AccountError("the password must have at least 8 characters")
        self._put(f"user:{name}", {"kind": "user", "name": name, "role": role,
                                   "password_hash": self.hasher.hash(password), "created": _now()})
        logger.info("console user %s saved with role %s", name, role)
        return User(name, role)  # type: ignore[arg-type]

    def user(self, name: str) -> User | None:
        doc = self._get(f"user:{name}")
        if not doc or doc.get("role") not in ROLES:
            return None
        return User(doc["name"], doc["role"])

    def users(self) -> list[User]:
        self.ensure_index()
        with es_errors(self.settings):
            hits = self.es.search(index=self.index, query={"term": {"kind": "user"}}, size=1000,
                                  sort=[{"name": "asc"}], source_includes=["name", "role"])["hits"]["hits"]
        return [User(h["_source"]["name"], h["_source"]["role"]) for h in hits]

    def remove_user(self, name: str) -> None:
        self.ensure_index()
        with es_errors(self.settings):
            self.es.options(ignore_status=404).delete(index=self.index, id=f"user:{self.check_name(name)}",
                                                      refresh="wait_for")
        self.revoke(name, "all")

    def authenticate(self, name: str, password: str) -> User | None:
        """The user when the password is right; None otherwise (unknown users cost a hash too)."""
        try:
            name = self.check_name(name)
        except AccountError:
            return None
        doc = self._get(f"user:{name}")
        stored = (doc or {}).get("password_hash") or self.hasher.hash("unknown-user-dummy")
        try:
            self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if not doc or doc.get("role") not in ROLES:
            return None
        if self.hasher.check_needs_rehash(stored):
            self._put(f"user:{name}", {**doc, "password_hash": self.hasher.hash(password)})
        return User(doc["name"], doc["role"])

    # ------------------------------------------------------------ tokens
    def new_token(self, name: str) -> tuple[str, str]:
        """(token, token_id) for an existing user; the token is shown once and stored only as its hash."""
        name = self.check_name(name)
        if self.user(name) is None:
            raise AccountError(f"no console user {name!r}: add it with `vigil console adduser {name} --role …`")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        digest = _token_hash(token)
        self._put(f"token:{digest}", {"kind": "token", "name": name, "token_id": digest[:12], "created": _now(),
                                      "revoked": False}, create=True)
        return token, digest[:12]

    def tokens(self, name: str) -> list[dict[str, Any]]:
        self.ensure_index()
        with es_errors(self.settings):
            hits = self.es.search(index=self.index, size=1000, sort=[{"created": "asc"}],
                                  query={"bool": {"filter": [{"term": {"kind": "token"}},
                                                             {"term": {"name": self.check_name(name)}}]}},
                                  source_includes=["token_id", "created", "revoked"])["hits"]["hits"]
        return [h["_source"] for h in hits]

    def revoke(self, name: str, token_id: str) -> int:
        """Revoke one token of the user by its id, or ``all``; returns how many were revoked."""
        self.ensure_index()
        filters: list[dict[str, Any]] = [{"term": {"kind": "token"}}, {"term": {"name": self.check_name(name)}},
                                         {"term": {"revoked": False}}]
        if token_id != "all":
            filters.append({"term": {"token_id": token_id}})
        with es_errors(self.settings):
            hits = self.es.search(index=self.index, query={"bool": {"filter": filters}}, size=1000,
                                  source=False)["hits"]["hits"]
            for hit in hits:
                self.es.update(index=self.index, id=hit["_id"], doc={"revoked": True}, refresh="wait_for")
                self._token_cache.pop(hit["_id"].removeprefix("token:"), None)
        return len(hits)

    def user_for_token(self, token: str) -> User | None:
        """The token's user, unless the token is unknown or revoked or the user is gone. Answers are kept for
        ``TOKEN_CACHE_S`` seconds, so a revocation takes effect within that time."""
        if not token.startswith(TOKEN_PREFIX):
            return None
        digest = _token_hash(token)
        now = time.monotonic()
        cached = self._token_cache.get(digest)
        if cached and now - cached[0] < TOKEN_CACHE_S:
            return cached[1]
        doc = self._get(f"token:{digest}")
        user = None if not doc or doc.get("revoked") else self.user(doc["name"])
        if len(self._token_cache) > 10_000:
            self._token_cache.clear()
        self._token_cache[digest] = (now, user)
        return user

    # ------------------------------------------------------------ the session key
    def session_secret(self) -> str:
        if self.settings.console_secret_key is not None:
            return self.settings.console_secret_key.get_secret_value()
        doc = self._get("secret:session")
        if doc:
            return str(doc["value"])
        value = secrets.token_urlsafe(48)
        try:
            self._put("secret:session", {"kind": "secret", "value": value, "created": _now()}, create=True)
        except elasticsearch.ConflictError:  # another console process made one first
            return str((self._get("secret:session") or {})["value"])
        return value
