"""yt-dlp, built in one place: options from Settings, every request checked by the URL policy, errors translated.

`GuardedYoutubeDL` sends all of yt-dlp's HTTP traffic through one request handler (yt-dlp's requests-based one)
whose every request, and every redirect hop before it is followed, passes `UrlPolicy.check`, and whose sockets
connect only to addresses `UrlPolicy.vet_connection` checked when they were opened. A refusal is kept on
the instance (``refusals``) so the caller can record the reason even after yt-dlp wrapped the error in its own.
"""
from __future__ import annotations

import io
import logging
import re
from typing import Any

from .._exceptions import DownloadFailed, DownloadRefused, UnsafeURL
from .._settings import Settings
from ._safety import UrlPolicy

__all__ = ["GuardedYoutubeDL", "ytdlp_options", "translate_ytdlp_error", "unsmuggle", "transient_retrying"]

logger = logging.getLogger(__name__)

# HTTP statuses after which trying again later may help
TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}
_HTTP_STATUS = re.compile(r"HTTP Error (\d{3})")


CAPTURE_BYTES = 2 * 1024 * 1024  # pages up to this size are kept for their own metadata (`_pagemeta`)


class _Replay(io.RawIOBase):
    """A response body whose first bytes were already read: those bytes, then the rest of the stream."""

    def __init__(self, head: bytes, rest: Any) -> None:
        super().__init__()
        self._head = io.BytesIO(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self._head.read() + (self._rest.read() or b"")
        data = self._head.read(size)
        if len(data) < size:
            data += self._rest.read(size - len(data)) or b""
        return data

    def close(self) -> None:
        self._rest.close()
        super().close()


class _YtdlpLogger:
    """yt-dlp's messages into our logging (debug/info at debug level: it is chatty)."""

    def __init__(self, name: str = "pipeline.crawl.yt_dlp") -> None:
        self._log = logging.getLogger(name)

    def debug(self, msg: str) -> None:
        self._log.debug("%s", msg)

    def info(self, msg: str) -> None:
        self._log.debug("%s", msg)

    def warning(self, msg: str) -> None:
        if "Falling back on generic information extractor" in msg:
            return
        self._log.info("%s", msg)

    def error(self, msg: str) -> None:
        self._log.info("%s", msg)


def _guarded_handler(policy: UrlPolicy, refusals: list[UnsafeURL]) -> type:
    """A subclass of yt-dlp's requests handler that checks each request and redirect against ``policy``."""
    from yt_dlp.networking._requests import RequestsRH, RequestsSession
    from yt_dlp.networking.exceptions import RequestError

    class RefusedRequest(RequestError):
        """yt-dlp's view of an UnsafeURL, so it unwinds like any network error."""

    def check(url: str) -> None:
        try:
            policy.check(url)
        except UnsafeURL as exc:
            refusals.append(exc)
            logger.warning("refused to fetch %s: %s", url, exc)
            raise RefusedRequest(f"refused: {exc}") from exc

    import urllib3
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
    from urllib3.util import connection as urllib3_connection

    class CheckedConnection(urllib3.connection.HTTPConnection):
        """Opens its socket to the address `UrlPolicy.vet_connection` checked (pinned: no second lookup)."""

        def _new_conn(self) -> Any:
            try:
                addresses = policy.vet_connection(self._dns_host, self.port)
            except UnsafeURL as exc:
                refusals.append(exc)
                logger.warning("refused to connect to %s: %s", self._dns_host, exc)
                raise RefusedRequest(f"refused: {exc}") from exc
            error: OSError | None = None
            for address in addresses:  # in the resolver's order, like socket.create_connection
                try:
                    return urllib3_connection.create_connection(
                        (address, self.port), self.timeout, source_address=self.source_address,
                        socket_options=self.socket_options)
                except TimeoutError as exc:
                    error = ConnectTimeoutError(self, f"Connection to {self.host} timed out")
                    error.__cause__ = exc
                except OSError as exc:
                    error = exc
            if isinstance(error, ConnectTimeoutError):
                raise error
            raise NewConnectionError(self, f"Failed to establish a new connection: {error}") from error

    class CheckedHTTPSConnection(CheckedConnection, urllib3.connection.HTTPSConnection):
        pass

    class CheckedHTTPPool(urllib3.HTTPConnectionPool):
        ConnectionCls = CheckedConnection

    class CheckedHTTPSPool(urllib3.HTTPSConnectionPool):
        ConnectionCls = CheckedHTTPSConnection

    class GuardedSession(RequestsSession):
        def rebuild_method(self, prepared_request: Any, response: Any) -> None:
            super().rebuild_method(prepared_request, response)
            check(prepared_request.url)  # a redirect hop, before it is requested

    class VigilGuardedRH(RequestsRH):
        RH_NAME = "vigil-guarded-requests"

        def _create_instance(self, cookiejar: Any, legacy_ssl_support: Any = None) -> Any:
            session = super()._create_instance(cookiejar, legacy_ssl_support)
            session.__class__ = GuardedSession
            for adapter in session.adapters.values():
                # direct connections only: through a proxy, the proxy resolves the name
                adapter.poolmanager.pool_classes_by_scheme = {"http": CheckedHTTPPool, "https": CheckedHTTPSPool}
            return session

        def _send(self, request: Any) -> Any:
            check(request.url)
            return super()._send(request)

    return VigilGuardedRH


def _make_guarded_class() -> type:
    from yt_dlp import YoutubeDL

    class _Guarded(YoutubeDL):
        """A YoutubeDL whose every HTTP request passes a UrlPolicy; see the module docstring."""

        def __init__(self, params: dict[str, Any], *, policy: UrlPolicy) -> None:
            self.policy = policy
            self.refusals: list[UnsafeURL] = []
            self.capture_url: str | None = None  # keep this page's HTML as the extractor reads it...
            self.captured_page: bytes | None = None  # ...here, so its metadata needs no second request
            self.captured_type = ""  # and its Content-Type (the charset)
            super().__init__(params)

        def urlopen(self, req: Any) -> Any:
            from yt_dlp.networking.common import Response

            response = super().urlopen(req)
            url = req if isinstance(req, str) else getattr(req, "url", None)
            if (self.capture_url is None or url != self.capture_url
                    or "html" not in str(response.headers.get("Content-Type") or "")):
                return response
            head = response.read(CAPTURE_BYTES + 1)
            if len(head) <= CAPTURE_BYTES:
                self.captured_page, self.captured_type = head, str(response.headers.get("Content-Type"))
            return Response(_Replay(head, response), url=response.url, headers=response.headers,
                            status=response.status, reason=response.reason)

        def build_request_director(self, handlers: Any, preferences: Any = None) -> Any:
            return super().build_request_director([_guarded_handler(self.policy, self.refusals)], None)

    return _Guarded


_GUARDED: type | None = None


def GuardedYoutubeDL(params: dict[str, Any], *, policy: UrlPolicy) -> Any:  # noqa: N802 - behaves like a class
    """A `yt_dlp.YoutubeDL` whose traffic passes ``policy`` (yt-dlp is imported on first use)."""
    global _GUARDED
    if _GUARDED is None:
        _GUARDED = _make_guarded_class()
    return _GUARDED(params, policy=policy)


def ytdlp_options(settings: Settings, **extra: Any) -> dict[str, Any]:
    """Options shared by discovery and download: quiet, timeouts, no external downloaders, our logger."""
    import imageio_ffmpeg

    options: dict[str, Any] = {
        "quiet": True,
        "no_warnings": False,
        "noprogress": True,
        "logger": _YtdlpLogger(),
        "socket_timeout": settings.crawl_socket_timeout_s,
        "retries": 0,  # retries are ours (tenacity), with backoff and a clear record
        "fragment_retries": 2,
        "extractor_retries": 0,
        "noplaylist": True,
        "ignoreerrors": False,
        "ffmpeg_location": imageio_ffmpeg.get_ffmpeg_exe(),
        "hls_prefer_native": True,  # fragments go through our guarded handler, not an ffmpeg subprocess
        "external_downloader": {},
        "enable_file_urls": False,
        "cachedir": False,
        "color": {"stdout": "no_color", "stderr": "no_color"},
    }
    if settings.ytdlp_extractors:
        options["allowed_extractors"] = list(settings.ytdlp_extractors)
    if settings.crawl_sleep_requests_s:
        options["sleep_interval_requests"] = settings.crawl_sleep_requests_s
    if settings.ytdlp_cookies_file:
        options["cookiefile"] = str(settings.ytdlp_cookies_file)
    if settings.ytdlp_proxy is not None:
        options["proxy"] = settings.ytdlp_proxy.get_secret_value()
    options.update(extra)
    return options


def unsmuggle(url: str) -> str:
    """A URL without yt-dlp's ``#__youtubedl_smuggle=`` fragment (feeds add one to their entries)."""
    from yt_dlp.utils import unsmuggle_url

    return unsmuggle_url(url)[0]


def translate_ytdlp_error(exc: BaseException, *, url: str, refusals: list[UnsafeURL] | None = None) -> Exception:
    """The most specific Vigil error for a yt-dlp failure (DownloadRefused for policy, DownloadFailed otherwise)."""
    if isinstance(exc, DownloadRefused | DownloadFailed):
        return exc
    cause: BaseException | None = exc
    while cause is not None:  # our hooks' errors come back wrapped in yt-dlp's
        if isinstance(cause, DownloadRefused | DownloadFailed):
            return cause
        cause = cause.__cause__ or getattr(cause, "exc_info", (None, None))[1]
    if refusals:
        return refusals[-1]
    text = re.sub(r"^ERROR:\s*", "", str(exc)).strip()
    text = re.sub(r"^\[[^\]]+\]\s*", "", text)
    match = _HTTP_STATUS.search(text)
    if match:
        status = int(match.group(1))
        what = {404: "page not found", 410: "video removed", 403: "access denied", 401: "login required",
                429: "rate limited by the platform"}.get(status, "platform error")
        return DownloadFailed(f"{what} (HTTP {status})", url=url, transient=status in TRANSIENT_STATUS)
    lowered = text.lower()
    network = (("connection refused", "server unreachable (connection refused)"),
               ("failed to establish a new connection", "server unreachable"),
               ("name or service not known", "host not found"),
               ("temporary failure in name resolution", "host not found"),
               ("timed out", "network timeout"), ("timeout", "network timeout"),
               ("connection reset", "connection dropped by the server"),
               ("remote end closed", "connection dropped by the server"),
               ("incompleteread", "connection dropped by the server"),
               ("transporterror", "network error"))
    for needle, reason in network:
        if needle in lowered:
            return DownloadFailed(reason, url=url, transient=True)
    if "unsupported url" in lowered or "no video formats found" in lowered:
        return DownloadFailed(f"no video found at this URL ({_short(text)})", url=url)
    if any(s in lowered for s in ("sign in", "login", "private video", "members-only")):
        return DownloadFailed(f"platform requires a login: {_short(text)}", url=url)
    return DownloadFailed(_short(text) or type(exc).__name__, url=url)


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, DownloadFailed) and exc.transient


def transient_retrying(settings: Settings, what: str) -> Any:
    """A tenacity ``Retrying`` for transient DownloadFailed errors: exponential backoff, then the last error."""
    from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

    def log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        logger.warning("%s failed (try %d of %d): %s; trying again", what, state.attempt_number,
                       settings.crawl_download_attempts, exc)

    return Retrying(
        stop=stop_after_attempt(settings.crawl_download_attempts),
        wait=wait_exponential(multiplier=settings.crawl_retry_wait_s, max=max(settings.crawl_retry_wait_s * 16, 1)),
        retry=retry_if_exception(_transient),
        before_sleep=log_retry,
        reraise=True,
    )
