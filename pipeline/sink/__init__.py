"""The Elasticsearch sink: ``vigil.results`` → ``vigil-detections`` + ``vigil-videos``, committed after the bulk
acknowledged every item. Needs no detectors."""
from __future__ import annotations

from ._docs import bulk_actions, detection_doc, detection_id, video_update
from ._sink import RETRY_STATUS, BulkRejected, Sink, run_sink

__all__ = ["Sink", "run_sink", "BulkRejected", "RETRY_STATUS", "detection_id", "detection_doc", "video_update",
           "bulk_actions"]
