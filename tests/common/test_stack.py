"""infra/local/stack on an isolated instance of its own (own state directory and ports): up, up again, down."""
from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.stack import STACK, parse_exports

pytestmark = [pytest.mark.stack, pytest.mark.slow]

KAFKA_PORT, ES_PORT = 9392, 9450


@pytest.fixture
def stack_instance() -> Iterator[dict[str, str]]:
    # world-traversable, because Elasticsearch runs as an unprivileged account when the tests run as root
    state = Path("/var/tmp") / f"vigil-stack-test-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, VIGIL_STACK_DIR=str(state), VIGIL_STACK_KAFKA_PORT=str(KAFKA_PORT),
               VIGIL_STACK_ES_PORT=str(ES_PORT), VIGIL_STACK_ES_HEAP="384m")
    yield env
    subprocess.run([str(STACK), "down"], env=env, capture_output=True)
    shutil.rmtree(state, ignore_errors=True)


def stack(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(STACK), *args], env=env, capture_output=True, text=True, timeout=400)


def processes_of(state_dir: str) -> dict[str, list[int]]:
    """Server JVMs whose command line mentions this instance's state directory, by server."""
    pids: dict[str, list[int]] = {"kafka": [], "elasticsearch": []}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if state_dir not in cmdline or "java" not in cmdline.split(" ", 1)[0]:
            continue
        if "kafka.Kafka" in cmdline:
            pids["kafka"].append(int(entry.name))
        elif "org.elasticsearch.bootstrap.Elasticsearch" in cmdline:  # the server, not its CLI launcher
            pids["elasticsearch"].append(int(entry.name))
    return pids


def test_up_twice_down_once(stack_instance: dict[str, str]) -> None:
    state = stack_instance["VIGIL_STACK_DIR"]
    first = stack(stack_instance, "up")
    assert first.returncode == 0, first.stderr
    assert stack(stack_instance, "status").returncode == 0
    env = parse_exports(stack(stack_instance, "env").stdout)
    assert env["VIGIL_KAFKA_BOOTSTRAP"] == f"127.0.0.1:{KAFKA_PORT}"
    assert env["VIGIL_ES_URL"] == f"https://127.0.0.1:{ES_PORT}"
    assert Path(env["VIGIL_ES_CA_FILE"]).is_file() and len(env["VIGIL_ES_PASSWORD"]) >= 16
    running = processes_of(state)
    assert [len(running["kafka"]), len(running["elasticsearch"])] == [1, 1]

    second = stack(stack_instance, "up")
    assert second.returncode == 0, second.stderr
    assert "already running" in second.stderr
    assert "resolving" not in second.stderr and "unpacking" not in second.stderr  # nothing fetched again
    assert processes_of(state) == running  # no duplicates

    down = stack(stack_instance, "down")
    assert down.returncode == 0
    assert processes_of(state) == {"kafka": [], "elasticsearch": []}
    assert stack(stack_instance, "status").returncode == 1


def test_a_port_taken_by_someone_else_is_refused(stack_instance: dict[str, str]) -> None:
    import socket

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", KAFKA_PORT))
        squatter.listen()
        result = stack(stack_instance, "up", "kafka")
    assert result.returncode == 1
    assert f"port {KAFKA_PORT} is taken by a process this stack did not start" in result.stderr


def test_unknown_command_prints_usage() -> None:
    result = subprocess.run([str(STACK), "launch"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "infra/local/stack up" in result.stderr
