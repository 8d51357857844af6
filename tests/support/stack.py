"""The tests' connection to the local stack and to subprocesses: settings of their own on the real servers, their
removal afterwards, and the one way settings become a subprocess's environment."""
from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from pipeline import Settings, make_admin, make_es_client
from pipeline._elasticsearch import INDEX_NAMES

__all__ = ["ROOT", "STACK", "CONNECTION_VARS", "parse_exports", "settings_for", "remove_test_objects", "settings_env"]

ROOT = Path(__file__).resolve().parents[2]
STACK = ROOT / "infra" / "local" / "stack"
CONNECTION_VARS = ("VIGIL_KAFKA_BOOTSTRAP", "VIGIL_ES_URL", "VIGIL_ES_USER", "VIGIL_ES_PASSWORD", "VIGIL_ES_CA_FILE")


def parse_exports(text: str) -> dict[str, str]:
    env = {}
    for line in text.splitlines():
        if line.startswith("export ") and "=" in line:
            key, value = line[len("export "):].split("=", 1)
            env[key] = value
    return env


def settings_for(stack_env: dict[str, str], tmp_path: Path, **overrides: object) -> Settings:
    """Settings pointing at the stack, with names of their own so tests never see each other's data."""
    uniq = uuid.uuid4().hex[:8]
    values: dict[str, object] = dict(
        kafka_bootstrap=stack_env["VIGIL_KAFKA_BOOTSTRAP"],
        es_url=stack_env["VIGIL_ES_URL"],
        es_user=stack_env.get("VIGIL_ES_USER"),
        es_password=stack_env.get("VIGIL_ES_PASSWORD"),
        es_ca_file=stack_env.get("VIGIL_ES_CA_FILE"),
        topic_jobs=f"test-{uniq}.vigil.jobs",
        topic_results=f"test-{uniq}.vigil.results",
        topic_dlq=f"test-{uniq}.vigil.dlq",
        topic_partitions=2,
        worker_group=f"test-{uniq}-workers",
        sink_group=f"test-{uniq}-sink",
        es_index_prefix=f"test-{uniq}",
        es_replicas=0,
        media_store=str(tmp_path / "media"),
    )
    values.update(overrides)
    return Settings(**values)


def remove_test_objects(settings: Settings) -> None:
    """Delete the topics, indices and templates one test created (names are explicit: no wildcard deletes)."""
    admin = make_admin(settings)
    try:
        existing = set(admin.list_topics())
        doomed = [t for t in settings.topics if t in existing]
        if doomed:
            admin.delete_topics(doomed)
    finally:
        admin.close()
    es = make_es_client(settings)
    prefix = settings.es_index_prefix
    indices = [settings.index(n) for n in INDEX_NAMES if n != "spread"]  # type: ignore[arg-type]
    indices += [f"{prefix}-spread-000001", f"{prefix}-spread-000002", f"{prefix}-console-users"]  # spread: an alias
    es.options(ignore_status=404).indices.delete(index=",".join(indices), ignore_unavailable=True)
    for name in INDEX_NAMES:  # every index template `vigil setup` applied, before the components they use
        es.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}-{name}")
    for name in ("settings", "spread-ilm"):
        es.options(ignore_status=404).cluster.delete_component_template(name=f"{prefix}-{name}")
    es.close()


def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def settings_env(settings: Settings, *, inherit: bool = False, **extra: str) -> dict[str, str]:
    """The VIGIL_* variables that reproduce ``settings`` in a subprocess (the values that differ from the defaults),
    rendered as `Settings` reads them: comma-separated fields (annotated ``NoDecode``) joined with commas, other lists
    and dicts as JSON, booleans as true/false, secrets in the clear. ``inherit``: on top of this process's
    environment without its own VIGIL_* variables (and ``COLUMNS=200``: rich wraps tables at 80 columns when not on a
    terminal). ``extra`` last."""
    from pydantic_settings import NoDecode

    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")} if inherit else {}
    if inherit:
        env["COLUMNS"] = "200"
    sections = Settings.sections()
    values: list[tuple[str, Any, Any]] = []  # (variable, field info, value)
    for name, value in settings.model_dump(exclude_defaults=True).items():
        if name in sections:  # a detector section: each field by its documented flat name
            config = sections[name]
            values += [(config.env_name(field), config.model_fields[field], v) for field, v in value.items()]
        else:
            values.append((f"VIGIL_{name.upper()}", Settings.model_fields[name], value))
    for variable, field_info, value in values:
        if value is None:
            continue
        comma = any(m is NoDecode or isinstance(m, NoDecode) for m in field_info.metadata)
        value = _plain(value)
        if isinstance(value, list) and comma:
            text = ",".join(str(v) for v in value)
        elif isinstance(value, list | dict):
            text = json.dumps(value, default=str)
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = str(value)
        env[variable] = text
    env.update(extra)
    return env
