"""Importing into Kibana: saved objects through ``POST /api/saved_objects/_import?overwrite=true`` (multipart NDJSON)
and alerting rules through ``/api/alerting/rule/{id}`` (created with a stable id, updated in place when they exist).

A rule that exists is updated with ``PUT /api/alerting/rule/{id}``, whose body takes only ``name``, ``tags``,
``schedule``, ``params``, ``actions`` (and rule-level ``throttle``/``notify_when``, which Vigil leaves out: Kibana
refuses them next to per-action frequencies). The actions attached in Kibana are kept: read from the rule (``GET``),
turned into the request's shape (``connector_type_id`` and other answer-only keys dropped) and given the YAML
cooldown as frequency where they notify per alert (summary actions keep theirs). ``enabled`` cannot travel in the
update: when the YAML's state differs from Kibana's, ``POST …/_enable`` or ``…/_disable`` follows.

Spaces: the ids of saved objects and rules carry the space (`object_id`, `kibana_rule_id`), since Kibana keeps both
unique across spaces. A rule id taken in another space (a 409 after a 404) is reported as such, not retried.

Every request carries ``kbn-xsrf``; credentials come from settings (``VIGIL_KIBANA_API_KEY``, or
``VIGIL_KIBANA_USER``/``VIGIL_KIBANA_PASSWORD``, falling back to the Elasticsearch user), never from the URL.
A space (``VIGIL_KIBANA_SPACE``) prefixes paths with ``/s/<space>``.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .._exceptions import AuthenticationFailed, ConfigError, ServiceError, ServiceUnavailable
from .._settings import Settings
from ..alerts import RuleSet, load_rules
from ._objects import saved_objects, to_ndjson
from ._rules import kibana_rules

__all__ = ["KibanaClient", "KibanaRefused", "ImportReport", "run_import", "export_files", "UPDATABLE",
           "ACTION_KEYS", "request_actions"]

logger = logging.getLogger(__name__)

#: the fields of the update-rule body Vigil sends (rule type, consumer and enabled are fixed at creation; rule-level
#: throttle and notify_when are left out on purpose)
UPDATABLE = ("name", "tags", "schedule", "params", "actions")
#: import errors that make Kibana write none of the objects (they wait to be resolved)
RESOLVABLE = ("conflict", "ambiguous_conflict", "missing_references")
#: the keys of one action in a create or update body (the rule's answer adds connector_type_id and more)
ACTION_KEYS = ("group", "id", "params", "frequency", "uuid", "alerts_filter", "use_alert_data_for_template")


class KibanaRefused(ServiceError):
    """Kibana answered, but refused a request (its HTTP status in ``status``)."""

    def __init__(self, message: str, *, status: int, hint: str = "") -> None:
        super().__init__(message, service="kibana", hint=hint)
        self.status = status


def request_actions(actions: list[dict[str, Any]], frequency: dict[str, Any]) -> list[dict[str, Any]]:
    """A rule's actions as Kibana answers them, in the shape its update body takes; per-alert actions get
    ``frequency`` (the YAML cooldown), summary actions keep their own."""
    out = []
    for action in actions:
        item = {k: action[k] for k in ACTION_KEYS if action.get(k) is not None}
        if not (item.get("frequency") or {}).get("summary"):
            item["frequency"] = dict(frequency)
        out.append(item)
    return out


@dataclass
class ImportReport:
    """What `vigil kibana import` did."""

    objects: int = 0
    imported: int = 0
    errors: list[str] = field(default_factory=list)
    rules: dict[str, str] = field(default_factory=dict)  # YAML rule id -> created | updated[, enabled|disabled]

    @property
    def ok(self) -> bool:
        return not self.errors


class KibanaClient:
    """A thin client for the two Kibana APIs Vigil uses; the httpx client can be passed in."""

    def __init__(self, url: str, settings: Settings, *, client: httpx.Client | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"Kibana URL must be http(s)://…, not {url!r} (--url or VIGIL_KIBANA_URL)")
        self.url = url.rstrip("/")
        self.base = self.url + (f"/s/{settings.kibana_space}" if settings.kibana_space else "")
        headers = {"kbn-xsrf": "vigil", "Accept": "application/json"}
        auth: httpx.Auth | None = None
        if settings.kibana_api_key is not None:
            headers["Authorization"] = f"ApiKey {settings.kibana_api_key.get_secret_value()}"
        elif settings.kibana_user or settings.es_user:
            user = settings.kibana_user or settings.es_user
            secret = settings.kibana_password if settings.kibana_user else settings.es_password
            auth = httpx.BasicAuth(user or "", secret.get_secret_value() if secret else "")
        verify: Any = str(settings.kibana_ca_file) if settings.kibana_ca_file else True
        self._own = client is None
        self.http = client or httpx.Client(timeout=60, verify=verify)
        self.headers, self.auth = headers, auth

    def close(self) -> None:
        if self._own:
            self.http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        url = self.base + path
        try:
            response = self.http.request(method, url, headers=self.headers, auth=self.auth or httpx.USE_CLIENT_DEFAULT,
                                         **kwargs)
        except httpx.TransportError as exc:
            raise ServiceUnavailable(f"Kibana at {self.url} is not reachable: {exc}", service="kibana",
                                     hint="check --url / VIGIL_KIBANA_URL and VIGIL_KIBANA_CA_FILE") from exc
        if response.status_code in (401, 403):
            raise AuthenticationFailed(f"Kibana at {self.url} refused the request to {path} "
                                       f"(HTTP {response.status_code})", service="kibana",
                                       hint="set VIGIL_KIBANA_USER/VIGIL_KIBANA_PASSWORD or VIGIL_KIBANA_API_KEY; "
                                            "the user needs saved-object and Stack Rules privileges")
        return response

    def _refused(self, what: str, response: httpx.Response, hint: str = "") -> KibanaRefused:
        return KibanaRefused(f"Kibana refused {what} (HTTP {response.status_code}): {response.text[:500]}",
                             status=response.status_code, hint=hint)

    def import_objects(self, ndjson: str) -> dict[str, Any]:
        response = self._request("POST", "/api/saved_objects/_import", params={"overwrite": "true"},
                                 files={"file": ("vigil.ndjson", ndjson.encode("utf-8"), "application/ndjson")})
        if response.status_code != 200:
            raise self._refused("the saved objects", response)
        return response.json()

    def upsert_rule(self, rule_id: str, body: dict[str, Any], frequency: dict[str, Any]) -> str:
        """Create the rule with this id, or update it when it exists (keeping its actions) and bring its enabled
        state to the body's; returns "created", "updated", "updated, enabled" or "updated, disabled"."""
        existing = self._request("GET", f"/api/alerting/rule/{rule_id}")
        if existing.status_code == 404:
            response = self._request("POST", f"/api/alerting/rule/{rule_id}", json=body)
            if response.status_code == 409:
                raise self._refused(f"to create rule {body.get('name')!r} with id {rule_id}", response,
                                    hint="the id exists in another Kibana space (rule ids are unique across spaces): "
                                         "set VIGIL_KIBANA_SPACE to the space the rules were imported into, or "
                                         "delete them there")
            if response.status_code not in (200, 201):
                raise self._refused(f"rule {body.get('name')!r}", response)
            return "created"
        if existing.status_code != 200:
            raise self._refused(f"reading rule {rule_id}", existing)
        current = existing.json()
        for key in ("rule_type_id", "consumer"):
            if current.get(key) != body[key]:
                raise KibanaRefused(f"rule {rule_id} in Kibana is a {current.get(key)!r} rule, not {body[key]!r}; "
                                    "it cannot be updated into one (delete it in Kibana to let the import create it)",
                                    status=409)
        update = {k: body[k] for k in UPDATABLE if k != "actions"}
        update["actions"] = request_actions(current.get("actions") or [], frequency)
        response = self._request("PUT", f"/api/alerting/rule/{rule_id}", json=update)
        if response.status_code != 200:
            raise self._refused(f"the update of rule {body.get('name')!r}", response)
        action = "updated"
        if bool(current.get("enabled")) != bool(body.get("enabled", True)):
            verb = "_enable" if body.get("enabled", True) else "_disable"
            switched = self._request("POST", f"/api/alerting/rule/{rule_id}/{verb}")
            if switched.status_code not in (200, 204):
                raise self._refused(f"{verb} of rule {body.get('name')!r}", switched)
            action += ", enabled" if verb == "_enable" else ", disabled"
        return action


