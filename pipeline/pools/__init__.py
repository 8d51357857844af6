"""Airflow pools: the ones Vigil's DAGs need, where their definition file is, and whether Airflow has them.

    infra/airflow/pools.json ──(airflow pools import, by every deployment)──▶ Airflow's metadata database
        one pool per platform family                                          ├─▶ `vigil status` (missing_pools)
        (`required_pools()`, `pipeline._platforms`)                           └─▶ the scheduler's policy (_policy):
                                                                                  a task whose pool is missing
                                                                                  fails at once, naming it

Airflow itself leaves a task whose pool does not exist `scheduled` until the run times out; the policy turns that
silent hang into a failed task, a run note and a scheduler error line, each naming the pool and `IMPORT_COMMAND`.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .._platforms import FAMILIES, pool_name

__all__ = ["POOLS_FILE", "IMPORT_COMMAND", "required_pools", "pools_file", "missing_pools", "missing_pool_message",
           "airflow_configured", "PoolsUnknown"]

#: the pools' definition, relative to the repository (and to /opt/vigil/src in the Airflow image)
POOLS_FILE = "infra/airflow/pools.json"
#: what creates them (after `airflow db migrate`); safe to run again
IMPORT_COMMAND = f"airflow pools import {POOLS_FILE}"
#: seconds `airflow pools list` may take (it imports Airflow and reads the metadata database)
LIST_TIMEOUT_S = 60.0


class PoolsUnknown(Exception):
    """Airflow's pools could not be read (no `airflow` command, or it failed)."""


def required_pools() -> list[str]:
    """Every pool a Vigil DAG runs tasks in: one per platform family."""
    return [pool_name(family) for family in FAMILIES]


def pools_file() -> Path:
    """The shipped pools.json: inside the wheel (``pipeline/_data``) or beside the package (editable, the image)."""
    here = Path(__file__).resolve().parents[1]
    for candidate in (here / "_data" / "airflow" / "pools.json", here.parent / POOLS_FILE):
        if candidate.is_file():
            return candidate
    return here.parent / POOLS_FILE


def missing_pool_message(pool: str, task: str | None = None) -> str:
    """What an operator reads when a pool is missing: which pool, what cannot run, the command that fixes it."""
    what = f"task {task} cannot run: " if task else ""
    return (f"Airflow pool {pool!r} does not exist; {what}create Vigil's pools with `{IMPORT_COMMAND}` "
            f"(after `airflow db migrate`; the file here: {pools_file()})")


def airflow_configured() -> bool:
    """Whether this process has an Airflow to ask: AIRFLOW_HOME or a metadata database set, or ~/airflow in use (an
    environment that merely has the package installed, such as a developer's venv, has none)."""
    return bool(os.environ.get("AIRFLOW_HOME") or os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
                or (Path.home() / "airflow" / "airflow.cfg").is_file())


def _airflow_command() -> str | None:
    beside = Path(sys.executable).with_name("airflow")  # the environment's own, even when not on PATH
    return str(beside) if beside.is_file() else shutil.which("airflow")


def missing_pools(airflow: str | None = None, *, timeout_s: float = LIST_TIMEOUT_S) -> list[str]:
    """The required pools Airflow lacks, read with `airflow pools list` (this process's Airflow configuration).

    Raises `PoolsUnknown` when the pools cannot be read.
    """
    command = airflow or _airflow_command()
    if not command:
        raise PoolsUnknown("no `airflow` command on PATH")
    try:
        done = subprocess.run([command, "pools", "list", "--output", "json"], capture_output=True, text=True,
                              timeout=timeout_s, env=os.environ.copy())
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PoolsUnknown(f"`airflow pools list` did not answer: {exc}") from exc
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise PoolsUnknown(f"`airflow pools list` failed: {last}")
    listed = _json_table(done.stdout)
    if listed is None:
        raise PoolsUnknown(f"`airflow pools list` printed no JSON: {done.stdout[-200:]!r}")
    present = {row.get("pool") for row in listed}
    return [pool for pool in required_pools() if pool not in present]


def _json_table(output: str) -> list[dict[str, object]] | None:
    """The JSON list in the command's output (log lines may come before it)."""
    for line in reversed(output.splitlines()):
        if line.lstrip().startswith("["):
            try:
                rows = json.loads(line)
            except ValueError:
                continue
            if isinstance(rows, list):
                return [row for row in rows if isinstance(row, dict)]
    return None
