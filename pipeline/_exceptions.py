"""Vigil's exception tree. Errors of Kafka, Elasticsearch, yt-dlp and the media stack are translated into these
at the boundary (``raise ... from exc``) so callers handle one family::

    VigilError                      anything Vigil raises on purpose
    ├── ConfigError                 settings are missing, malformed or contradictory
    ├── ServiceError                a server Vigil talks to failed (carries ``service=``)
    │   ├── ServiceUnavailable      not reachable: down, wrong address, TLS handshake failed
    │   ├── AuthenticationFailed    reachable, but it refused the credentials (HTTP 401) or lacks rights (403)
    │   └── SetupMissing            reachable, but `vigil setup` has not been run (topic, template or index absent)
    └── MessageError                a Kafka message that cannot be used: malformed JSON, wrong schema or version
"""
from __future__ import annotations

__all__ = [
    "VigilError",
    "ConfigError",
    "ServiceError",
    "ServiceUnavailable",
    "AuthenticationFailed",
    "SetupMissing",
    "MessageError",
]


class VigilError(Exception):
    """Base class of every error Vigil raises on purpose."""


class ConfigError(VigilError):
    """Settings are missing, malformed or contradictory."""


class ServiceError(VigilError):
    """A server Vigil talks to failed; ``service`` names it (``kafka``, ``elasticsearch``, ``media-store``)."""

    def __init__(self, message: str, *, service: str, hint: str = "") -> None:
        super().__init__(message)
        self.service = service
        self.hint = hint

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base} ({self.hint})" if self.hint else base


class ServiceUnavailable(ServiceError):
    """The server cannot be reached: down, wrong address, or the TLS handshake failed."""


class AuthenticationFailed(ServiceError):
    """The server answered but refused the credentials, or the user lacks a needed privilege."""


class SetupMissing(ServiceError):
    """The server is fine but Vigil's topics, templates or indices are absent: run `vigil setup`."""


class MessageError(VigilError):
    """A message that cannot be used (malformed JSON, unknown schema or version, invalid fields): poison input."""

    def __init__(self, message: str, *, raw: bytes | None = None) -> None:
        super().__init__(message)
        self.raw = raw
