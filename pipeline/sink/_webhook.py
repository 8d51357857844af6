"""A submission's webhook, called when the sink has written the video's scored result.

    Bulk ─ update vigil-videos/<uid> acknowledged (not a noop), the video has submission.webhook ─▶ SubmissionWebhooks
         ─▶ a background thread ─▶ URL policy (the crawler's address rules) ─▶ POST JSON, pinned to the checked address

The payload is small: ``{"video_uid", "verdict", "score", "url"}`` (``url`` = the video's page in the console,
``VIGIL_CONSOLE_PUBLIC_URL`` + ``/videos/<uid>``). The sink never waits for it and never fails because of it: posts
run in a small thread pool with ``VIGIL_SUBMISSION_WEBHOOK_TIMEOUT_S`` per request, at most ``MAX_PENDING`` wait
(more are dropped), every failure is logged (the host only: a webhook URL may carry a token) and counted
(``vigil_webhooks{component="sink",outcome}``, and on the object for tests). One try per scored result: redirects
are not followed, a result written again unchanged (a redelivery: Elasticsearch answers ``noop``) posts nothing.

The URL goes through the crawler's `UrlPolicy` address rules: http(s) only, no credentials in the URL, no host that
resolves to a loopback, private, link-local or otherwise non-public address unless ``VIGIL_ALLOWED_PRIVATE_NETWORKS``
covers it, checked again when the socket opens and the socket connects to the address checked (no DNS rebinding).
The crawl's domain allowlist names platforms to crawl, not receivers, so it does not apply here.
"""
from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote, urlsplit

from pipeline._observe import ERRORS, WEBHOOKS
from pipeline._settings import Settings

__all__ = ["SubmissionWebhooks", "webhook_payload", "MAX_PENDING"]

logger = logging.getLogger(__name__)

MAX_PENDING = 200
USER_AGENT = "vigil-sink-webhook/1"


def console_base(settings: Settings) -> str:
    """The console's address as users reach it: VIGIL_CONSOLE_PUBLIC_URL, else its host and port."""
    if settings.console_public_url:
        return settings.console_public_url.rstrip("/")
    host = settings.console_host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.console_port}"


def webhook_payload(video: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    """What the webhook receives for a scored video (the partial document the sink wrote)."""
    uid = str(video.get("video_uid"))
    fused = video.get("fused") or {}
    return {"video_uid": uid, "verdict": fused.get("verdict"), "score": fused.get("score"),
            "url": f"{console_base(settings)}/videos/{quote(uid, safe=':')}"}


def _host(url: str) -> str:
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    except ValueError:
        return "(malformed URL)"


class SubmissionWebhooks:
    """Posts in the background; ``posted``, ``failed`` and ``dropped`` count the outcomes."""

    def __init__(self, settings: Settings, *, max_workers: int = 2, max_pending: int = MAX_PENDING) -> None:
        self.settings = settings
        self.timeout_s = settings.submission_webhook_timeout_s
        try:  # the crawler's address rules (the worker side has the crawl extra); its domain allowlist is about
            from pipeline.crawl._safety import UrlPolicy  # platforms, not receivers

            self.policy: Any = UrlPolicy.from_settings(settings.model_copy(update={"domain_allowlist": []}))
        except ImportError as exc:  # no policy, no posts: each one fails (logged, counted); the sink runs on
            logger.warning("submission webhooks disabled: the crawler's URL policy cannot be imported (%s)", exc)
            self.policy = None
        self.max_pending = max_pending
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="vigil-webhook")
        self._lock = threading.Lock()
        self._pending = 0
        self.posted = self.failed = self.dropped = 0

    def notify(self, url: str, video: Mapping[str, Any]) -> None:
        """Queue one post of ``video``'s outcome to ``url``; returns at once."""
        payload = webhook_payload(video, self.settings)
        with self._lock:
            if self._pending >= self.max_pending:
                self.dropped += 1
                WEBHOOKS.labels("sink", "dropped").inc()
                logger.warning("submission webhook %s for %s dropped: %d posts already waiting", _host(url),
                               payload["video_uid"], self._pending)
                return
            self._pending += 1
        try:
            self._pool.submit(self._post, url, payload)
        except RuntimeError:  # the pool is shut down (the sink is stopping)
            with self._lock:
                self._pending -= 1
                self.dropped += 1
            WEBHOOKS.labels("sink", "dropped").inc()

    def _post(self, url: str, payload: dict[str, Any]) -> None:
        try:
            status = self.post(url, payload)
            if not 200 <= status < 300:
                raise OSError(f"HTTP {status}")
        except Exception as exc:  # noqa: BLE001 - whatever goes wrong, the sink goes on; logged and counted
            with self._lock:
                self.failed += 1
            kind = type(exc).__name__
            WEBHOOKS.labels("sink", "failed").inc()
            ERRORS.labels("sink", kind, "webhook").inc()
            logger.warning("submission webhook %s for %s failed: %s: %s", _host(url), payload["video_uid"], kind,
                           str(exc)[:300])
        else:
            with self._lock:
                self.posted += 1
            WEBHOOKS.labels("sink", "posted").inc()
            logger.info("submission webhook %s for %s: HTTP %d", _host(url), payload["video_uid"], status)
        finally:
            with self._lock:
                self._pending -= 1

    def post(self, url: str, payload: Mapping[str, Any]) -> int:
        """One POST of ``payload`` as JSON (in this thread); the answer's status. UnsafeURL when the policy refuses."""
        if self.policy is None:
            raise RuntimeError("the crawler's URL policy is not installed here (pip install 'vigil[crawl]')")
        self.policy.check(url)
        parts = urlsplit(url)
        assert parts.hostname is not None  # the policy checked it
        policy, timeout = self.policy, self.timeout_s

        def pinned(host: str, port: int) -> socket.socket:
            addresses = policy.vet_connection(host, port)  # again now, and connect to what was checked
            return socket.create_connection((addresses[0], port), timeout=timeout)

        class Plain(http.client.HTTPConnection):
            def connect(self) -> None:
                self.sock = pinned(self.host, self.port)

        class Secure(http.client.HTTPSConnection):
            def connect(self) -> None:
                self.sock = self._context.wrap_socket(pinned(self.host, self.port),  # type: ignore[attr-defined]
                                                      server_hostname=self.host)

        kind = Secure if parts.scheme.lower() == "https" else Plain
        connection = kind(parts.hostname, parts.port, timeout=timeout)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        body = json.dumps(dict(payload)).encode()
        try:
            connection.request("POST", path, body=body, headers={
                "Content-Type": "application/json", "User-Agent": USER_AGENT, "Content-Length": str(len(body))})
            response = connection.getresponse()
            response.read(64 << 10)
            return response.status
        finally:
            connection.close()

    def join(self, timeout: float = 10.0) -> bool:
        """Wait up to ``timeout`` for the posts waiting now (tests, shutdown); True when none is left."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self._pending == 0:
                    return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
