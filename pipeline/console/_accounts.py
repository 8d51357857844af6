"""Console accounts, bearer tokens and sessions, kept in an Elasticsearch index of the console's own:
``<prefix>-console-users`` (created on first use, explicit mapping, nothing dynamic), read and written with the
console's own credentials (``VIGIL_CONSOLE_ES_*``, or the user `vigil setup` made): the pipeline's role does not
cover it, so the worker's, sink's or crawler's login cannot read the session key or forge a session.

Documents, by id::

    user:<name>          {kind: user, name, role: analyst|admin, password_hash (argon2id), epoch, created}
    token:<sha256>       {kind: token, name, token_id (first 12 hex of the hash), created, revoked}
    session:<sha256>     {kind: session, name, epoch, csrf, created_s, seen_s} (see _sessions)
    secret:session       {kind: secret, value}: the session-cookie key when VIGIL_CONSOLE_SECRET_KEY(_FILE) is unset

Passwords are hashed with argon2id (argon2-cffi, its default parameters) and must pass `check_password` (length,
the bundled list of common passwords, not the user name). A bearer token is ``vgl_`` + 32 random bytes (URL-safe);
only its sha256 is stored, so a leaked index does not leak tokens. Revoking marks the token; deleting or re-creating
a user does not revive it. Saving a user (a new password or role), removing it or revoking all its tokens gives it a
new ``epoch`` and deletes its sessions: every browser logged in as it is logged out at once.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from datetime import UTC, datetime
from typing import Any, Literal

import elasticsearch
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from elasticsearch import Elasticsearch

from .._elasticsearch import es_errors, make_es_client
from .._settings import Settings
from ._exceptions import AccountError

__all__ = ["Accounts", "User", "Role", "ROLES", "TOKEN_PREFIX", "accounts_index", "check_password",
           "store_credentials", "make_store_client"]

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
COMMON_PASSWORDS_FILE = Path(__file__).resolve().parent / "common-passwords.txt"


@lru_cache(maxsize=1)
def _common_passwords() -> frozenset[str]:
    lines = COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip() and not line.startswith("#"))


def check_password(password: str, *, name: str = "", min_length: int = 12) -> None:
    """Raise AccountError unless ``password`` is long enough, not a common password (the bundled list, also with
    digits or punctuation added at either end), not the user name and not one character repeated."""
    if len(password) < min_length:
        raise AccountError(f"the password must have at least {min_length} characters")
    lowered = password.lower()
    core = re.sub(r"^[\d\W_]+|[\d\W_]+$", "", lowered)
    common = _common_passwords()
    if lowered in common or core in common:
        raise AccountError("this password is on the list of common passwords: choose another")
    if name and name.lower() in lowered:
        raise AccountError("the password must not contain the user name")
    if len(set(password)) < 4:
        raise AccountError("the password needs more than a few distinct characters")


def store_credentials(settings: Settings) -> dict[str, Any] | None:
    """Client options for the console's own index: VIGIL_CONSOLE_ES_API_KEY, VIGIL_CONSOLE_ES_USER/PASSWORD, or the
    user `vigil setup` made (``console_es_credentials_file``); None = the pipeline's own (VIGIL_ES_*)."""
    if settings.console_es_api_key is not None:
        return {"api_key": settings.console_es_api_key.get_secret_value()}
    if settings.console_es_user:
        password = settings.console_es_password.get_secret_value() if settings.console_es_password else ""
        return {"basic_auth": (settings.console_es_user, password)}
    path = Path(settings.console_es_credentials_file).expanduser()
    if path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("es_url") in (None, settings.es_url) and data.get("prefix") in (None, settings.es_index_prefix):
            return {"basic_auth": (str(data["user"]), str(data["password"]))}
    return None


def make_store_client(settings: Settings) -> Elasticsearch:
    """The Elasticsearch client of the console's own index (see `store_credentials`)."""
    own = store_credentials(settings)
    if own is None:
        logger.warning("console: no VIGIL_CONSOLE_ES_* credentials and none made by `vigil setup`; the console's "
                       "own index is read with the pipeline's credentials")
        return make_es_client(settings)
    client = make_es_client(settings)
    options = {"api_key": None, "basic_auth": None, **own}
    return client.options(**options)


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
    epoch: str = field(default="", compare=False)

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
        check_password(password, name=name, min_length=self.settings.console_password_min_length)
        epoch = secrets.token_hex(8)
        self._put(f"user:{name}", {"kind": "user", "name": name, "role": role, "epoch": epoch,
                                   "password_hash": self.hasher.hash(password), "created": _now()})
        ended = self.end_sessions(name)
        logger.info("console user %s saved with role %s (%d session(s) ended)", name, role, ended)
        return User(name, role, epoch)  # type: ignore[arg-type]

    def user(self, name: str) -> User | None:
        doc = self._get(f"user:{name}")
        if not doc or doc.get("role") not in ROLES:
            return None
        return User(doc["name"], doc["role"], str(doc.get("epoch") or ""))

    def end_sessions(self, name: str) -> int:
        """Delete every session of the user (logout everywhere, at once); returns how many there were."""
        self.ensure_index()
        with es_errors(self.settings):  # search + bulk delete: the local stack's Elasticsearch has no delete_by_query
            self.es.indices.refresh(index=self.index)
            hits = self.es.search(index=self.index, size=10_000, source=False, query={
                "bool": {"filter": [{"term": {"kind": "session"}}, {"term": {"name": name}}]}})["hits"]["hits"]
            if hits:
                self.es.bulk(operations=[{"delete": {"_index": self.index, "_id": h["_id"]}} for h in hits],
                             refresh="wait_for")
        return len(hits)

    def _new_epoch(self, name: str) -> None:
        """A new epoch on the user's document: sessions made before it no longer count, whatever else happens."""
        with es_errors(self.settings):
            self.es.options(ignore_status=404).update(index=self.index, id=f"user:{name}",
                                                      doc={"epoch": secrets.token_hex(8)}, refresh="wait_for")

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
        self.end_sessions(self.check_name(name))

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
        return User(doc["name"], doc["role"], str(doc.get("epoch") or ""))

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
        """Revoke one token of the user by its id, or ``all`` (which also ends every session of the user); returns
        how many tokens were revoked."""
        self.ensure_index()
        if token_id == "all":
            self._new_epoch(self.check_name(name))
            self.end_sessions(self.check_name(name))
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
        """VIGIL_CONSOLE_SECRET_KEY, else VIGIL_CONSOLE_SECRET_KEY_FILE, else a key kept in this index."""
        if self.settings.console_secret_key is not None:
            return self.settings.console_secret_key.get_secret_value()
        if self.settings.console_secret_key_file is not None:
            try:
                value = Path(self.settings.console_secret_key_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise AccountError(f"VIGIL_CONSOLE_SECRET_KEY_FILE cannot be read: {exc.strerror}") from exc
            if len(value) < 32:
                raise AccountError("the key in VIGIL_CONSOLE_SECRET_KEY_FILE is shorter than 32 characters")
            return value
        doc = self._get("secret:session")
        if doc:
            return str(doc["value"])
        value = secrets.token_urlsafe(48)
        try:
            self._put("secret:session", {"kind": "secret", "value": value, "created": _now()}, create=True)
        except elasticsearch.ConflictError:  # another console process made one first
            return str((self._get("secret:session") or {})["value"])
        return value
