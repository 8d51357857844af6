"""Kafka message schemas, shared by every producer and consumer (JSON; the ``schema`` field is versioned).

``vigil.job/1``     on ``vigil.jobs``:    one video to analyse, its media by reference into the media store
``vigil.result/1``  on ``vigil.results``: the detector suite's result for one job (also what `vigil scan --json` writes)
``vigil.dlq/2``     on ``vigil.dlq``:     the original message, unchanged, with why, where and how often in headers

Decoding never raises anything but MessageError, which marks poison input (it goes to the dead-letter topic).
"""
from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ._exceptions import MessageError
from ._time import utcnow

__all__ = [
    "FLAG_THRESHOLD",
    "JOB_SCHEMA", "RESULT_SCHEMA", "DLQ_SCHEMA", "VERDICTS",
    "SourceMetadata", "JobMessage", "TimelineWindow", "DetectorOutput", "FusedScore", "Segment", "ResultMessage", "RANKS",
    "DeadLetter", "decode", "encode",
]

JOB_SCHEMA = "vigil.job/1"
RESULT_SCHEMA = "vigil.result/1"
DLQ_SCHEMA = "vigil.dlq/2"
VERDICTS = ("likely_manipulated", "suspicious", "no_signal", "inconclusive")
#: a detector flags a clip or a stretch at a score of at least this (DESIGN.md): the contract's line, not a tuned value
FLAG_THRESHOLD = 0.5

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
VideoUid = Annotated[str, Field(pattern=r"^[a-z0-9_]+:.+$", max_length=512)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceMetadata(_Message):
    """Where a video came from and what the platform said about it when it was queued."""

    model_config = ConfigDict(extra="allow", frozen=True)  # platforms add fields; keep them

    platform: str
    url: str
    title: str | None = None
    channel: str | None = None
    channel_id: str | None = None
    published: datetime | None = None
    views: int | None = None
    likes: int | None = None
    comments: int | None = None
    watchlist: str | None = None
    tags: list[str] = Field(default_factory=list)


class JobMessage(_Message):
    """``vigil.job/1``: analyse the media at ``media_uri`` (sha256 ``media_sha256``) for ``video_uid``."""

    schema_: Literal["vigil.job/1"] = Field(JOB_SCHEMA, alias="schema")
    video_uid: VideoUid
    media_uri: str = Field(min_length=1, max_length=4096)
    media_sha256: Sha256
    source: SourceMetadata
    detectors: list[str] | None = Field(None, description="registry names to run; None = the configured suite")
    attempt: int = Field(1, ge=1)
    queued_at: datetime = Field(default_factory=utcnow)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class TimelineWindow(_Message):
    start_s: float = Field(ge=0)
    end_s: float = Field(ge=0)
    score: Probability


RANKS = ("high", "uncertain", "low", "not_applicable")


class DetectorOutput(_Message):
    """One detector's result inside ``vigil.result/1``. ``rank`` places the score against the checkpoint's own
    thresholds (high / uncertain / low; not_applicable when the detector could not judge)."""

    version: str
    applicable: bool
    score: Probability | None = None
    rank: Literal["high", "uncertain", "low", "not_applicable"] | None = None
    timeline: list[TimelineWindow] = Field(default_factory=list)
    evidence: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None


class FusedScore(_Message):
    """The suite's one score and verdict; ``timeline`` is the fused score per window across detectors."""

    score: Probability | None
    verdict: Literal["likely_manipulated", "suspicious", "no_signal", "inconclusive"]
    reasons: list[str] = Field(default_factory=list)
    timeline: list[TimelineWindow] = Field(default_factory=list)


class Segment(_Message):
    """A stretch of the clip judged manipulated (a spliced sentence, a stretch out of sync) and who found it."""

    start_s: float = Field(ge=0)
    end_s: float = Field(ge=0)
    score: Probability
    detectors: list[str] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)


class ResultMessage(_Message):
    """``vigil.result/1``: the suite's result for one video file."""

    schema_: Literal["vigil.result/1"] = Field(RESULT_SCHEMA, alias="schema")
    video_uid: VideoUid
    media_sha256: Sha256
    suite_version: str
    duration_s: float = Field(ge=0)
    fused: FusedScore
    detectors: dict[str, DetectorOutput]
    segments: list[Segment] = Field(default_factory=list)
    annotations: dict[str, Any] = Field(
        default_factory=dict,
        description="fields detectors contribute to the video document, by top-level name (persons, provenance)")
    timings_ms: dict[str, float] = Field(default_factory=dict)
    evidence_uris: list[str] = Field(default_factory=list)
    source: SourceMetadata | None = None
    produced_at: datetime = Field(default_factory=utcnow)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class DeadLetter(_Message):
    """``vigil.dlq/2``: what a dead-letter record says. On the topic the record is the original message (key and
    value bytes unchanged) with the error in ``__connect.errors.*`` headers (pipeline.consume); this model is the
    parsed view ``vigil dlq`` shows: the original value as text when it is UTF-8, else base64."""

    schema_: Literal["vigil.dlq/2"] = Field(DLQ_SCHEMA, alias="schema")
    dlq_topic: str | None = None
    dlq_partition: int | None = None
    dlq_offset: int | None = None
    original_topic: str
    original_partition: int | None = None
    original_offset: int | None = None
    original_key: str | None = None
    original_value: str
    original_encoding: Literal["utf-8", "base64"] = "utf-8"
    error_class: str
    error_message: str
    stage: str
    attempts: int = Field(1, ge=1)
    component: str | None = None
    replayed_from: str | None = None
    failed_at: datetime = Field(default_factory=utcnow)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("error_message")
    @classmethod
    def _bounded(cls, value: str) -> str:
        return value[:4000]

    def original_bytes(self) -> bytes:
        return base64.b64decode(self.original_value) if self.original_encoding == "base64" else \
            self.original_value.encode("utf-8")


M = TypeVar("M", bound=BaseModel)


def encode(message: BaseModel) -> bytes:
    """JSON bytes with the ``schema`` field spelled as on the wire."""
    return message.model_dump_json(by_alias=True, exclude_none=False).encode("utf-8")


def decode(raw: bytes | str, model: type[M]) -> M:
    """Parse and validate one message; any problem is a MessageError naming it."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MessageError(f"not JSON: {exc}", raw=raw if isinstance(raw, bytes) else raw.encode()) from exc
    if not isinstance(data, dict):
        raise MessageError(f"expected a JSON object, got {type(data).__name__}",
                           raw=raw if isinstance(raw, bytes) else raw.encode())
    expected = model.model_fields["schema_"].default if "schema_" in model.model_fields else None
    if expected and data.get("schema") != expected:
        raise MessageError(f"schema is {data.get('schema')!r}, this consumer reads {expected!r}",
                           raw=raw if isinstance(raw, bytes) else raw.encode())
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
        raise MessageError(f"invalid {expected or model.__name__}: {problems}",
                           raw=raw if isinstance(raw, bytes) else raw.encode()) from exc
