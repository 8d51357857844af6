"""`Candidate`: one video the crawl found, as it moves through discovery, relevance, ranking and download.

A candidate is JSON-friendly (Airflow passes it between tasks as XCom). ``status`` stays None while the video is
still in the running; once set (queued, skipped, refused, failed) the ``status_reason`` says why in words.
"""
from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from .._time import utcnow

__all__ = ["Candidate", "Status", "url_uid", "utcnow"]

Status = Literal["queued", "skipped", "refused", "failed"]


def url_uid(url: str) -> str:
    """A stable uid for a URL whose video id is unknown (the page failed or was refused before extraction)."""
    return "url:" + hashlib.sha256(url.encode("utf-8")).hexdigest()[:24]


class Candidate(BaseModel):
    """A discovered video and what the crawl decided about it. Counters the platform withholds are None, never 0."""

    model_config = ConfigDict(extra="ignore", validate_assignment=True)

    video_uid: str
    url: str
    platform: str | None = None
    platform_id: str | None = None
    title: str | None = None
    description: str | None = None
    subtitles: str | None = Field(None, description="subtitle text, trimmed, when the platform offers it")
    channel: str | None = None
    channel_id: str | None = None
    channel_url: str | None = None
    published: datetime | None = None
    views: int | None = None
    likes: int | None = None
    comments: int | None = None
    reposts: int | None = None
    duration_s: float | None = None
    filesize: int | None = Field(None, description="bytes the platform declares (exact or approximate)")
    media_urls: list[str] = Field(default_factory=list, description="URLs of the formats yt-dlp would fetch")
    language: str | None = None
    tags: list[str] = Field(default_factory=list)
    watchlist: str | None = None
    entry_kind: str | None = None
    entry_target: str | None = None
    discovered_at: datetime = Field(default_factory=utcnow)
    first_seen: datetime | None = None

    relevance_score: float | None = None
    relevance_reason: str | None = None
    views_per_hour: float | None = None
    age_h: float | None = None
    channel_ratio: float | None = None  # views/h ÷ the channel's usual views/h: a ranking signal only
    rank_score: float | None = None
    rank_reason: str | None = None
    rank: int | None = None

    status: Status | None = None
    status_reason: str | None = None
    media_sha256: str | None = None
    media_uri: str | None = None
    media_bytes: int | None = None
    media_duration_s: float | None = None
    media_width: int | None = None
    media_height: int | None = None
    timings_ms: dict[str, float] = Field(default_factory=dict)

    @property
    def decided(self) -> bool:
        return self.status is not None

    @property
    def domain(self) -> str | None:
        return urlsplit(self.url).hostname

    def decide(self, status: Status, reason: str) -> Candidate:
        """Set the final status; ``reason`` without the status prefix ("not political (0.12 < 0.35)")."""
        self.status = status
        self.status_reason = f"{status}: {reason}"
        return self

    def to_xcom(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
