"""The Elasticsearch client, built in one place from Settings, and the index templates `vigil setup` applies.

Templates live as JSON under ``infra/elasticsearch/`` (shipped inside the wheel as ``pipeline/_data``). Each
body's hash is stored in its ``_meta.vigil_hash``; applying is idempotent and rewrites only what changed.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import elastic_transport
import elasticsearch
from elasticsearch import Elasticsearch

from ._exceptions import AuthenticationFailed, ConfigError, ServiceUnavailable, SetupMissing
from ._settings import Settings

__all__ = ["make_es_client", "es_errors", "IndexChange", "apply_templates", "check_templates", "template_dir",
           "INDEX_NAMES", "load_index_templates", "snapshot_action", "refused"]

logger = logging.getLogger(__name__)

INDEX_NAMES = ("videos", "detections", "spread", "alerts", "verdicts", "watchlists", "watchlist-runs")
LOCAL_STACK_HINT = 'with the local stack: eval "$(infra/local/stack env)"'
T = TypeVar("T")


def template_dir() -> Path:
    """``infra/elasticsearch`` of a source checkout, or its copy inside an installed wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_data" / "elasticsearch", here.parent / "infra" / "elasticsearch"):
        if (candidate / "index").is_dir():
            return candidate
    raise ConfigError(f"index templates not found next to {here} (expected infra/elasticsearch in the source tree)")


def make_es_client(settings: Settings, **overrides: Any) -> Elasticsearch:
    """A client for settings.es_url with the configured credentials and CA; retries transient failures."""
    options: dict[str, Any] = {
        "hosts": [h.strip() for h in settings.es_url.split(",") if h.strip()],
        "request_timeout": settings.es_request_timeout_s,
        "retry_on_timeout": True,
        "max_retries": 3,
        "verify_certs": settings.es_verify_certs,
    }
    if settings.es_ca_file:
        if not Path(settings.es_ca_file).is_file():
            raise ConfigError(f"VIGIL_ES_CA_FILE names {settings.es_ca_file}, which does not exist")
        options["ca_certs"] = str(settings.es_ca_file)
    if settings.es_api_key is not None:
        options["api_key"] = settings.es_api_key.get_secret_value()
    elif settings.es_user:
        password = settings.es_password.get_secret_value() if settings.es_password else ""
        options["basic_auth"] = (settings.es_user, password)
    options.update(overrides)
    return Elasticsearch(**options)


def _who(settings: Settings) -> str:
    if settings.es_api_key is not None:
        return "the API key in VIGIL_ES_API_KEY"
    if settings.es_user:
        return f"user {settings.es_user!r}"
    return "no credentials"


@contextmanager
def es_errors(settings: Settings) -> Iterator[None]:
    """Translate client errors into Vigil's tree, with a hint saying what to fix."""
    try:
        yield
    except elasticsearch.AuthenticationException as exc:
        if settings.es_api_key is None and not settings.es_user:
            hint = f"set VIGIL_ES_USER and VIGIL_ES_PASSWORD, or VIGIL_ES_API_KEY ({LOCAL_STACK_HINT})"
        else:
            hint = f"check VIGIL_ES_USER / VIGIL_ES_PASSWORD or VIGIL_ES_API_KEY ({LOCAL_STACK_HINT})"
        raise AuthenticationFailed(f"Elasticsearch at {settings.es_url} refused {_who(settings)} (HTTP 401)",
                                   service="elasticsearch", hint=hint) from exc
    except elasticsearch.AuthorizationException as exc:
        raise AuthenticationFailed(f"Elasticsearch at {settings.es_url}: {_who(settings)} lacks a privilege "
                                   f"(HTTP 403): {exc.message}", service="elasticsearch",
                                   hint="give the user the manage_index_templates, monitor and index privileges "
                                        "on the vigil-* indices") from exc
    except elastic_transport.TlsError as exc:
        raise ServiceUnavailable(f"TLS with Elasticsearch at {settings.es_url} failed: {exc}", service="elasticsearch",
                                 hint="set VIGIL_ES_CA_FILE to the CA that signed the server's certificate") from exc
    except (elastic_transport.ConnectionError, elastic_transport.ConnectionTimeout) as exc:
        raise ServiceUnavailable(f"Elasticsearch at {settings.es_url} is not reachable: {exc}",
                                 service="elasticsearch",
                                 hint="is it running? locally: infra/local/stack up; check VIGIL_ES_URL "
                                      "(http vs https)") from exc
    except elasticsearch.UnsupportedProductError as exc:
        raise ServiceUnavailable(f"{settings.es_url} is not an Elasticsearch server the client accepts: {exc}",
                                 service="elasticsearch", hint="check VIGIL_ES_URL") from exc


