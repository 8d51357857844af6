"""Posting alerts to Slack-compatible webhooks: ``{"text": …, "blocks": […]}`` JSON, retried on transient errors.

The fallback ``text`` is what notifications and non-Slack receivers show; ``blocks`` are Slack's Block Kit (a header,
the reasons, and a context line with the rule, the video's uid and its link). Webhook URLs are secrets (Slack's
carry a token): they are never logged, only their host. Titles, reasons and uids are platform text: escaped for Slack
(``& < >``, so no ``<!channel>`` pings or forged links) with control characters and bidi overrides made visible;
the alert document itself keeps them intact.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from .._text import printable, slack_escape

__all__ = ["slack_payload", "post_webhook", "WebhookError", "Delivery", "TRANSIENT_STATUS"]

logger = logging.getLogger(__name__)

TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}
SEVERITY_MARK = {"low": ":information_source:", "medium": ":warning:", "high": ":rotating_light:",
                 "critical": ":rotating_light:"}


class WebhookError(Exception):
    """A webhook did not take the alert; ``transient`` says whether a retry may help."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class Delivery:
    """The outcome of posting one alert to one webhook (``target`` is the host, never the secret URL)."""

    target: str
    ok: bool
    attempts: int
    error: str | None = None


def slack_payload(alert: Mapping[str, Any]) -> dict[str, Any]:
    """The Slack-compatible message of one alert document."""
    rule = alert.get("rule") or {}
    title = alert.get("title") or alert.get("video_uid") or "a video"
    url = (alert.get("url") or {}).get("full")
    mark = SEVERITY_MARK.get(rule.get("severity", "high"), ":warning:")
    reasons = [str(r) for r in alert.get("reasons") or []]
    headline = f"{rule.get('name', rule.get('id', 'Vigil alert'))}: {title}"
    link_url = _link_url(url)
    text = (f"{mark} {_escape(headline)}" + (f" — {_escape(url)}" if url else "")
            + ("\n• " + "\n• ".join(_escape(r) for r in reasons) if reasons else ""))
    link = f"<{link_url}|{_escape(title)}>" if link_url else _escape(title)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": printable(headline)[:150], "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{mark} *{link}*\n" + "\n".join(
            f"• {_escape(r)}" for r in reasons)}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": (
            f"rule `{_escape(rule.get('id'))}` · video `{_escape(alert.get('video_uid'))}` · "
            f"alert `{_escape(alert.get('alert_id'))}`")}]},
    ]
    return {"text": text, "blocks": blocks}


def _escape(text: Any) -> str:
    """Platform text for Slack's mrkdwn: controls and bidi overrides visible, ``& < >`` escaped."""
    return slack_escape(text)


def _link_url(url: str | None) -> str | None:
    """A URL fit for a Slack ``<url|label>`` link (http(s), no ``|`` or ``>`` to break out of it), else None."""
    if not url or urlsplit(url).scheme not in ("http", "https") or any(c in url for c in "|<> ") or (
            printable(url) != url):
        return None
    return url.replace("&", "&amp;")


def _host(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def post_webhook(url: str, payload: Mapping[str, Any], *, client: httpx.Client, attempts: int = 3,
                 backoff_s: float = 0.5) -> Delivery:
    """POST the payload as JSON; retries connection errors, timeouts, 429 and 5xx with exponential backoff."""
    target = _host(url)
    tries = 0

    def send() -> None:
        nonlocal tries
        tries += 1
        try:
            response = client.post(url, json=dict(payload))
        except httpx.TransportError as exc:
            raise WebhookError(f"{type(exc).__name__}: {exc}", transient=True) from exc
        if response.status_code >= 400:
            raise WebhookError(f"HTTP {response.status_code}", transient=response.status_code in TRANSIENT_STATUS)

    retrying = Retrying(stop=stop_after_attempt(attempts), wait=wait_exponential(multiplier=backoff_s, max=30),
                        retry=retry_if_exception(lambda e: isinstance(e, WebhookError) and e.transient),
                        reraise=True)
    try:
        retrying(send)
    except (WebhookError, RetryError) as exc:
        logger.warning("webhook %s did not take the alert after %d tries: %s", target, tries, exc)
        return Delivery(target, False, tries, str(exc))
    return Delivery(target, True, tries)


def deliver_all(urls: Sequence[str], payload: Mapping[str, Any], *, client: httpx.Client, attempts: int,
                backoff_s: float = 0.5) -> list[Delivery]:
    return [post_webhook(u, payload, client=client, attempts=attempts, backoff_s=backoff_s) for u in urls]
