"""Helpers for the console's tests: a real `vigil console` process on a free port, accounts, a logged-in session.

The console runs as deployed (#24): the pipeline's indices read with the pipeline's restricted login
(``vigil-pipeline`` of the local stack) and its own index, ``<prefix>-console-users``, with its own
(``VIGIL_CONSOLE_ES_*`` = ``vigil-console``), which is also how the accounts are written. Tests keep the stack's
superuser for their fixtures and the clean-up."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from pydantic import SecretStr

from pipeline import Settings
from pipeline.console import Accounts, make_store_client

from .stack import ROOT, settings_env
PASSWORDS = {"ana": "tulip-harbour-93", "root": "granite-lantern-57"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stack_users() -> dict[str, str]:
    """The local stack's restricted users and their passwords (`infra/local/stack users`)."""
    import json

    out = subprocess.run([str(ROOT / "infra" / "local" / "stack"), "users"], capture_output=True, text=True)
    if out.returncode != 0:
        raise AssertionError(f"infra/local/stack users: {out.stderr}")
    return json.loads(out.stdout)


def deployed(settings: Settings) -> Settings:
    """The console's settings as it runs now: the pipeline's login for the pipeline's indices and the console's
    own (``vigil-console``) for its index, unless the test gave VIGIL_CONSOLE_ES_* already."""
    if settings.console_es_user or settings.console_es_api_key is not None:
        return settings
    users = stack_users()
    return settings.model_copy(update={
        "es_user": "vigil-pipeline", "es_password": SecretStr(users["vigil-pipeline"]),
        "console_es_user": "vigil-console", "console_es_password": SecretStr(users["vigil-console"])})


def add_accounts(settings: Settings) -> None:
    """The test accounts, written with the console's own credentials (as `vigil console adduser` does)."""
    es = make_store_client(deployed(settings))
    try:
        accounts = Accounts(es, settings)
        accounts.add_user("ana", "analyst", PASSWORDS["ana"])
        accounts.add_user("root", "admin", PASSWORDS["root"])
    finally:
        es.close()


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a `vigil` subprocess with these settings (tests/worker on the path for the light suite)."""
    env = settings_env(settings, inherit=True)
    env["VIGIL_WORKER_DETECTORS"] = ",".join(settings.worker_detectors)  # this list takes commas only, not JSON
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def start_console(settings: Settings, log: Path, port: int | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """`python -m pipeline console --port N` as deployed (see `deployed`) and its base URL, once /healthz answers."""
    port = port or free_port()
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "console", "--host", "127.0.0.1", "--port", str(port)],
                            cwd=ROOT, env=env_for(deployed(settings)), stdout=open(log, "ab"), stderr=subprocess.STDOUT,
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


@contextmanager
def console_running(settings: Settings, log: Path, port: int | None = None) -> Iterator[str]:
    """The test accounts (``add_accounts``), then a console as deployed (``start_console``); its base URL for the
    block, the console stopped after it (terminated, killed if it does not end within 30 s)."""
    add_accounts(settings)
    proc, base = start_console(settings, log, port)
    try:
        yield base
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


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