def run_import(settings: Settings, url: str | None = None, *, rules: RuleSet | None = None,
               client: httpx.Client | None = None) -> ImportReport:
    """Import the saved objects, then create or update the alerting rules."""
    target = url or settings.kibana_url
    if not target:
        raise ConfigError("no Kibana URL: pass --url or set VIGIL_KIBANA_URL")
    objects = saved_objects(settings)
    ruleset = rules or load_rules(settings.alert_rules)
    report = ImportReport(objects=len(objects))
    kibana = KibanaClient(target, settings, client=client)
    try:
        answer = kibana.import_objects(to_ndjson(objects))
        errors = answer.get("errors") or []
        held = [e for e in errors if (e.get("error") or {}).get("type") in RESOLVABLE]
        report.imported = 0 if held else int(answer.get("successCount", 0))
        for error in errors:
            report.errors.append(f"{error.get('type')} {error.get('id')}: {json.dumps(error.get('error'))}")
        if held:  # create_saved_objects.ts: nothing is written while one of these remains
            report.errors.append("Kibana wrote none of the saved objects: it writes nothing while a conflict or a "
                                 "missing reference remains")
        for result in answer.get("successResults") or []:
            if result.get("destinationId") and result["destinationId"] != result.get("id"):
                report.errors.append(f"{result.get('type')} {result.get('id')}: imported as a copy with id "
                                     f"{result['destinationId']} (the id exists in another space)")
        for item in kibana_rules(settings, ruleset):
            report.rules[item["rule"]] = kibana.upsert_rule(item["id"], item["body"], item["action_frequency"])
    finally:
        kibana.close()
    logger.info("kibana import: %d/%d objects, rules %s", report.imported, report.objects, report.rules)
    return report


def export_files(settings: Settings, out_dir: str | Path, *, rules: RuleSet | None = None) -> list[Path]:
    """Write ``saved_objects.ndjson`` and ``rules.json`` (what `run_import` sends) for review or manual import."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ndjson = out / "saved_objects.ndjson"
    ndjson.write_text(to_ndjson(saved_objects(settings)), encoding="utf-8")
    rules_file = out / "rules.json"
    rules_file.write_text(json.dumps(kibana_rules(settings, rules or load_rules(settings.alert_rules)), indent=2,
                                     ensure_ascii=False) + "\n", encoding="utf-8")
    return [ndjson, rules_file]
