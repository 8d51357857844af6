"""A local stand-in for the parts of Kibana 8.19 that `vigil kibana import` talks to, answering as Kibana's own route
schemas and services do, so the import's requests are checked, not just recorded. No Kibana can run here; every rule
below is written from Kibana's source, and each names the file it models (paths of the 8.19 tree; before the 8.18
relocation the same files lay under ``src/plugins/…``, ``x-pack/plugins/…`` and ``packages/core/…``). Which of them
were read, and which are written from memory of the source, is said at the end.

Saved objects ``POST /api/saved_objects/_import`` —
``src/core/packages/saved-objects/server-internal/src/routes/import.ts`` (query ``overwrite``, ``createNewCopies``,
``compatibilityMode``; "cannot use [overwrite] with [createNewCopies]"; the multipart ``file`` must end in
``.ndjson``: "Invalid file extension …"), ``src/core/packages/saved-objects/import-export-server-internal/src/import/``
(``import_saved_objects.ts``: ``{success, successCount, successResults?, errors?, warnings}``;
``lib/create_saved_objects.ts``: while a conflict or missing reference remains, nothing is written, though the other
objects are listed in ``successResults``;
``lib/check_conflicts.ts``: an id of a multi-namespace type (data views are ``multiple``, the others
``multiple-isolated``) that lives in another space is unresolvable and gets a fresh random ``destinationId``;
``lib/check_origin_conflicts.ts``: a later import into that space overwrites
the copy whose ``originId`` is the id; ``lib/validate_references.ts``: ``missing_references``; unknown types:
``unsupported_type``), and the document migrator
(``src/core/packages/saved-objects/migration-server-internal/src/document_migrator/``): a document whose
``typeMigrationVersion`` is above the type's last migration "belongs to a more recent version of Kibana"
(``Boom.badData``); ``bulk_create.ts`` migrates outside any per-object catch, so the whole import fails with HTTP 422
and writes nothing. `MIGRATION_CEILINGS` holds the last migration of each type.

Alerting ``/api/alerting/rule/{id}`` (``x-pack/platform/plugins/shared/alerting/``):
``common/routes/rule/apis/create/schemas/v1.ts`` (create body and action schema: ``group?``, ``id``, ``params``,
``frequency?`` = ``{summary, notify_when, throttle}``, ``uuid?``, ``alerts_filter?``,
``use_alert_data_for_template?``), ``common/routes/rule/apis/update/schemas/v1.ts`` (update body: ``name``, ``tags``,
``schedule``, ``throttle?``, ``params``, ``actions``, ``notify_when?``, ``alert_delay?``, ``flapping?``; no
``enabled``, ``rule_type_id`` or ``consumer``), ``server/routes/rule/apis/{create,update,get,enable,disable}/`` (the
routes; ``_enable``/``_disable`` answer 204, ``_disable`` takes ``{untrack?}``),
``server/routes/rule/apis/{create,update}/transforms/transform_*_body/v1.ts`` (an action without ``group`` is
``default``; rule-level ``notify_when``/``throttle`` pass on only when set), ``rewriteActionsRes`` (the answer: actions
carry ``connector_type_id``), ``server/rules_client/lib/validate_actions.ts`` (no actions: nothing to check;
duplicated uuids; invalid action groups; "Cannot specify
per-action frequency params when notify_when or throttle are defined at the rule level"; "Actions missing frequency
parameters"; "Action frequency cannot be shorter than the schedule interval"), ``server/lib/validate_rule_type_params.ts``
("params invalid: …") with ``x-pack/platform/plugins/shared/stack_alerts/server/rule_types/es_query/rule_type_params.ts``
(`es_query_params_problems`). Rule objects (``alert``) are ``multiple-isolated``: one id in one space only, so a
create in a second space with an id taken elsewhere is 404 on read and 409 on create.

Request bodies are checked as ``@kbn/config-schema`` checks them: an unknown key is
``[request body.<path>]: definition for this key is missing``, a missing one
``[request body.<path>]: expected value of type [<type>] but got [undefined]``; durations follow
``validateDuration`` (``^[1-9][0-9]*[smhd]$``).

Read in Kibana's public repository (main branch) while writing this: the import route, ``import_saved_objects.ts``,
``collect_saved_objects.ts``, ``check_conflicts.ts``, ``create_saved_objects.ts``, the migrator's downgrade check and
``bulk_create.ts``, the type migration maps of `MIGRATION_CEILINGS`, the update body schema, both body transforms,
``rewriteActionsRes``, ``validate_actions.ts``, ``rule_type_params.ts``, ``fetch_es_query.ts`` and ``build_agg.ts``
(the grouped search of `pipeline.kibana.kibana_search_body`), the rule type's ``multiple-isolated`` registration, and
the dashboard drilldown's and options list's reference names. From memory of the source, not re-read: the create body
schema, the enable/disable routes, ``check_origin_conflicts.ts``, ``validate_references.ts``,
``validate_rule_type_params.ts`` and @kbn/config-schema's exact messages.
"""
from __future__ import annotations

