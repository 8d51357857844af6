"""Message schemas: what goes on the wire, and every way a message can be poison."""
from __future__ import annotations

import base64
import json

import pytest

from pipeline import (
    DeadLetter,
    JobMessage,
    MessageError,
    ResultMessage,
    SourceMetadata,
    decode,
    encode,
)

SHA = "a" * 64


def job() -> JobMessage:
    return JobMessage(video_uid="youtube:abc123", media_uri="file:///store/aa/" + SHA + ".mp4", media_sha256=SHA,
                      source=SourceMetadata(platform="youtube", url="https://www.youtube.com/watch?v=abc123",
                                            title="Debate clip", views=1200, engagement_note="kept"))


def test_job_round_trip_uses_the_wire_name_schema() -> None:
    sent = job()
    raw = encode(sent)
    on_wire = json.loads(raw)
    assert on_wire["schema"] == "vigil.job/1"
    assert on_wire["source"]["engagement_note"] == "kept"  # platform extras survive
    assert decode(raw, JobMessage) == sent


def test_result_accepts_the_design_example() -> None:
    example = {
        "schema": "vigil.result/1", "video_uid": "youtube:abc123", "media_sha256": SHA, "suite_version": "1.0.0",
        "duration_s": 31.2,
        "fused": {"score": 0.83, "verdict": "likely_manipulated", "reasons": ["mouth lags speech by 200 ms"]},
        "detectors": {
            "lipsync": {"version": "1", "applicable": True, "score": 0.91,
                        "timeline": [{"start_s": 0.0, "end_s": 2.0, "score": 0.88}],
                        "evidence": {"offset_ms": -200, "confidence": 0.7}},
            "spectral": {"version": "1", "applicable": True, "score": 0.12, "timeline": [], "evidence": {}}},
        "timings_ms": {"download": 0, "decode": 410, "faces": 120, "lipsync": 35},
    }
    result = decode(json.dumps(example), ResultMessage)
    assert result.detectors["lipsync"].evidence["offset_ms"] == -200
    assert json.loads(encode(result))["fused"]["verdict"] == "likely_manipulated"


@pytest.mark.parametrize(("raw", "match"), [
    (b"", "not JSON"),
    (b"{not json", "not JSON"),
    (b"\xff\xfe\x00garbage", "not JSON"),
    (b"[1, 2]", "JSON object"),
    (json.dumps({"schema": "vigil.job/2"}).encode(), "vigil.job/1"),
    (json.dumps({"video_uid": "x:y"}).encode(), "schema is None"),
])
def test_malformed_messages_raise_message_error(raw: bytes, match: str) -> None:
    with pytest.raises(MessageError, match=match) as info:
        decode(raw, JobMessage)
    assert info.value.raw == raw


@pytest.mark.parametrize(("field", "value", "match"), [
    ("media_sha256", "not-a-hash", "media_sha256"),
    ("video_uid", "no-platform-prefix", "video_uid"),
    ("attempt", 0, "attempt"),
    ("surprise", 1, "surprise"),
])
def test_invalid_fields_are_named(field: str, value: object, match: str) -> None:
    data = json.loads(encode(job()))
    data[field] = value
    with pytest.raises(MessageError, match=match):
        decode(json.dumps(data).encode(), JobMessage)


def test_dead_letter_view_keeps_binary_input_as_base64() -> None:
    from types import SimpleNamespace

    from pipeline.consume import Record, dead_letter_headers, parse_dead_letter

    raw = b"\x00\x01binary\xff"
    headers = dead_letter_headers(Record("vigil.jobs", 3, 42, b"youtube:abc", raw), MessageError("not JSON"),
                                  stage="decode", attempts=1, component="worker")
    letter = parse_dead_letter(SimpleNamespace(topic="vigil.dlq", partition=0, offset=1, key=b"youtube:abc",
                                               value=raw, headers=headers, timestamp=None))
    assert letter.original_encoding == "base64"
    assert base64.b64decode(letter.original_value) == raw == letter.original_bytes()
    assert letter.error_class == "MessageError"
    back = decode(encode(letter), DeadLetter)  # the view itself is a schema-checked JSON message (vigil dlq --json)
    assert back.original_offset == 42 and back.original_key == "youtube:abc" and back.schema_ == "vigil.dlq/2"


def test_dlq_since_accepts_ages_and_iso_times() -> None:
    from datetime import UTC, datetime

    import typer

    from pipeline.cli.dlq import parse_since

    assert parse_since(None) is None
    age = datetime.now(UTC) - parse_since("30m")
    assert 1790 < age.total_seconds() < 1810
    assert parse_since("2026-12-01T08:00Z") == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    with pytest.raises(typer.BadParameter):
        parse_since("yesterday")
