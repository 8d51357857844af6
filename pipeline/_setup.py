"""`vigil setup` and `vigil status`: create what Vigil needs on Kafka and Elasticsearch, and say what is wrong."""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

import fsspec

from ._elasticsearch import IndexChange, apply_templates, check_templates, es_errors, make_es_client
from ._exceptions import ConfigError, ServiceError
from ._kafka import TopicChange, check_topics, ensure_topics, make_admin
from ._settings import Settings

__all__ = ["SetupReport", "run_setup", "Check", "run_status"]

logger = logging.getLogger(__name__)

STATUS_TIMEOUT_MS = 5_000


@dataclass(frozen=True)
class SetupReport:
    topics: list[TopicChange]
    elasticsearch: list[IndexChange]

    @property
    def changed(self) -> bool:
        return any(c.action == "created" for c in self.topics) or any(
            c.action in ("created", "updated") for c in self.elasticsearch)


def run_setup(settings: Settings, *, admin: Any = None, es: Any = None) -> SetupReport:
    """Create the topics and apply templates and indices; idempotent. Clients may be passed in (tests, reuse)."""
    own_admin = admin is None
    admin = admin or make_admin(settings)
    try:
        topics = ensure_topics(admin, settings)
    finally:
        if own_admin:
            admin.close()
    es = es or make_es_client(settings)
    changes = apply_templates(es, settings)
    changes.append(ensure_console_user(es, settings))
    return SetupReport(topics=topics, elasticsearch=changes)


def role_body(name: str, settings: Settings) -> dict[str, Any]:
    """A role of ``infra/elasticsearch/roles/`` for this prefix (``pipeline`` or ``console``)."""
    import json

    from ._elasticsearch import template_dir

    text = (template_dir() / "roles" / f"{name}.json").read_text(encoding="utf-8")
    body = json.loads(text)
    for group in body.get("indices", []):
        group["names"] = [n.replace("{{prefix}}", settings.es_index_prefix.replace(".", "\\.") if n.startswith("/")
                                    else settings.es_index_prefix) for n in group["names"]]
    return body


def ensure_console_user(es: Any, settings: Settings) -> IndexChange:
    """The console's own Elasticsearch role and user (only its index, ``<prefix>-console-*``), unless
    VIGIL_CONSOLE_ES_* name one already. The password made is kept in ``console_es_credentials_file`` (0600), where
    the console finds it. Needs the manage_security privilege; without it, says what to set instead."""
    import json
    import os
    import secrets

    from .console._accounts import store_credentials

    name = f"{settings.es_index_prefix}_console"
    if settings.console_es_user or settings.console_es_api_key is not None:
        return IndexChange("security", "console user", "unchanged", "given by VIGIL_CONSOLE_ES_*")
    if store_credentials(settings) is not None:
        return IndexChange("security", name, "unchanged", f"kept in {settings.console_es_credentials_file}")
    hint = ("set VIGIL_CONSOLE_ES_USER / VIGIL_CONSOLE_ES_PASSWORD to a user with the role of "
            "infra/elasticsearch/roles/console.json, or run setup with credentials that may manage security")
    try:
        allowed = es.security.has_privileges(cluster=["manage_security"])["cluster"]["manage_security"]
        if not allowed:
            return IndexChange("security", name, "skipped", f"no manage_security privilege: {hint}")
        body = role_body("console", settings)
        body.pop("description", None)
        es.security.put_role(name=name, cluster=body["cluster"], indices=body["indices"])
        password = secrets.token_urlsafe(24)
        es.security.put_user(username=name, password=password, roles=[name], full_name="Vigil console")
    except Exception as exc:  # noqa: BLE001 - a cluster without native users (file realm only) is told what to do
        return IndexChange("security", name, "skipped", f"{type(exc).__name__}: {str(exc)[:120]}; {hint}")
    path = settings.console_es_credentials_file.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"user": name, "password": password, "es_url": settings.es_url,
                   "prefix": settings.es_index_prefix}, handle)
    return IndexChange("security", name, "created", f"role and user; password in {path} (0600)")


@dataclass(frozen=True)
class Check:
    """One line of `vigil status`: a dependency, whether it is fine, what was seen and what to do."""

    name: str
    ok: bool
    detail: str
    hint: str = ""


def _check_kafka(settings: Settings) -> list[Check]:
    try:
        admin = make_admin(settings, bootstrap_timeout_ms=STATUS_TIMEOUT_MS)
    except ServiceError as exc:
        return [Check("kafka", False, exc.message, exc.hint)]
    try:
        counts = check_topics(admin, settings)
    except ServiceError as exc:
        return [Check("kafka", True, f"reachable at {settings.kafka_bootstrap}"),
                Check("kafka topics", False, exc.message, exc.hint)]
    finally:
        admin.close()
    listing = ", ".join(f"{t} ({n})" for t, n in counts.items())
    return [Check("kafka", True, f"reachable at {settings.kafka_bootstrap}"),
            Check("kafka topics", True, listing)]


