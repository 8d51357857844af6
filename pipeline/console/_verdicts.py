"""Analyst verdicts: one ``vigil-verdicts`` document per verdict (who, when, on which file and suite version, with
the scores the analyst saw), and the latest copied onto the video as ``analyst.*``, where it outranks the models in
the console's queue and in alerts (pipeline/alerts)."""
from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from elasticsearch import Elasticsearch

from .._elasticsearch import es_errors
from .._settings import Settings
from ._exceptions import ConsoleError
from ._queries import ANALYST_VERDICTS

__all__ = ["record_verdict", "verdict_document", "MAX_NOTE"]

MAX_NOTE = 4000


def verdict_document(video: Mapping[str, Any], detection: Mapping[str, Any] | None, *, verdict: str, note: str,
                     analyst: str, now: datetime | None = None) -> dict[str, Any]:
    """The ``vigil-verdicts`` document (fields per infra/elasticsearch/index/verdicts.json)."""
    if verdict not in ANALYST_VERDICTS:
        raise ConsoleError(f"verdict must be one of {', '.join(ANALYST_VERDICTS)}, not {verdict!r}")
    moment = (now or datetime.now(UTC)).isoformat()
    detection = detection or {}
    fused = detection.get("fused") or video.get("fused") or {}
    return {
        "@timestamp": moment,
        "verdict_id": uuid.uuid4().hex,
        "video_uid": video["video_uid"],
        "media_sha256": detection.get("media_sha256") or (video.get("media") or {}).get("sha256"),
        "verdict": verdict,
        "note": note[:MAX_NOTE],
        "analyst": analyst,
        "suite_version": detection.get("suite_version") or video.get("suite_version"),
        "detection_id": video.get("detection_id"),
        "scores": {
            "fused": fused.get("score"),
            "fused_verdict": fused.get("verdict"),
            "detectors": {name: {"score": out.get("score"), "applicable": out.get("applicable"),
                                 "version": out.get("version")}
                          for name, out in (detection.get("detectors") or {}).items()},
        },
        "event": {"created": moment, "dataset": "vigil.verdicts"},
    }


def record_verdict(es: Elasticsearch, settings: Settings, video: Mapping[str, Any],
                   detection: Mapping[str, Any] | None, *, verdict: str, note: str, analyst: str) -> dict[str, Any]:
    """Write the verdict document, then the video's ``analyst.*`` (both refreshed before returning)."""
    doc = verdict_document(video, detection, verdict=verdict, note=note, analyst=analyst)
    with es_errors(settings):
        es.index(index=settings.index("verdicts"), id=doc["verdict_id"], document=doc, refresh="wait_for")
        es.update(index=settings.index("videos"), id=video["video_uid"], refresh="wait_for", doc={"analyst": {
            "verdict": verdict, "note": doc["note"], "analyst": analyst, "at": doc["@timestamp"],
            "suite_version": doc["suite_version"]}})
    return doc
