"""Vigil's exception tree. Errors of Kafka, Elasticsearch, yt-dlp and the media stack are translated into these
at the boundary (``raise ... from exc``) so callers handle one family::

    VigilError                      anything Vigil raises on purpose
    ├── ConfigError                 settings are missing, malformed or contradictory
    │   └── WatchlistError          a watchlist file is invalid (names the file, entry and line)
    ├── ServiceError                a server Vigil talks to failed (carries ``service=``)
    │   ├── ServiceUnavailable      not reachable: down, wrong address, TLS handshake failed
    │   ├── AuthenticationFailed    reachable, but it refused the credentials (HTTP 401) or lacks rights (403)
    │   └── SetupMissing            reachable, but `vigil setup` has not been run (topic, template or index absent)
    ├── MessageError                a Kafka message that cannot be used: malformed JSON, wrong schema or version
    └── CrawlError                  crawling one watchlist entry or video failed (carries ``url=``)
        ├── DownloadRefused         policy refused it: unsafe address, over a cap, not a video (``reason=``)
        │   └── UnsafeURL           the URL's scheme, host or address is not allowed
        └── DownloadFailed          the platform or network failed (``transient=`` says whether a retry may help)
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
    "WatchlistError",
    "CrawlError",
    "DownloadRefused",
    "UnsafeURL",
    "DownloadFailed",
]


class VigilError(Exception):
    """Base class of every error Vigil raises on purpose."""


class ConfigError(VigilError):
    """Settings are missing, malformed or contradictory."""


class ServiceError(VigilError):
    """A server Vigil talks to failed; ``service`` names it (``kafka``, ``elasticsearch``, ``media-store``)."""

    def __init__(self, message: str, *, service: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
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


class WatchlistError(ConfigError):
    """A watchlist file is invalid; the message names the file, the entry and its line."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.line = line


class CrawlError(VigilError):
    """Crawling one watchlist entry or one video failed; ``url`` names what was being fetched."""

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class DownloadRefused(CrawlError):
    """Policy refused a video: unsafe address, over a size or duration cap, not a video. ``reason`` is for people."""

    @property
    def reason(self) -> str:
        return str(self)


class UnsafeURL(DownloadRefused):
    """A URL's scheme, host or resolved address is not allowed by the network safety settings."""


class DownloadFailed(CrawlError):
    """The platform or the network failed; ``transient`` is true when trying again later may help."""

    def __init__(self, message: str, *, url: str | None = None, transient: bool = False) -> None:
        super().__init__(message, url=url)
        self.transient = transient