def _check_elasticsearch(settings: Settings) -> list[Check]:
    try:
        es = make_es_client(settings, max_retries=0, request_timeout=min(settings.es_request_timeout_s, 10))
        with es_errors(settings):
            health = es.cluster.health()
    except ConfigError as exc:
        return [Check("elasticsearch", False, str(exc), "fix the setting")]
    except ServiceError as exc:
        return [Check("elasticsearch", False, exc.message, exc.hint)]
    checks = [Check("elasticsearch", health["status"] != "red",
                    f"{settings.es_url}: cluster {health['cluster_name']!r} is {health['status']}",
                    "" if health["status"] != "red" else "some primary shards are unassigned: check the cluster")]
    try:
        problems = check_templates(es, settings)
    except ServiceError as exc:
        return [*checks, Check("index templates", False, exc.message, exc.hint)]
    if problems:
        checks.append(Check("index templates", False, "; ".join(problems), "run `vigil setup`"))
    else:
        checks.append(Check("index templates", True, ", ".join(settings.index(n) for n in  # type: ignore[arg-type]
                                                                ("videos", "detections", "spread", "alerts"))))
    return checks


def _check_media_store(settings: Settings) -> Check:
    try:
        fs, root = fsspec.core.url_to_fs(settings.media_store)
        fs.makedirs(root, exist_ok=True)
        probe = f"{root.rstrip('/')}/.vigil-status-{uuid.uuid4().hex}"
        fs.pipe(probe, b"ok")
        fs.rm(probe)
    except Exception as exc:  # noqa: BLE001 - any backend failure is reported, not raised
        return Check("media store", False, f"{settings.media_store} is not writable: {exc}",
                     "check VIGIL_MEDIA_STORE and its credentials")
    return Check("media store", True, f"{settings.media_store} is writable")


NOT_HERE = "not in this environment (the Airflow side runs no detectors)"
#: packages only the worker environment has; without them this is the Airflow side, whatever else is installed
_WORKER_SIDE = ("mediapipe",)


def worker_side() -> bool:
    """Whether this is the worker environment (detectors can run here): `vigil status` adds their checks
    (``pipeline.worker.status``)."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in _WORKER_SIDE)


def not_here_checks() -> list[Check]:
    """The worker side's lines of `vigil status` where this is not the worker environment."""
    return [Check(name, True, NOT_HERE) for name in ("torch device", "face mesh", "models")]


def _check_ytdlp(settings: Settings) -> Check:
    """The installed yt-dlp (the part that ages fastest) against the pin, if one is set."""
    try:
        from yt_dlp.version import __version__ as installed
    except ImportError:
        return Check("yt-dlp", not settings.ytdlp_version, "not installed here",
                     "install the crawl extra (`infra/install`)" if settings.ytdlp_version else "")
    if settings.ytdlp_version and settings.ytdlp_version != installed:
        return Check("yt-dlp", False, f"{installed} installed, VIGIL_YTDLP_VERSION pins {settings.ytdlp_version}",
                     f"run `infra/ytdlp-upgrade` (pip install yt-dlp=={settings.ytdlp_version}) or change the pin")
    pin = " (pinned)" if settings.ytdlp_version else " (not pinned: VIGIL_YTDLP_VERSION)"
    return Check("yt-dlp", True, f"{installed}{pin}")


def _check_watchlist_entries(settings: Settings) -> Check | None:
    """The watchlist entries whose latest crawl run failed (None where there is nothing to say or no crawler)."""
    try:
        from .crawl._health import failed_last_run
    except ImportError:
        return None
    try:
        es = make_es_client(settings, max_retries=0, request_timeout=min(settings.es_request_timeout_s, 10))
        try:
            failed = failed_last_run(es, settings)
        finally:
            es.close()
    except (ConfigError, ServiceError):
        return None  # the elasticsearch line already says what is wrong
    if not failed:
        return Check("watchlist entries", True, "no entry failed its last run")
    listing = "; ".join(f"{r['watchlist']}: {r.get('name') or r['target']} ({r.get('error') or 'failed'})"
                        for r in failed[:10])
    more = f" and {len(failed) - 10} more" if len(failed) > 10 else ""
    return Check("watchlist entries", False, f"{len(failed)} failed their last run: {listing}{more}",
                 "`vigil watchlist check` the entry; a platform change may need `infra/ytdlp-upgrade`")


def _check_airflow_pools() -> Check:
    """On the Airflow side: every pool Vigil's DAGs need exists (a missing one fails their runs at once)."""
    import importlib.util

    if importlib.util.find_spec("airflow") is None:
        return Check("airflow pools", True, "not in this environment (no Airflow here)")
    from .pools import IMPORT_COMMAND, PoolsUnknown, airflow_configured, missing_pools, required_pools

    if not airflow_configured():
        return Check("airflow pools", True, "Airflow is installed but not configured here (no AIRFLOW_HOME)")
    try:
        missing = missing_pools()
    except PoolsUnknown as exc:
        return Check("airflow pools", False, str(exc),
                     "check AIRFLOW_HOME / AIRFLOW__DATABASE__SQL_ALCHEMY_CONN, then `airflow db migrate`")
    if missing:
        return Check("airflow pools", False, f"missing: {', '.join(missing)}",
                     f"run `{IMPORT_COMMAND}` (after `airflow db migrate`)")
    return Check("airflow pools", True, f"all {len(required_pools())} present (vigil-platform-<family>)")


def run_status(settings: Settings) -> list[Check]:
    """Check every dependency both sides share; never raises for a dependency's failure. The worker side's own
    (torch device, face mesh, model checkpoints) are ``pipeline.worker.status``'s; `vigil status` runs both."""
    checks: list[Check] = []
    checks += _check_kafka(settings)
    checks += _check_elasticsearch(settings)
    checks.append(_check_media_store(settings))
    checks.append(_check_airflow_pools())
    checks.append(_check_ytdlp(settings))
    if (entries := _check_watchlist_entries(settings)) is not None:
        checks.append(entries)
    return checks

