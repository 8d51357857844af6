"""Documents the sink writes: one ``vigil-detections`` document per (media_sha256, suite_version) and a partial
update of the video's latest score in ``vigil-videos`` (doc_as_upsert: no scripts needed)."""
from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from pipeline._messages import ResultMessage
from pipeline._settings import Settings

__all__ = ["detection_id", "detection_doc", "detection_json", "video_update", "bulk_actions", "bulk_lines",
           "BulkKey"]

BulkKey = tuple[str, str, str]  # (op, index, id): how a bulk response item is matched to its action


def detection_id(media_sha256: str, suite_version: str) -> str:
    """The detection document's id: sha256 hex of ``"<media_sha256>:<suite_version>"`` (re-processing is idempotent)."""
    return hashlib.sha256(f"{media_sha256}:{suite_version}".encode()).hexdigest()


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


def detection_doc(result: ResultMessage, *, now: datetime | None = None) -> dict[str, Any]:
    """The ``vigil-detections`` document of one result (fields per infra/elasticsearch/index/detections.json)."""
    body = result.model_dump(mode="json", by_alias=True, exclude={"schema_"})
    body.pop("schema", None)
    produced = _iso(result.produced_at)
    body.pop("produced_at", None)
    body.update({
        "@timestamp": produced,
        "detection_id": detection_id(result.media_sha256, result.suite_version),
        "event": {"created": _iso(now or datetime.now(UTC)), "dataset": "vigil.detections"},
    })
    return body


def detection_json(result: ResultMessage, *, now: datetime | None = None) -> str:
    """``detection_doc`` serialised: the result's own JSON (pydantic's serialiser) with the index's fields in front,
    so the bulk request does not serialise the largest part of every document again."""
    head = json.dumps({
        "@timestamp": _iso(result.produced_at),
        "detection_id": detection_id(result.media_sha256, result.suite_version),
        "event": {"created": _iso(now or datetime.now(UTC)), "dataset": "vigil.detections"},
    })
    body = result.model_dump_json(by_alias=True, exclude={"schema_", "produced_at"})
    return head[:-1] + ("," + body[1:] if body != "{}" else "}")


# fields detectors contribute to the video document through the result's ``annotations`` (mapped in videos.json)
VIDEO_ANNOTATIONS = ("persons", "provenance")


def status_reason(result: ResultMessage) -> str:
    """``scored: <verdict>``, naming every detector that failed on this video so a gap never reads as no signal."""
    failed = [f"{name} ({out.error})" for name, out in sorted(result.detectors.items()) if out.error]
    reason = f"scored: {result.fused.verdict}"
    if failed:
        reason += "; detector failed: " + "; ".join(failed)
    return reason[:1024]


def video_update(result: ResultMessage) -> dict[str, Any]:
    """The partial ``vigil-videos`` document: latest fused score, verdict, reasons, suite, status, what the
    detectors found about the people shown and the file's provenance, and the manipulated stretches."""
    doc: dict[str, Any] = {
        "video_uid": result.video_uid,
        "fused": result.fused.model_dump(mode="json", exclude={"timeline"}),
        "suite_version": result.suite_version,
        "scored_at": _iso(result.produced_at),
        "detection_id": detection_id(result.media_sha256, result.suite_version),
        "status": "scored",
        "status_reason": status_reason(result),
        "detectors_failed": sorted(name for name, out in result.detectors.items() if out.error),
        "segments": [s.model_dump(mode="json") for s in result.segments],
        "media": {"sha256": result.media_sha256, "duration_s": result.duration_s},
    }
    for name in VIDEO_ANNOTATIONS:
        if name in result.annotations:
            doc[name] = result.annotations[name]
    return doc


def bulk_actions(result: ResultMessage, settings: Settings) -> list[dict[str, Any]]:
    """The two bulk actions of one result: index the detection, upsert the video's latest score."""
    return [
        {"_op_type": "index", "_index": settings.index("detections"),
         "_id": detection_id(result.media_sha256, result.suite_version), "_source": detection_json(result)},
        {"_op_type": "update", "_index": settings.index("videos"), "_id": result.video_uid,
         "doc": video_update(result), "doc_as_upsert": True},
    ]


# what the videos update answers with (its ``get._source``): a submission's webhook, called once the result is written
RETURNED = {"includes": ["submission.webhook"]}


def bulk_lines(result: ResultMessage, settings: Settings) -> list[tuple[BulkKey, bytes]]:
    """The two actions of ``bulk_actions`` as NDJSON bulk lines (header + body), ready for ``Elasticsearch.bulk``;
    the update asks for the video's ``submission.webhook`` back (``RETURNED``)."""
    detections, videos = settings.index("detections"), settings.index("videos")
    doc_id = detection_id(result.media_sha256, result.suite_version)
    index_head = json.dumps({"index": {"_index": detections, "_id": doc_id}})
    update_head = json.dumps({"update": {"_index": videos, "_id": result.video_uid}})
    update_body = json.dumps({"doc": video_update(result), "doc_as_upsert": True, "_source": RETURNED},
                             ensure_ascii=False)
    return [
        (("index", detections, doc_id), f"{index_head}\n{detection_json(result)}\n".encode()),
        (("update", videos, result.video_uid), f"{update_head}\n{update_body}\n".encode()),
    ]
