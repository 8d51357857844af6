"""Importing into Kibana: saved objects through ``POST /api/saved_objects/_import?overwrite=true`` (multipart NDJSON)
and alerting rules through ``/api/alerting/rule/{id}`` (created with a stable id, updated in place when they exist).

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

from .._exceptions import AuthenticationFailed, ConfigError, ServiceUnavailable
from .._settings import Settings
from ..alerts import RuleSet, load_rules
from ._objects import saved_objects, to_ndjson
from ._rules import kibana_rules

__all__ = ["KibanaClient", "ImportReport", "run_import", "export_files", "UPDATABLE"]

logger = logging.getLogger(__name__)

#: the fields the update-rule API accepts (rule type, consumer and enabled are fixed at creation)
UPDATABLE = ("name", "tags", "schedule", "params", "actions", "throttle", "notify_when")


@dataclass
class ImportReport:
    """What `vigil kibana import` did."""

    objects: int = 0
    imported: int = 0
    errors: list[str] = field(default_factory=list)
    rules: dict[str, str] = field(default_factory=dict)  # YAML rule id -> created | updated

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

    def import_objects(self, ndjson: str) -> dict[str, Any]:
        response = self._request("POST", "/api/saved_objects/_import", params={"overwrite": "true"},
                                 files={"file": ("vigil.ndjson", ndjson.encode("utf-8"), "application/ndjson")})
        if response.status_code != 200:
            raise ServiceUnavailable(f"Kibana refused the saved objects (HTTP {response.status_code}): "
                                     f"{response.text[:500]}", service="kibana")
        return response.json()

    def upsert_rule(self, rule_id: str, body: dict[str, Any]) -> str:
        """Create the rule with this id, or update it when it exists; returns "created" or "updated"."""
        existing = self._request("GET", f"/api/alerting/rule/{rule_id}")
        if existing.status_code == 404:
            response = self._request("POST", f"/api/alerting/rule/{rule_id}", json=body)
            action = "created"
        elif existing.status_code == 200:
            response = self._request("PUT", f"/api/alerting/rule/{rule_id}",
                                     json={k: v for k, v in body.items() if k in UPDATABLE})
            action = "updated"
        else:
            raise ServiceUnavailable(f"Kibana answered HTTP {existing.status_code} for rule {rule_id}: "
                                     f"{existing.text[:300]}", service="kibana")
        if response.status_code not in (200, 201):
            raise ServiceUnavailable(f"Kibana refused rule {body.get('name')!r} (HTTP {response.status_code}): "
                                     f"{response.text[:500]}", service="kibana")
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
        report.imported = int(answer.get("successCount", 0))
        for error in answer.get("errors") or []:
            report.errors.append(f"{error.get('type')} {error.get('id')}: {json.dumps(error.get('error'))}")
        for item in kibana_rules(settings, ruleset):
            report.rules[item["rule"]] = kibana.upsert_rule(item["id"], item["body"])
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
