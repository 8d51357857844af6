"""Vigil's Airflow pools without a scheduler: the mapped results read whole (no read past the end, which Airflow logs
as an error), the pools `vigil status` finds missing, and what it says. The scheduler's side (a run whose pool is
missing fails at once) is in test_airflow_scheduler.py."""
from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from pipeline._platforms import gather
from pipeline._setup import _check_airflow_pools
from pipeline.pools import IMPORT_COMMAND, PoolsUnknown, missing_pools, required_pools


class LazySequence:
    """Like Airflow's LazyXComSequence: an item past the end is a request that fails (and Airflow logs an error)."""

    def __init__(self, items: list[Any]) -> None:
        self.items, self.item_reads, self.slice_reads = items, 0, 0

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: int | slice) -> Any:
        if isinstance(key, slice):
            self.slice_reads += 1
            return self.items[key]
        self.item_reads += 1
        if key >= len(self.items):
            raise IndexError(key)
        return self.items[key]


def test_gather_reads_each_family_whole() -> None:
    families = [LazySequence([1, 2]), None, LazySequence([]), LazySequence([3])]
    assert gather(families) == [1, 2, 3]
    read = [f for f in families if f is not None]
    assert [f.item_reads for f in read] == [0, 0, 0]  # never item by item, never past the end
    assert [f.slice_reads for f in read] == [1, 0, 1]


def _fake_airflow(tmp_path: Path, listed: list[str] | None) -> str:
    script = tmp_path / "airflow"
    if listed is None:
        script.write_text("#!/bin/sh\necho 'sqlite3.OperationalError: no such table: slot_pool' >&2\nexit 1\n")
    else:
        rows = json.dumps([{"pool": name, "slots": "2"} for name in listed])
        script.write_text(f"#!/bin/sh\necho '[info] noise before the table'\necho '{rows}'\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def test_missing_pools(tmp_path: Path) -> None:
    assert missing_pools(_fake_airflow(tmp_path, ["default_pool", *required_pools()])) == []
    assert missing_pools(_fake_airflow(tmp_path, ["default_pool", *required_pools()[1:]])) == [required_pools()[0]]
    with pytest.raises(PoolsUnknown, match="no such table"):
        missing_pools(_fake_airflow(tmp_path, None))


def test_status_names_the_missing_pools_and_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    monkeypatch.setattr("pipeline.pools._airflow_command", lambda: _fake_airflow(tmp_path, ["vigil-platform-x"]))
    check = _check_airflow_pools()
    assert not check.ok and "vigil-platform-youtube" in check.detail and "vigil-platform-x" not in check.detail
    assert IMPORT_COMMAND in check.hint and "airflow db migrate" in check.hint
    monkeypatch.setattr("pipeline.pools._airflow_command", lambda: _fake_airflow(tmp_path, required_pools()))
    assert _check_airflow_pools().ok
    monkeypatch.delenv("AIRFLOW_HOME")
    monkeypatch.delenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/airflow: Airflow installed, not configured
    assert _check_airflow_pools().ok and "not configured" in _check_airflow_pools().detail


def test_the_policy_is_an_airflow_entry_point() -> None:
    from importlib.metadata import entry_points

    found = {e.name: e.value for e in entry_points(group="airflow.policy")}
    assert found.get("vigil-pools") == "pipeline.pools._policy", "reinstall: infra/install airflow"
