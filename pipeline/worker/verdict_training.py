"""Analysts' verdicts as labelled items for `vigil calibrate --from-verdicts`: the latest verdict per file
(``authentic`` → real, ``manipulated`` → fake; ``cannot_tell`` is left out) joined with the detection document the
analyst saw, whose per-detector ``evidence.raw_score`` (the score before calibration) is what Platt scaling is fitted
on. The fitting itself is ``detectors.fit_calibration``, the same as for a labelled dataset. Worker side: the items
are the detectors' own types, imported as usual."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from elasticsearch import Elasticsearch, helpers

from detectors import DetectorResult, Item, ItemResult

from .._elasticsearch import es_errors
from .._exceptions import ConfigError
from .._settings import Settings

__all__ = ["latest_verdicts", "verdict_items"]

logger = logging.getLogger(__name__)

LABELS = {"manipulated": 1, "authentic": 0}


def latest_verdicts(es: Elasticsearch, settings: Settings) -> dict[str, dict[str, Any]]:
    """{media_sha256: the newest authentic/manipulated verdict on that file}."""
    newest: dict[str, dict[str, Any]] = {}
    with es_errors(settings):
        if not es.indices.exists(index=settings.index("verdicts")):
            raise ConfigError(f"no verdicts index {settings.index('verdicts')}: run `vigil setup` and record "
                              f"verdicts in the console first")
        for hit in helpers.scan(es, index=settings.index("verdicts"), query={"query": {"terms": {
                "verdict": sorted(LABELS)}}}, _source=["media_sha256", "verdict", "@timestamp", "detection_id",
                                                       "suite_version", "video_uid"]):
            doc = hit["_source"]
            sha = doc.get("media_sha256")
            if sha and (sha not in newest or str(doc["@timestamp"]) > str(newest[sha]["@timestamp"])):
                newest[sha] = doc
    return newest


def verdict_items(es: Elasticsearch, settings: Settings) -> tuple[list[Any], list[str]]:
    """(ItemResults, detector names) for ``fit_calibration``; one item per judged file."""

    from ..sink import detection_id

    verdicts = latest_verdicts(es, settings)
    ids = {sha: v.get("detection_id") or detection_id(sha, v.get("suite_version") or "") for sha, v in
           verdicts.items()}
    docs: dict[str, dict[str, Any]] = {}
    if ids:
        with es_errors(settings):
            found = es.mget(index=settings.index("detections"), ids=sorted(set(ids.values())),
                            source_includes=["detectors", "fused"])["docs"]
        docs = {d["_id"]: d["_source"] for d in found if d.get("found")}
    results, names = [], set()
    for sha, verdict in sorted(verdicts.items()):
        detection = docs.get(ids[sha])
        if detection is None:
            logger.warning("verdict on %s: its detection document %s is gone; left out", sha, ids[sha])
            continue
        item = ItemResult(item=Item(Path(str(verdict.get("video_uid") or sha)), LABELS[verdict["verdict"]],
                                    str(verdict.get("video_uid") or "")),
                          fused_score=(detection.get("fused") or {}).get("score"),
                          verdict=(detection.get("fused") or {}).get("verdict") or "")
        for name, out in (detection.get("detectors") or {}).items():
            names.add(name)
            raw = (out.get("evidence") or {}).get("raw_score", out.get("score"))
            item.results[name] = (DetectorResult(name=name, version=str(out.get("version") or ""), applicable=True,
                                                 score=float(raw))
                                  if out.get("applicable") and raw is not None
                                  else DetectorResult(name=name, version=str(out.get("version") or ""),
                                                      applicable=False))
        results.append(item)
    return results, sorted(names)