import email.parser
import email.policy
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

__all__ = ["FakeKibana", "fake_kibana", "MIGRATION_CEILINGS", "KIBANA_VERSION", "es_query_params_problems",
           "SchemaError", "version_tuple"]

KIBANA_VERSION = "8.19.0"

#: a floor under each importable type's last migration (``maxVersion(latest migrate, latest convert)`` in
#: document_migrator): a declared typeMigrationVersion at or under it imports; above the real one, the import fails.
#: Types that moved to model versions (10.x.0 virtual versions) accept these too and run their model versions.
MIGRATION_CEILINGS = {
    # src/platform/plugins/shared/data_views/server/saved_objects/data_views.ts: migrations up to 7.11.0
    # (index_pattern_migrations.ts), convertToMultiNamespaceTypeVersion 8.0.0
    "index-pattern": "8.0.0",
    # src/platform/plugins/shared/saved_search/server/saved_objects/search_migrations.ts: up to 7.9.3 plus the
    # search-source migrations merged in; converted to a multi-namespace type in 8.0.0
    "search": "8.0.0",
    # src/platform/plugins/shared/visualizations/server/migrations/visualization_saved_object_migrations.ts:
    # 8.1.0 updatePieVisApi (addLegend -> legendDisplay), 8.3.0, 8.5.0 removeExclamationCircleIcon
    "visualization": "8.5.0",
    # x-pack/platform/plugins/shared/lens/server/migrations/saved_object_migrations.ts (8.9.0 metric formatter;
    # not used by Vigil's objects)
    "lens": "8.9.0",
    # src/platform/plugins/shared/dashboard/server/dashboard_saved_object/migrations/
    # dashboard_saved_object_migrations.ts: its own up to 7.17.3, merged with every embeddable's migrations (by-value
    # panels), which reach 8.9.0 through Lens
    "dashboard": "8.9.0",
}
ES_QUERY_ACTION_GROUPS = ("query matched", "recovered")  # es_query/action_context.ts, rule_type.ts
CONNECTOR_TYPES = {".slack": "Slack", ".email": "Email", ".webhook": "Webhook"}
_DURATION = re.compile(r"^[1-9][0-9]*[smhd]$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def _seconds(duration: str) -> int:
    return int(duration[:-1]) * _UNIT_S[duration[-1]]


# ------------------------------------------------------------------ @kbn/config-schema, the parts the routes use

class SchemaError(ValueError):
    """A body refused the way @kbn/config-schema refuses it."""


Check = Callable[[Any, str], None]
_MISSING = object()


def _where(path: str) -> str:
    return f"[request body.{path}]" if path else "[request body]"


def _type_name(value: Any) -> str:
    if value is _MISSING:
        return "undefined"
    if value is None:
        return "null"
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "Array", dict: "Object"}.get(
        type(value), type(value).__name__)


