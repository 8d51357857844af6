"""Fixtures shared by both sides' tests.

Tests marked ``kafka`` or ``elasticsearch`` run against the real servers of the local stack: the ``stack_env``
fixture runs ``infra/local/stack up`` (which reuses a running stack) and reads ``infra/local/stack env``.
Set VIGIL_TEST_EXTERNAL_STACK=1 to use the VIGIL_* connection variables of the environment as they are.
Every test gets its own topic names and index prefix, removed afterwards.
"""
from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline import Settings, make_admin, make_es_client
from pipeline._elasticsearch import INDEX_NAMES

ROOT = Path(__file__).resolve().parents[1]
STACK = ROOT / "infra" / "local" / "stack"
CONNECTION_VARS = ("VIGIL_KAFKA_BOOTSTRAP", "VIGIL_ES_URL", "VIGIL_ES_USER", "VIGIL_ES_PASSWORD", "VIGIL_ES_CA_FILE")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT / "tests").parts
        if parts[0] in ("airflow", "worker"):
            item.add_marker(getattr(pytest.mark, parts[0]))


def parse_exports(text: str) -> dict[str, str]:
    env = {}
    for line in text.splitlines():
        if line.startswith("export ") and "=" in line:
            key, value = line[len("export "):].split("=", 1)
            env[key] = value
    return env


@pytest.fixture(scope="session")
def stack_env() -> dict[str, str]:
    """VIGIL_* connection variables of a running local stack (started if needed)."""
    if os.environ.get("VIGIL_TEST_EXTERNAL_STACK"):
        return {k: os.environ[k] for k in CONNECTION_VARS if k in os.environ}
    up = subprocess.run([str(STACK), "up"], capture_output=True, text=True)
    if up.returncode != 0:
        pytest.fail(f"infra/local/stack up failed:\n{up.stderr}")
    out = subprocess.run([str(STACK), "env"], capture_output=True, text=True, check=True).stdout
    return parse_exports(out)


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
    shorts = ("videos", "detections", "alerts", "verdicts", "watchlists", "watchlist-runs")
    indices = [settings.index(n) for n in shorts] + [f"{prefix}-spread-000001", f"{prefix}-spread-000002",  # a rollover
                                                     f"{prefix}-console-users"]  # type: ignore[arg-type]
    es.options(ignore_status=404).indices.delete(index=",".join(indices), ignore_unavailable=True)
    for name in INDEX_NAMES:  # every index template `vigil setup` applied, before the components they use
        es.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}-{name}")
    for name in ("settings", "spread-ilm"):
        es.options(ignore_status=404).cluster.delete_component_template(name=f"{prefix}-{name}")
    es.close()


@pytest.fixture
def stack_settings(stack_env: dict[str, str], tmp_path: Path) -> Iterator[Settings]:
    """Settings for one test on the real stack; its topics and indices are removed afterwards."""
    settings = settings_for(stack_env, tmp_path)
    yield settings
    remove_test_objects(settings)


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    """os.environ without VIGIL_* variables, plus VIGIL_* variables that reproduce ``settings`` in a subprocess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    for field, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        elif isinstance(value, (list, dict)):
            value = json.dumps(value, default=str)
        env[f"VIGIL_{field.upper()}"] = str(value)
    env["COLUMNS"] = "200"  # rich wraps tables at 80 columns when not on a terminal
    env.update(extra)
    return env


@pytest.fixture
def unused_port() -> int:
    """A loopback port nothing listens on (bound, read, released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
