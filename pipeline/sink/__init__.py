"""The Elasticsearch sink: ``vigil.results`` → ``vigil-detections`` + ``vigil-videos``, committed after the bulk
acknowledged every item. Needs no detectors."""
from __future__ import annotations

from ._docs import BulkKey, bulk_actions, bulk_lines, detection_doc, detection_id, detection_json, video_update
from ._sink import RETRY_STATUS, BulkRejected, Sink, run_sink

__all__ = ["Sink", "run_sink", "BulkRejected", "RETRY_STATUS", "detection_id", "detection_doc", "detection_json", "video_update", "bulk_lines", "BulkKey",
           "bulk_actions"]