def string(*, min_length: int = 0, validate: Callable[[str], str | None] | None = None) -> Check:
    def check(value: Any, path: str) -> None:
        if not isinstance(value, str):
            raise SchemaError(f"{_where(path)}: expected value of type [string] but got [{_type_name(value)}]")
        if len(value) < min_length:
            raise SchemaError(f"{_where(path)}: value has length [{len(value)}] but it must have a minimum length "
                              f"of [{min_length}].")
        if validate and (problem := validate(value)):
            raise SchemaError(f"{_where(path)}: {problem}")
    return check


def boolean() -> Check:
    def check(value: Any, path: str) -> None:
        if not isinstance(value, bool):
            raise SchemaError(f"{_where(path)}: expected value of type [boolean] but got [{_type_name(value)}]")
    return check


def number() -> Check:
    def check(value: Any, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SchemaError(f"{_where(path)}: expected value of type [number] but got [{_type_name(value)}]")
    return check


def literal(*options: str) -> Check:
    def check(value: Any, path: str) -> None:
        if value not in options:
            raise SchemaError(f"{_where(path)}: types that failed validation: " + "; ".join(
                f"[{path}.{i}]: expected value to equal [{o}]" for i, o in enumerate(options)))
    return check


def any_value() -> Check:
    def check(value: Any, path: str) -> None:
        if value is _MISSING:
            raise SchemaError(f"{_where(path)}: expected value of type [any] but got [undefined]")
    return check


def record() -> Check:
    def check(value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise SchemaError(f"{_where(path)}: expected value of type [object] but got [{_type_name(value)}]")
    return check


def array(item: Check) -> Check:
    def check(value: Any, path: str) -> None:
        if not isinstance(value, list):
            raise SchemaError(f"{_where(path)}: expected value of type [array] but got [{_type_name(value)}]")
        for i, element in enumerate(value):
            item(element, f"{path}.{i}" if path else str(i))
    return check


def nullable(inner: Check) -> Check:
    def check(value: Any, path: str) -> None:
        if value is not None:
            inner(value, path)
    return check


def obj(required: dict[str, Check], optional: dict[str, Check] | None = None) -> Check:
    """``schema.object``: unknown keys refused; ``optional`` keys are ``schema.maybe`` or have a default."""
    optional = optional or {}

    def check(value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise SchemaError(f"{_where(path)}: expected a plain object value, but found [{_type_name(value)}] "
                              "instead.")
        for key in value:
            if key not in required and key not in optional:
                raise SchemaError(f"{_where(f'{path}.{key}' if path else key)}: definition for this key is missing")
        for key, inner in required.items():
            inner(value.get(key, _MISSING), f"{path}.{key}" if path else key)
        for key, inner in optional.items():
            if key in value:
                inner(value[key], f"{path}.{key}" if path else key)
    return check


def _duration(value: str) -> str | None:
    if _DURATION.match(value):
        return None
    return (f'Invalid duration "{value}". Durations must be of the form {{number}}x. '
            'Example: 5s, 5m, 5h or 5d')


NOTIFY_WHEN = literal("onActionGroupChange", "onActiveAlert", "onThrottleInterval")
FREQUENCY = obj({"summary": boolean(), "notify_when": NOTIFY_WHEN, "throttle": nullable(string(validate=_duration))})
ACTION = obj({"id": string(), "params": record()}, {
    "group": string(), "frequency": FREQUENCY, "uuid": string(), "alerts_filter": record(),
    "use_alert_data_for_template": boolean()})
_RULE_COMMON_OPTIONAL = {"tags": array(string()), "throttle": nullable(string(validate=_duration)),
                         "params": record(), "actions": array(ACTION), "notify_when": nullable(NOTIFY_WHEN),
                         "alert_delay": obj({"active": number()}), "flapping": nullable(record()),
                         "artifacts": record()}
CREATE_BODY = obj({"name": string(), "rule_type_id": string(), "consumer": string(),
                   "schedule": obj({"interval": string(validate=_duration)})},
                  {"enabled": boolean(), **_RULE_COMMON_OPTIONAL})
UPDATE_BODY = obj({"name": string(), "schedule": obj({"interval": string(validate=_duration)})},
                  _RULE_COMMON_OPTIONAL)
DISABLE_BODY = nullable(obj({}, {"untrack": boolean()}))


# ------------------------------------------------------------------ the .es-query rule type's params

_ES_QUERY_KEYS = {"size", "timeWindowSize", "excludeHitsFromPreviousRun", "timeWindowUnit", "threshold",
                  "thresholdComparator", "aggType", "aggField", "groupBy", "termField", "termSize", "searchType",
                  "timeField", "esQuery", "index", "searchConfiguration", "esqlQuery", "alertType", "sourceFields"}
ES_QUERY_MAX_HITS_PER_EXECUTION = 10_000
MAX_GROUPS = 1000


def es_query_params_problems(params: dict[str, Any]) -> list[str]:
    """What EsQueryRuleParamsSchema and its validateParams say about ``params`` (empty: valid)."""
    problems = [f"[{k}]: definition for this key is missing" for k in params if k not in _ES_QUERY_KEYS]
    search_type = params.get("searchType", "esQuery")
    if search_type not in ("searchSource", "esQuery", "esqlQuery"):
        problems.append(f"[searchType]: unknown search type {search_type!r}")
    size = params.get("size")
    if not isinstance(size, int) or not 0 <= size <= ES_QUERY_MAX_HITS_PER_EXECUTION:
        problems.append(f"[size]: must be a number between 0 and {ES_QUERY_MAX_HITS_PER_EXECUTION}")
    if not isinstance(params.get("timeWindowSize"), int) or params["timeWindowSize"] < 1:
        problems.append("[timeWindowSize]: Value must be equal to or greater than [1].")
    if params.get("timeWindowUnit") not in ("s", "m", "h", "d"):
        problems.append(f"[timeWindowUnit]: invalid timeWindowUnit: \"{params.get('timeWindowUnit')}\"")
    comparator = params.get("thresholdComparator")
    threshold = params.get("threshold")
    if comparator not in (">", "<", ">=", "<=", "between", "notBetween"):
        problems.append(f"[thresholdComparator]: invalid thresholdComparator specified: {comparator}")
    if not isinstance(threshold, list) or not 1 <= len(threshold) <= 2:
        problems.append("[threshold]: array size is [0], but cannot be smaller than [1]")
    elif comparator in ("between", "notBetween") and len(threshold) != 2:
        problems.append(f'[threshold]: must have two elements for the "{comparator}" comparator')
    agg_type = params.get("aggType", "count")
    if agg_type not in ("count", "avg", "min", "max", "sum"):
        problems.append(f'[aggType]: invalid aggType: "{agg_type}"')
    elif agg_type != "count" and not params.get("aggField"):
        problems.append(f'[aggField]: must have a value when [aggType] is "{agg_type}"')
    group_by = params.get("groupBy", "all")
    if group_by not in ("all", "top"):
        problems.append(f'[groupBy]: invalid groupBy: "{group_by}"')
    if group_by == "top":
        if not params.get("termField"):
            problems.append("[termField]: termField required when [groupBy] is top")
        if params.get("termSize") is None:
            problems.append("[termSize]: termSize required when [groupBy] is top")
        elif params["termSize"] < 1:
            problems.append("[termSize]: Value must be equal to or greater than [1].")
        elif params["termSize"] > MAX_GROUPS:
            problems.append(f"[termSize]: must be less than or equal to {MAX_GROUPS}")
    if search_type == "esQuery":
        for key in ("timeField", "esQuery"):
            if not isinstance(params.get(key), str) or not params[key]:
                problems.append(f"[{key}]: expected value of type [string] but got [{_type_name(params.get(key))}]")
        index = params.get("index")
        if not isinstance(index, list) or not index or not all(isinstance(i, str) and i for i in index):
            problems.append("[index]: array size is [0], but cannot be smaller than [1]")
        try:
            if "query" not in json.loads(params.get("esQuery") or "null"):
                problems.append('[esQuery]: must contain "query"')
        except (TypeError, ValueError):
            problems.append("[esQuery]: must be valid JSON")
    for key in ("excludeHitsFromPreviousRun",):
        if key in params and not isinstance(params[key], bool):
            problems.append(f"[{key}]: expected value of type [boolean] but got [{_type_name(params[key])}]")
    return problems


# ------------------------------------------------------------------ the server

class _Answer(Exception):
    def __init__(self, status: int, body: Any = None) -> None:
        self.status, self.body = status, body


def _error(status: int, message: str) -> _Answer:
    names = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 409: "Conflict", 422: "Unprocessable Entity"}
    return _Answer(status, {"statusCode": status, "error": names[status], "message": message})


class FakeKibana:
    """Kibana 8.19's import, rule and connector state for some spaces; every request and answer is in `exchanges`."""

    def __init__(self, spaces: tuple[str, ...] = ("default",)) -> None:
        self.spaces = set(spaces)
        # (type, id) -> {"namespaces": [space], "originId": ..., "attributes": ..., "references": ..., ...}
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.rules: dict[str, dict[str, Any]] = {}  # id -> rule answer (+ "_space")
        self.connectors: dict[str, dict[str, Any]] = {}  # id -> {"space", "connector_type_id", "name"}
        self.exchanges: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        kibana = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length) if length else b""
                try:
                    with kibana._lock:
                        status, body = 200, kibana._route(self.command, self.path, dict(self.headers), raw)
                except _Answer as answer:
                    status, body = answer.status, answer.body
                kibana.exchanges.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                         "body": raw, "status": status, "answer": body})
                data = b"" if status == 204 else json.dumps(body).encode()
                self.send_response(status)
                if status != 204:
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _serve  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- set-up a test does the way an analyst would in Kibana
    def add_connector(self, connector_id: str, connector_type_id: str = ".slack", *, space: str = "default") -> None:
        self.connectors[connector_id] = {"space": space, "connector_type_id": connector_type_id,
                                         "name": CONNECTOR_TYPES[connector_type_id]}

    def requests_to(self, pattern: str) -> list[dict[str, Any]]:
        return [e for e in self.exchanges if re.search(pattern, f"{e['method']} {e['path']}")]

    # -- routing
    def _route(self, method: str, raw_path: str, headers: dict[str, str], raw: bytes) -> Any:
        parts = urlsplit(raw_path)
        path, space = parts.path, "default"
        if match := re.match(r"^/s/([a-z0-9_-]+)(/.*)$", path):
            space, path = match.group(1), match.group(2)
        lower = {k.lower(): v for k, v in headers.items()}
        if "authorization" not in lower:
            raise _error(401, "Unauthorized")
        if space not in self.spaces:
            raise _error(404, "Not Found")
        if method != "GET" and "kbn-xsrf" not in lower:
            raise _error(400, "Request must contain a kbn-xsrf header.")
        query = dict(parse_qsl(parts.query))
        if path == "/api/saved_objects/_import" and method == "POST":
            return self._import(space, query, lower.get("content-type", ""), raw)
        if match := re.match(r"^/api/alerting/rule/([^/]+)(/_enable|/_disable)?$", path):
            rule_id, verb = match.group(1), match.group(2)
            if verb and method == "POST":
                return self._switch(space, rule_id, verb == "/_enable", raw)
            if not verb and method == "GET":
                return self._answer_rule(self._rule_in(space, rule_id))
            if not verb and method == "POST":
                return self._create(space, rule_id, self._json(raw))
            if not verb and method == "PUT":
                return self._update(space, rule_id, self._json(raw))
        raise _error(404, "Not Found")

    @staticmethod
    def _json(raw: bytes) -> Any:
        try:
            return json.loads(raw or b"null")
        except ValueError as exc:
            raise _error(400, f"Invalid request payload JSON format: {exc}") from exc

    # -- saved objects
    def _import(self, space: str, query: dict[str, str], content_type: str, raw: bytes) -> dict[str, Any]:
        for key in query:
            if key not in ("overwrite", "createNewCopies", "compatibilityMode"):
                raise _error(400, f"[request query.{key}]: definition for this key is missing")
        flags = {k: query.get(k, "false") == "true" for k in ("overwrite", "createNewCopies", "compatibilityMode")}
        if flags["overwrite"] and flags["createNewCopies"]:
            raise _error(400, "[request query]: cannot use [overwrite] with [createNewCopies]")
        if flags["createNewCopies"] and flags["compatibilityMode"]:
            raise _error(400, "[request query]: cannot use [createNewCopies] with [compatibilityMode]")
        if not content_type.startswith("multipart/form-data"):
            raise _error(400, "Unsupported Media Type")
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
        files = [p for p in message.iter_parts() if p.get_param("name", header="content-disposition") == "file"]
        if not files:
            raise _error(400, "[request body.file]: expected value of type [Stream] but got [undefined]")
        filename = files[0].get_filename() or ""
        if not filename.lower().endswith(".ndjson"):
            extension = "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
            raise _error(400, f"Invalid file extension {extension}")
        payload = files[0].get_payload(decode=True) or b""
        docs = []
        for line in payload.decode("utf-8").splitlines():
            if line.strip():
                try:
                    docs.append(json.loads(line))
                except ValueError as exc:
                    raise _error(400, f"Unexpected token in JSON: {exc}") from exc
        keys = [f"{d.get('type')}:{d.get('id')}" for d in docs]
        if repeated := sorted({k for k in keys if keys.count(k) > 1}):
            raise _error(400, f"Non-unique import objects detected: [{','.join(repeated)}]")
        # collect_saved_objects.ts: unsupported types
        errors: list[dict[str, Any]] = []
        collected = []
        for doc in docs:
            meta = {"title": (doc.get("attributes") or {}).get("title")}
            if doc.get("type") not in MIGRATION_CEILINGS:
                errors.append({"type": doc.get("type"), "id": doc.get("id"), "meta": meta,
                               "error": {"type": "unsupported_type"}})
            else:
                collected.append(doc)
        # validate_references.ts: references neither in the file nor in this space
        in_file = {(d["type"], d["id"]) for d in collected}
        for doc in collected:
            missing = [{"type": r["type"], "id": r["id"]} for r in doc.get("references") or []
                       if (r["type"], r["id"]) not in in_file and not self._visible(space, r["type"], r["id"])]
            if missing:
                errors.append({"type": doc["type"], "id": doc["id"], "meta": {"title": doc["attributes"].get("title")},
                               "error": {"type": "missing_references", "references": missing}})
        # check_conflicts.ts and check_origin_conflicts.ts: where each object goes
        failed = {(e["type"], e["id"]) for e in errors}
        plan = []
        for doc in collected:
            if (doc["type"], doc["id"]) in failed:
                continue
            target, overwrite = self._destination(space, doc["type"], doc["id"], flags)
            if target is None:
                errors.append({"type": doc["type"], "id": doc["id"], "meta": {"title": doc["attributes"].get("title")},
                               "error": {"type": "conflict"}})
                continue
            plan.append((doc, target, overwrite))
        # create_saved_objects.ts: with a resolvable error nothing is written (the others are listed as they would be)
        resolvable = any(e["error"]["type"] in ("conflict", "ambiguous_conflict", "missing_references")
                         for e in errors)
        if not resolvable:
            for doc, _, _ in plan:  # bulk_create.ts migrates every document first; a throw fails the request
                declared = doc.get("typeMigrationVersion") or "0.0.0"
                if version_tuple(declared) > version_tuple(MIGRATION_CEILINGS[doc["type"]]):
                    raise _Answer(422, {"statusCode": 422, "error": "Unprocessable Entity", "message": (
                        f'Document "{doc["id"]}" belongs to a more recent version of Kibana [{declared}] when the '
                        f'last known version is [{MIGRATION_CEILINGS[doc["type"]]}].')})
            targets = {(d["type"], d["id"]): t for d, t, _ in plan}
            for doc, target, _ in plan:
                refs = [{**r, "id": targets.get((r["type"], r["id"]), r["id"])} for r in doc.get("references") or []]
                self.objects[(doc["type"], target)] = {
                    "namespaces": [space], "originId": doc["id"] if target != doc["id"] else None,
                    "attributes": doc["attributes"], "references": refs,
                    "typeMigrationVersion": doc.get("typeMigrationVersion")}
        results = []
        for doc, target, overwrite in plan:
            result = {"type": doc["type"], "id": doc["id"], "meta": {"title": doc["attributes"].get("title")},
                      "managed": bool(doc.get("managed", False))}
            if overwrite:
                result["overwrite"] = True
            if target != doc["id"]:
                result["destinationId"] = target
            results.append(result)
        answer: dict[str, Any] = {"successCount": len(results), "success": not errors, "warnings": []}
        if results:
            answer["successResults"] = results
        if errors:
            answer["errors"] = errors
        return answer

    def _visible(self, space: str, kind: str, obj_id: str) -> bool:
        found = self.objects.get((kind, obj_id))
        return bool(found and space in found["namespaces"])

    def _destination(self, space: str, kind: str, obj_id: str, flags: dict[str, bool]) -> tuple[str | None, bool]:
        """(the id the object is written under, whether it overwrites): check_conflicts + check_origin_conflicts."""
        if flags["createNewCopies"]:
            return str(uuid.uuid4()), False
        found = self.objects.get((kind, obj_id))
        if found is None:
            return obj_id, False
        if space in found["namespaces"]:
            return (obj_id, True) if flags["overwrite"] else (None, False)
        copies = [i for (k, i), o in self.objects.items()
                  if k == kind and o["originId"] == obj_id and space in o["namespaces"]]
        if len(copies) == 1 and flags["overwrite"]:
            return copies[0], True
        return str(uuid.uuid4()), False  # exists in another space only: a new random id

    # -- rules
    def _rule_in(self, space: str, rule_id: str) -> dict[str, Any]:
        rule = self.rules.get(rule_id)
        if rule is None or rule["_space"] != space:
            raise _error(404, f"Saved object [alert/{rule_id}] not found")
        return rule

    @staticmethod
    def _answer_rule(rule: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in rule.items() if not k.startswith("_")}

    def _validate_rule(self, space: str, data: dict[str, Any]) -> None:
        """The rules client: rule type params, then validateActions."""
        if data.get("rule_type_id") != ".es-query":
            raise _error(400, f"Rule type \"{data.get('rule_type_id')}\" is not registered.")
        if problems := es_query_params_problems(data.get("params") or {}):
            raise _error(400, f"params invalid: {problems[0]}")
        actions = data.get("actions") or []
        if not actions:
            return
        for action in actions:
            connector = self.connectors.get(action["id"])
            if connector is None or connector["space"] != space:
                raise _error(404, f"Saved object [action/{action['id']}] not found")
        errors = []
        uuids = [a["uuid"] for a in actions if a.get("uuid")]  # the route fills in missing ones
        if len(set(uuids)) < len(uuids):
            errors.append("Actions have duplicated UUIDs")
        groups = [a.get("group") or "default" for a in actions]
        if bad := [g for g in groups if g not in ES_QUERY_ACTION_GROUPS]:
            errors.append(f"Invalid action groups: {', '.join(bad)}")
        # transform_*_body/v1.ts pass notify_when and throttle on only when truthy; validate_actions.ts then asks
        # `typeof notifyWhen !== 'undefined'` and `Boolean(throttle)`
        rule_level = bool(data.get("notify_when")) or bool(data.get("throttle"))
        if rule_level:
            if with_frequency := [g for g, a in zip(groups, actions) if a.get("frequency")]:
                errors.append("Cannot specify per-action frequency params when notify_when or throttle are defined "
                              f"at the rule level: {', '.join(with_frequency)}")
        elif missing := [g for g, a in zip(groups, actions) if not a.get("frequency")]:
            errors.append(f"Actions missing frequency parameters: {', '.join(missing)}")
        interval = _seconds(data["schedule"]["interval"])
        short = [f"{g} ({a['frequency']['throttle']})" for g, a in zip(groups, actions)
                 if (a.get("frequency") or {}).get("notify_when") == "onThrottleInterval"
                 and _seconds(a["frequency"]["throttle"]) < interval]
        if short:
            errors.append(f"Action frequency cannot be shorter than the schedule interval of "
                          f"{data['schedule']['interval']}: {', '.join(short)}")
        if errors:
            raise _error(400, "Failed to validate actions due to the following "
                              + ("error: " + errors[0] if len(errors) == 1 else
                                 f"{len(errors)} errors:\n- " + "\n- ".join(errors)))

    def _store_actions(self, actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"group": a.get("group") or "default", "id": a["id"], "params": a.get("params", {}),
                 "connector_type_id": self.connectors[a["id"]]["connector_type_id"],
                 **({"frequency": a["frequency"]} if a.get("frequency") else {}),
                 "uuid": a.get("uuid") or str(uuid.uuid4()),
                 **({k: a[k] for k in ("alerts_filter", "use_alert_data_for_template") if k in a})}
                for a in actions]

    def _create(self, space: str, rule_id: str, body: Any) -> dict[str, Any]:
        try:
            CREATE_BODY(body, "")
        except SchemaError as exc:
            raise _error(400, str(exc)) from exc
        if rule_id in self.rules:  # multiple-isolated: the id is taken, whatever the space
            raise _error(409, f"Saved object [alert/{rule_id}] conflict")
        self._validate_rule(space, body)
        now = datetime.now(UTC).isoformat()
        rule = {"_space": space, "id": rule_id, "name": body["name"], "tags": body.get("tags", []),
                "enabled": body.get("enabled", True), "rule_type_id": body["rule_type_id"],
                "consumer": body["consumer"], "schedule": body["schedule"], "params": body.get("params", {}),
                "actions": self._store_actions(body.get("actions", [])), "throttle": body.get("throttle"),
                "notify_when": body.get("notify_when"), "mute_all": False, "muted_alert_ids": [],
                "created_by": "elastic", "updated_by": "elastic", "created_at": now, "updated_at": now,
                "api_key_owner": "elastic", "api_key_created_by_user": False, "scheduled_task_id": rule_id,
                "execution_status": {"status": "pending", "last_execution_date": now}, "revision": 0,
                "running": False}
        self.rules[rule_id] = rule
        return self._answer_rule(rule)

    def _update(self, space: str, rule_id: str, body: Any) -> dict[str, Any]:
        try:
            UPDATE_BODY(body, "")
        except SchemaError as exc:
            raise _error(400, str(exc)) from exc
        rule = self._rule_in(space, rule_id)
        self._validate_rule(space, {**body, "rule_type_id": rule["rule_type_id"]})
        rule.update({"name": body["name"], "tags": body.get("tags", []), "schedule": body["schedule"],
                     "params": body.get("params", {}), "actions": self._store_actions(body.get("actions", [])),
                     "throttle": body.get("throttle"), "notify_when": body.get("notify_when"),
                     "updated_at": datetime.now(UTC).isoformat(), "revision": rule["revision"] + 1})
        return self._answer_rule(rule)

    def _switch(self, space: str, rule_id: str, enable: bool, raw: bytes) -> None:
        if not enable:
            try:
                DISABLE_BODY(self._json(raw), "")
            except SchemaError as exc:
                raise _error(400, str(exc)) from exc
        rule = self._rule_in(space, rule_id)
        rule["enabled"] = enable
        raise _Answer(204)


@contextmanager
def fake_kibana(spaces: tuple[str, ...] = ("default",)) -> Iterator[FakeKibana]:
    kibana = FakeKibana(spaces)
    try:
        yield kibana
    finally:
        kibana.close()