# ------------------------------------------------------------------ templates

@dataclass(frozen=True)
class IndexChange:
    """What `apply_templates` did to one object in Elasticsearch."""

    kind: str  # ilm-policy | component-template | index-template | index
    name: str
    action: str  # created | updated | unchanged | skipped
    detail: str = ""


def _render(node: Any, settings: Settings) -> Any:
    if isinstance(node, dict):
        return {k: _render(v, settings) for k, v in node.items()}
    if isinstance(node, list):
        return [_render(v, settings) for v in node]
    if node == "{{replicas}}":
        return settings.es_replicas
    if isinstance(node, str):
        return node.replace("{{prefix}}", settings.es_index_prefix)
    return node


def _with_hash(body: dict[str, Any], meta_holder: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
    meta_holder.setdefault("_meta", {})["vigil_hash"] = digest
    return digest


def _load(path: Path, settings: Settings) -> dict[str, Any]:
    return _render(json.loads(path.read_text()), settings)


def load_component_templates(settings: Settings) -> dict[str, dict[str, Any]]:
    """{template name: body} for every file under component/, names prefixed."""
    out = {}
    for path in sorted((template_dir() / "component").glob("*.json")):
        body = _load(path, settings)
        _with_hash(body, body)
        out[f"{settings.es_index_prefix}-{path.stem}"] = body
    return out


def load_index_templates(settings: Settings) -> dict[str, dict[str, Any]]:
    """{template name: body} for every file under index/, with index patterns and component names filled in."""
    prefix = settings.es_index_prefix
    out = {}
    for path in sorted((template_dir() / "index").glob("*.json")):
        body = _load(path, settings)
        description = body.pop("_doc", "")
        name = f"{prefix}-{path.stem}"
        # spread is written through an alias over rolled-over indices: name-000001, -000002, …
        body["index_patterns"] = [f"{name}-*"] if path.stem == "spread" else [name]
        body["composed_of"] = [f"{prefix}-{c}" for c in body.get("composed_of", [])]
        if "ignore_missing_component_templates" in body:
            body["ignore_missing_component_templates"] = [
                f"{prefix}-{c}" for c in body["ignore_missing_component_templates"]]
        body.setdefault("_meta", {})["description"] = description
        _with_hash(body, body)
        out[name] = body
    return out


def load_ilm_policies(settings: Settings) -> dict[str, dict[str, Any]]:
    out = {}
    for path in sorted((template_dir() / "ilm").glob("*.json")):
        body = _load(path, settings)
        _with_hash(body, body["policy"])
        out[f"{settings.es_index_prefix}-{path.stem}"] = body
    return out


def _ilm_available(es: Elasticsearch) -> bool:
    try:
        es.ilm.get_status()
    except (elasticsearch.NotFoundError, elasticsearch.BadRequestError):
        return False
    except elasticsearch.ApiError as exc:
        if exc.status_code in (400, 404, 405, 410):
            return False
        raise
    return True


def _existing_hash(getter: Callable[[], T], extract: Callable[[T], dict[str, Any]]) -> str | None:
    """The vigil_hash of an existing object, "" when it exists without one, None when absent."""
    try:
        found = getter()
    except elasticsearch.NotFoundError:
        return None
    meta = extract(found).get("_meta") or {}
    return meta.get("vigil_hash", "")


def _put_if_changed(kind: str, name: str, want: str, have: str | None, put: Callable[[], Any]) -> IndexChange:
    if have == want:
        return IndexChange(kind, name, "unchanged")
    put()
    return IndexChange(kind, name, "created" if have is None else "updated")


def apply_templates(es: Elasticsearch, settings: Settings) -> list[IndexChange]:
    """Apply ILM policy (where supported), component templates, index templates, then create missing indices."""
    changes: list[IndexChange] = []
    with es_errors(settings):
        ilm = _ilm_available(es)
        for name, body in load_ilm_policies(settings).items():
            if not ilm:
                changes.append(IndexChange("ilm-policy", name, "skipped", "this cluster has no ILM"))
                continue
            have = _existing_hash(lambda: es.ilm.get_lifecycle(name=name), lambda r: r[name]["policy"])
            changes.append(_put_if_changed("ilm-policy", name, body["policy"]["_meta"]["vigil_hash"], have,
                                           lambda: es.ilm.put_lifecycle(name=name, policy=body["policy"])))
        for name, body in load_component_templates(settings).items():
            if "lifecycle" in json.dumps(body.get("template", {}).get("settings", {})) and not ilm:
                changes.append(IndexChange("component-template", name, "skipped", "this cluster has no ILM"))
                continue
            have = _existing_hash(lambda: es.cluster.get_component_template(name=name),
                                  lambda r: r["component_templates"][0]["component_template"])
            changes.append(_put_if_changed("component-template", name, body["_meta"]["vigil_hash"], have,
                                           lambda: es.cluster.put_component_template(name=name, **body)))
        templates = load_index_templates(settings)
        for name, body in templates.items():
            have = _existing_hash(lambda: es.indices.get_index_template(name=name),
                                  lambda r: r["index_templates"][0]["index_template"])
            change = _put_if_changed("index-template", name, body["_meta"]["vigil_hash"], have,
                                     lambda: es.indices.put_index_template(name=name, **body))
            changes.append(change)
            if change.action == "updated" and es.indices.exists(index=name):
                # additive mapping changes reach the existing index too; a conflicting one raises here
                _update_mappings(es, name, body["template"]["mappings"])
        for short in INDEX_NAMES:
            changes.append(_ensure_index(es, settings, short))
    return changes


_TIME_SERIES_PARAMS = ("time_series_dimension", "time_series_metric")


def _without_time_series(node: Any) -> Any:
    """A mapping without its time-series parameters (for an index that is not a time-series one)."""
    if isinstance(node, dict):
        return {k: _without_time_series(v) for k, v in node.items() if k not in _TIME_SERIES_PARAMS}
    return node


def _update_mappings(es: Elasticsearch, name: str, mappings: dict[str, Any]) -> None:
    """Additive mapping changes onto an existing index, or each index behind the spread alias: a standard index from
    before spread became a time-series index takes the fields without their time-series parameters (it keeps its
    mode; the next rollover creates a time-series index from the template)."""
    found = es.indices.get_settings(index=name)  # every index behind the name (a filtered read omits standard ones)
    for index, body in found.items():
        mode = ((body.get("settings") or {}).get("index") or {}).get("mode")
        es.indices.put_mapping(index=index, **(mappings if mode == "time_series" else _without_time_series(mappings)))


def snapshot_action(index: str, document: dict[str, Any]) -> dict[str, Any]:
    """A bulk action for one spread snapshot: ``create`` with no id, as a time-series index wants (the id comes from
    the video and the time, so a snapshot written twice is refused as a duplicate: see `refused`)."""
    return {"_op_type": "create", "_index": index, "_source": document}


def refused(errors: list[Any]) -> list[Any]:
    """Bulk errors that are real: a snapshot ``create`` refused as a duplicate (409: already written) is not."""
    return [e for e in errors if not (isinstance(e, dict) and (e.get("create") or {}).get("status") == 409)]


def _ensure_index(es: Elasticsearch, settings: Settings, short: str) -> IndexChange:
    name = settings.index(short)  # type: ignore[arg-type]
    if short != "spread":
        if es.indices.exists(index=name):
            return IndexChange("index", name, "unchanged")
        try:
            es.indices.create(index=name)
        except elasticsearch.BadRequestError as exc:
            if exc.error != "resource_already_exists_exception":
                raise
            return IndexChange("index", name, "unchanged")
        return IndexChange("index", name, "created")
    if es.indices.exists_alias(name=name):
        return IndexChange("index", name, "unchanged", "write alias")
    if es.indices.exists(index=name):
        raise SetupMissing(f"{name} exists as a plain index, but Vigil writes spread snapshots through an alias "
                           f"of that name", service="elasticsearch",
                           hint=f"reindex it into {name}-000001, delete it, then run `vigil setup`")
    first = f"{name}-000001"
    es.indices.create(index=first, aliases={name: {"is_write_index": True}})
    return IndexChange("index", name, "created", f"write alias over {first}")


def check_templates(es: Elasticsearch, settings: Settings) -> list[str]:
    """Problems with Vigil's templates and indices, in words; empty when everything is as `setup` leaves it."""
    problems = []
    with es_errors(settings):
        for name, body in load_index_templates(settings).items():
            have = _existing_hash(lambda: es.indices.get_index_template(name=name),
                                  lambda r: r["index_templates"][0]["index_template"])
            if have is None:
                problems.append(f"index template {name} is missing")
            elif have != body["_meta"]["vigil_hash"]:
                problems.append(f"index template {name} differs from this version's")
        for short in INDEX_NAMES:
            name = settings.index(short)  # type: ignore[arg-type]
            if not es.indices.exists(index=name):
                problems.append(f"index {name} is missing")
    return problems

