"""The Elasticsearch sink: ``vigil.results`` → ``vigil-detections`` + ``vigil-videos``, committed after the bulk
acknowledged every item. Built from the consume kit; needs no detectors."""
from __future__ import annotations

from ._docs import BulkKey, bulk_actions, bulk_lines, detection_doc, detection_id, detection_json, video_update
from ._sink import Sink, run_sink
from ._steps import RETRY_STATUS, Bulk, BulkRejected, Decode, SinkItem

__all__ = ["Sink", "run_sink", "Decode", "Bulk", "SinkItem", "BulkRejected", "RETRY_STATUS", "detection_id",
           "detection_doc", "detection_json", "video_update", "bulk_lines", "bulk_actions", "BulkKey"]
