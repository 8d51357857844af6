"""Fixtures of the Airflow side's tests: the fake platform and its media, crawl settings on the real stack, and a
migrated Airflow metadata database for `dag.test()`."""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.crawl import ROOT, crawl_overrides, remove_test_objects, settings_for
from support.fakeplatform import FakePlatform, MediaFactory

from pipeline import Settings, run_setup


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> MediaFactory:
    return MediaFactory(tmp_path_factory.mktemp("platform-media"))


@pytest.fixture
def platform() -> Iterator[FakePlatform]:
    with FakePlatform() as server:
        yield server


@pytest.fixture
def make_crawl_settings(stack_env: dict[str, str], tmp_path: Path) -> Iterator[Any]:
    """Build settings on the real stack (topics and indices of their own, set up), removed afterwards."""
    made: list[Settings] = []

    def make(**extra: Any) -> Settings:
        settings = settings_for(stack_env, tmp_path, **crawl_overrides(**extra))
        run_setup(settings)
        made.append(settings)
        return settings

    yield make
    for settings in made:
        remove_test_objects(settings)


@pytest.fixture
def crawl_settings(make_crawl_settings: Any) -> Settings:
    return make_crawl_settings()


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A migrated SQLite metadata database with Vigil's pools (set before airflow is first imported in this process;
    without the pools, Vigil's cluster policy fails the pooled tasks, as in production)."""
    assert "airflow" not in sys.modules, "airflow was imported before its environment was set"
    home = tmp_path_factory.mktemp("airflow-home")
    env = {"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"), "AIRFLOW__CORE__UNIT_TEST_MODE": "False"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    airflow = Path(sys.executable).with_name("airflow")
    for command in (["db", "migrate"], ["pools", "import", str(ROOT / "infra" / "airflow" / "pools.json")]):
        done = subprocess.run([str(airflow), *command], capture_output=True, text=True, env=os.environ.copy())
        if done.returncode != 0:
            pytest.fail(f"airflow {' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    yield home
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
