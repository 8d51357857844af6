"""Helpers for the console's tests: a real `vigil console` process on a free port, accounts, a logged-in session."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from pipeline import Settings, make_es_client
from pipeline.console import Accounts

ROOT = Path(__file__).resolve().parents[1]
PASSWORDS = {"ana": "tulip-harbour-93", "root": "granite-lantern-57"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def add_accounts(settings: Settings) -> None:
    es = make_es_client(settings)
    try:
        accounts = Accounts(es, settings)
        accounts.add_user("ana", "analyst", PASSWORDS["ana"])
        accounts.add_user("root", "admin", PASSWORDS["root"])
    finally:
        es.close()


def _root_conftest() -> Any:
    """tests/conftest.py by its path: under tests/airflow the name ``conftest`` is that folder's own."""
    import importlib.util
    import sys

    name = "vigil_tests_root_conftest"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / "conftest.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a `vigil` subprocess with these settings (tests/worker on the path for the light suite)."""
    env = _root_conftest().settings_env(settings)
    env["VIGIL_WORKER_DETECTORS"] = ",".join(settings.worker_detectors)  # this list takes commas only, not JSON
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests" / "worker"), os.environ.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def start_console(settings: Settings, log: Path, port: int | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """`python -m pipeline console --port N` and its base URL, once /healthz answers."""
    port = port or free_port()
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "console", "--host", "127.0.0.1", "--port", str(port)],
                            cwd=ROOT, env=env_for(settings), stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the console exited: {log.read_text()[-3000:]}")
        try:
            if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                return proc, base
        except requests.ConnectionError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise AssertionError(f"the console did not answer: {log.read_text()[-3000:]}")


def login(base: str, name: str) -> requests.Session:
    """A requests session logged in through the login form (with its CSRF token)."""
    import re

    session = requests.Session()
    form = session.get(f"{base}/login", timeout=10).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    response = session.post(f"{base}/login", data={"csrf_token": token, "username": name,
                                                   "password": PASSWORDS[name], "next": "/"},
                            allow_redirects=False, timeout=10)
    assert response.status_code == 303, response.text[:500]
    return session


def csrf_of(html: str) -> str:
    import re

    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
