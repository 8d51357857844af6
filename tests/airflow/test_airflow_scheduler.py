"""The real scheduler: `airflow standalone` (3.3, SQLite, LocalExecutor) with the DAG folder, an AIRFLOW_HOME and
ports of its own, the way an operator starts it (docs/operators/airflow.md), on the real stack and the fake
platform:

    db migrate ─▶ pools import ─▶ standalone ─▶ unpause alerts, crawl_trending (a run for the last slot at once)
    ─▶ crawl succeeds (summary counts its one entry) ─▶ unpause refresh_spread ─▶ vigil_spread event
    ─▶ alerts run from the asset ─▶ no error-level line in the scheduler's or any task's log
    ─▶ delete a pool ─▶ a triggered crawl fails within seconds, naming the pool and the import command

The whole process group is stopped at the end: the scheduler, DAG processor, triggerer and api-server outlive
`airflow standalone` itself.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from support.crawl import ROOT, crawl_overrides, remove_test_objects, settings_env, settings_for
from support.fakeplatform import FakePlatform, FakeVideo, MediaFactory

from pipeline import Settings, run_setup
from pipeline.pools import IMPORT_COMMAND, pools_file

pytestmark = [pytest.mark.kafka, pytest.mark.elasticsearch, pytest.mark.slow]

AIRFLOW = Path(sys.executable).with_name("airflow")
#: an error-level line, in Airflow's console format ("[error    ]") or its JSON task logs ("level": "error")
ERROR_LINE = re.compile(r'\[error\s*\]|"level"\s*:\s*"error"', re.IGNORECASE)
STARTUP_S = 120
RUN_S = 300


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Standalone:
    """One `airflow standalone` in its own session (process group), with its REST API (all users admins)."""

    home: Path
    env: dict[str, str]
    port: int
    process: subprocess.Popen[bytes] | None = None
    output: Path = field(init=False)

    def __post_init__(self) -> None:
        self.output = self.home / "standalone.log"

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v2"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([str(AIRFLOW), *args], capture_output=True, text=True, env=self.env, timeout=180)
        assert done.returncode == 0, f"airflow {' '.join(args)}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        return done

    def start(self) -> None:
        with self.output.open("wb") as out:
            self.process = subprocess.Popen([str(AIRFLOW), "standalone"], stdout=out, stderr=subprocess.STDOUT,
                                            env=self.env, cwd=self.home, start_new_session=True)

    def stop(self) -> None:
        """SIGTERM to the whole group, SIGKILL to what is left after a grace period."""
        if self.process is None:
            return
        for sig, grace in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and _group_alive(self.process.pid):
                time.sleep(0.5)
            if not _group_alive(self.process.pid):
                break
        self.process.wait(timeout=10)

    def get(self, path: str, **params: Any) -> Any:
        answer = requests.get(f"{self.api}{path}", params=params, timeout=30)
        answer.raise_for_status()
        return answer.json()

    def send(self, method: str, path: str, body: Any = None) -> Any:
        answer = requests.request(method, f"{self.api}{path}", json=body, timeout=30)
        assert answer.ok, f"{method} {path}: {answer.status_code} {answer.text}"
        return answer.json() if answer.content else None

    def wait_until_up(self) -> None:
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, self.tail()
            try:
                dags = {d["dag_id"] for d in self.get("/dags")["dags"]}
            except requests.RequestException:
                dags = set()
            if {"crawl_trending", "refresh_spread", "alerts"} <= dags:
                errors = self.get("/importErrors")
                assert errors["total_entries"] == 0, errors
                return
            time.sleep(2)
        raise AssertionError(f"the DAGs did not appear within {STARTUP_S} s:\n{self.tail()}")

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self.get(f"/dags/{dag_id}/dagRuns", limit=50)["dag_runs"]

    def wait_for_run(self, dag_id: str, *, run_type: str | None = None, after: str | None = None,
                     timeout_s: float = RUN_S) -> dict[str, Any]:
        """The first run of ``dag_id`` (of ``run_type``, other than ``after``) to finish."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for run in self.runs(dag_id):
                if run_type and run["run_type"] != run_type or run["dag_run_id"] == after:
                    continue
                if run["state"] in ("success", "failed"):
                    return run
            time.sleep(2)
        raise AssertionError(f"no {run_type or ''} run of {dag_id} finished within {timeout_s} s: {self.runs(dag_id)}"
                             f"\n{self.tail()}")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        instances = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=200)["task_instances"]
        return {f"{t['task_id']}[{t['map_index']}]" if t["map_index"] >= 0 else t["task_id"]: t["state"]
                for t in instances}

    def tail(self, n: int = 60) -> str:
        lines = self.output.read_text(errors="replace").splitlines() if self.output.exists() else []
        return "\n".join(lines[-n:])


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    # zombies of the group count as gone
    states = subprocess.run(["ps", "-o", "stat=", "-g", str(pgid)], capture_output=True, text=True).stdout.split()
    return any(not s.startswith("Z") for s in states)


@pytest.fixture(scope="module")
def platform_media(tmp_path_factory: pytest.TempPathFactory) -> MediaFactory:
    return MediaFactory(tmp_path_factory.mktemp("scheduler-media"))


