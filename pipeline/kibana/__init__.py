"""Kibana as code: data views, saved searches, visualizations and dashboards (`saved_objects`), alerting rules
equivalent to the YAML alert rules (`kibana_rules`), and `run_import` behind `vigil kibana import --url URL`.
Errors: `KibanaRefused` (a ``ServiceError``) when Kibana answers but refuses a request; `ServiceUnavailable` and
`AuthenticationFailed` as elsewhere.

``infra/kibana/`` holds the files `export_files` writes from the default settings, for review and manual import.
"""
from __future__ import annotations

from ._client import ImportReport, KibanaClient, KibanaRefused, export_files, request_actions, run_import
from ._objects import DETECTORS, TYPE_MIGRATION, data_view_id, object_id, saved_objects, to_ndjson
from ._rules import (CONSUMER, KINDS, RULE_TYPE, action_frequency, kibana_groups, kibana_rule_id, kibana_rules,
                     kibana_search_body, rule_spec)

__all__ = ["saved_objects", "to_ndjson", "data_view_id", "object_id", "DETECTORS", "TYPE_MIGRATION", "kibana_rules",
           "kibana_rule_id", "kibana_search_body", "kibana_groups", "action_frequency", "rule_spec", "KINDS",
           "RULE_TYPE", "CONSUMER", "KibanaClient", "KibanaRefused", "ImportReport", "run_import", "request_actions",
           "export_files"]
