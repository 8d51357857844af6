"""Kibana as code: data views, saved searches, visualizations and dashboards (`saved_objects`), alerting rules
equivalent to the YAML alert rules (`kibana_rules`), and `run_import` behind `vigil kibana import --url URL`.

``infra/kibana/`` holds the files `export_files` writes from the default settings, for review and manual import.
"""
from __future__ import annotations

from ._client import ImportReport, KibanaClient, export_files, run_import
from ._objects import DETECTORS, data_view_id, saved_objects, to_ndjson
from ._rules import CONSUMER, RULE_TYPE, kibana_rule_id, kibana_rules, kibana_search_body

__all__ = ["saved_objects", "to_ndjson", "data_view_id", "DETECTORS", "kibana_rules", "kibana_rule_id",
           "kibana_search_body", "RULE_TYPE", "CONSUMER", "KibanaClient", "ImportReport", "run_import",
           "export_files"]