@pytest.fixture(scope="module")
def scheduler(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory,
              platform_media: MediaFactory) -> Iterator[tuple[Standalone, Settings, FakePlatform]]:
    """Settings on the stack, a one-entry watchlist on the fake platform, and a started `airflow standalone`."""
    work = tmp_path_factory.mktemp("scheduler")
    settings = settings_for(stack_env, work, **crawl_overrides(spread_min_interval_s=0.0))
    run_setup(settings)
    platform = FakePlatform().start()
    platform.add(FakeVideo("senate", "Senator accused of election fraud in heated debate",
                           "The senator denies the claims about the ballots.", media=platform_media.clip(2),
                           views=90_000, author="Capitol News"))
    platform.add(FakeVideo("cat", "Cute cat plays the piano", media=platform_media.clip(1), views=1_000_000))
    watchlist = work / "watchlist.yaml"
    watchlist.write_text(f"name: scheduler-test\nentries:\n  - kind: feed\n    target: {platform.feed_url}\n")
    port = _free_port()
    home = work / "airflow-home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIGIL_", "AIRFLOW"))}
    env |= settings_env(settings) | {
        "PATH": f"{AIRFLOW.parent}{os.pathsep}{os.environ.get('PATH', '')}",  # standalone starts `airflow ...`
        "VIGIL_WATCHLIST": str(watchlist),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        # tasks reach the API server here: it must follow the port, or no task starts
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(_free_port()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__PARALLELISM": "4",  # a small machine: a few task processes at a time
    }
    server = Standalone(home=home, env=env, port=port)
    try:
        server.cli("db", "migrate")
        server.cli("pools", "import", str(pools_file()))
        server.start()
        server.wait_until_up()
        yield server, settings, platform
    finally:
        server.stop()
        platform.stop()
        remove_test_objects(settings)


def _log_lines_at_error(server: Standalone) -> list[str]:
    """Error-level lines of the scheduler and the other components (standalone's output) and of every task log."""
    bad = []
    for path in [server.output, *sorted((server.home / "logs").rglob("*.log"))]:
        for line in path.read_text(errors="replace").splitlines():
            if ERROR_LINE.search(line):
                bad.append(f"{path.relative_to(server.home)}: {line[:300]}")
    return bad


def test_the_dags_under_the_real_scheduler(scheduler: tuple[Standalone, Settings, FakePlatform]) -> None:
    server, settings, platform = scheduler
    for dag_id in ("crawl_trending", "refresh_spread", "alerts"):
        assert server.get(f"/dags/{dag_id}")["is_paused"], f"{dag_id} should start paused"

    # unpausing starts a run for the last schedule slot at once (catchup is off: only that one)
    server.send("PATCH", "/dags/alerts", {"is_paused": False})
    server.send("PATCH", "/dags/crawl_trending", {"is_paused": False})
    crawl = server.wait_for_run("crawl_trending", run_type="scheduled")
    states = server.task_states("crawl_trending", crawl["dag_run_id"])
    assert crawl["state"] == "success", (states, server.tail())
    assert states["discover_other[0]"] == "success" and states["download_other[0]"] == "success", states
    assert len(server.runs("crawl_trending")) == 1
    summary = server.get(f"/dags/crawl_trending/dagRuns/{crawl['dag_run_id']}/taskInstances/summarize/xcomEntries/"
                         "return_value", deserialize=True)["value"]
    summary = json.loads(summary) if isinstance(summary, str) else summary
    assert summary["entries"] == 1 and summary["discovered"] == 2, summary
    assert summary["downloaded"] == 1 and summary["skipped"] == 1 and summary["seconds"] > 0, summary

    # the refresh re-polls the crawled video and updates vigil_spread: alerts runs from the asset event
    server.send("PATCH", "/dags/refresh_spread", {"is_paused": False})
    spread = server.wait_for_run("refresh_spread", run_type="scheduled")
    assert spread["state"] == "success", server.task_states("refresh_spread", spread["dag_run_id"])
    assert platform.page_requests("senate") >= 2  # read by the crawl, re-read by the refresh
    alerts = server.wait_for_run("alerts", run_type="asset_triggered")
    assert alerts["state"] == "success", server.task_states("alerts", alerts["dag_run_id"])
    events = [e for e in server.get("/assets/events")["asset_events"] if e["name"] == "vigil_spread"]
    assert [(e["source_dag_id"], e["source_task_id"]) for e in events] == [("refresh_spread", "update_clusters")]
    assert alerts["dag_run_id"] in {r["run_id"] for r in events[0]["created_dagruns"]}, events

    # quiet: a healthy run logs no error-level line anywhere
    assert not _log_lines_at_error(server), "\n".join(_log_lines_at_error(server))

    # a pool deleted: the next run fails at once and says which pool and what to run
    server.send("DELETE", "/pools/vigil-platform-other")
    started = time.monotonic()
    triggered = server.send("POST", "/dags/crawl_trending/dagRuns", {"logical_date": None})
    run = server.wait_for_run("crawl_trending", run_type="manual", timeout_s=120)
    elapsed = time.monotonic() - started
    assert run["dag_run_id"] == triggered["dag_run_id"] and run["state"] == "failed", run
    assert elapsed < 90, f"the run took {elapsed:.0f} s to fail"
    states = server.task_states("crawl_trending", run["dag_run_id"])
    assert states["discover_other[0]"] == "failed" and states["summarize"] == "upstream_failed", states
    note = server.get(f"/dags/crawl_trending/dagRuns/{run['dag_run_id']}")["note"] or ""
    assert "'vigil-platform-other' does not exist" in note and IMPORT_COMMAND in note, note
    said = [line for line in server.output.read_text(errors="replace").splitlines() if "vigil-platform-other" in line]
    assert any("does not exist" in line and IMPORT_COMMAND in line for line in said), said[-5:]
