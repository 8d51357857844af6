"""Fixtures shared by both sides' tests.

Tests marked ``kafka`` or ``elasticsearch`` run against the real servers of the local stack: the ``stack_env``
fixture runs ``infra/local/stack up`` (which reuses a running stack) and reads ``infra/local/stack env``.
Set VIGIL_TEST_EXTERNAL_STACK=1 to use the VIGIL_* connection variables of the environment as they are.
Every test gets its own topic names and index prefix, removed afterwards.
"""
from __future__ import annotations

import importlib.metadata
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.stack import (CONNECTION_VARS, ROOT, STACK, parse_exports, remove_test_objects, settings_env,  # noqa: F401
                           settings_for)

from pipeline import Settings


#: each folder of tests runs in one environment (infra/test): the distribution that environment has and the other
#: lacks (by distribution, not module: with tests/ on the path, the folder tests/airflow reads as a module "airflow")
SIDES = {"common": "apache-airflow", "airflow": "apache-airflow", "worker": "torch"}
_skipped_sides: dict[str, str] = {}


def _side_missing(side: str) -> str | None:
    try:
        importlib.metadata.distribution(SIDES[side])
    except importlib.metadata.PackageNotFoundError:
        return SIDES[side]
    return None


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """A plain `pytest` from the root runs the folders this environment can run and skips the others, saying why
    (the summary's last lines)."""
    try:
        parts = collection_path.resolve().relative_to(ROOT / "tests").parts
    except ValueError:
        return None
    if not parts or parts[0] not in SIDES:
        return None
    missing = _side_missing(parts[0])
    if missing is None:
        return None
    asked = [Path(arg.split("::")[0]).resolve() for arg in config.args]
    if not any(a == collection_path.resolve() or a in collection_path.resolve().parents for a in asked):
        return True  # not asked for (pytest looks at a sibling folder): nothing to say
    _skipped_sides[f"tests/{parts[0]}"] = (f"{missing} is not installed in this environment; these tests run in the "
                                          f"{'worker' if parts[0] == 'worker' else 'Airflow'} environment "
                                          f"(`infra/test` runs each side in its own)")
    return True


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for folder, why in sorted(_skipped_sides.items()):
        terminalreporter.write_line(f"skipped {folder}: {why}", yellow=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT / "tests").parts
        if parts[0] in ("airflow", "worker"):
            item.add_marker(getattr(pytest.mark, parts[0]))


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


@pytest.fixture
def stack_settings(stack_env: dict[str, str], tmp_path: Path) -> Iterator[Settings]:
    """Settings for one test on the real stack; its topics and indices are removed afterwards."""
    settings = settings_for(stack_env, tmp_path)
    yield settings
    remove_test_objects(settings)


@pytest.fixture
def unused_port() -> int:
    """A loopback port nothing listens on (bound, read, released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
