"""The real DAGs (dags/refresh_spread.py, dags/alerts.py) run with `dag.test()` on the real stack, the fake platform
and a local webhook receiver: re-poll → snapshots, metrics, clusters → one alert per rule and video → webhook."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.crawl import ROOT, settings_env
from support.spread import (WebhookReceiver, documents, flag, lavfi_clip, make_due, seed_videos, snapshots, transcode,
                       whole_seconds)

from support.fakeplatform import FakeVideo

pytestmark = [pytest.mark.elasticsearch, pytest.mark.slow]


def _run(dag_id: str) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(ROOT / "dags"))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag(dag_id).test()


def test_refresh_spread_and_alerts_dags(airflow_home: Path, make_crawl_settings: Any, platform: Any, media: Any,
                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = make_crawl_settings(spread_min_interval_s=0.0, crawl_fetch_subtitles=False)
    uploaded = whole_seconds(datetime.now(UTC)) - timedelta(hours=2)
    original = media.clip(2)
    platform.add(FakeVideo("flag", "Senator's confession on the ballots", media=original, views=1000,
                           author="Capitol News", uploaded=uploaded))
    platform.add(FakeVideo("copy", "senator confession REUPLOAD", views=10, author="Repost Bot", uploaded=uploaded,
                           media=transcode(original, tmp_path / "copy.mp4", size="240x180", crf=35)))
    platform.add(FakeVideo("other", "Budget debate highlights", views=10, author="Parliament TV", uploaded=uploaded,
                           media=lavfi_clip(tmp_path / "other.mp4")))
    uids = seed_videos(platform, settings, ["flag", "copy", "other"])
    flag(settings, uids["flag"], 0.92)
    platform.videos["flag"].views = 100_000  # went viral since the crawl saw it
    make_due(settings)  # the DAG reads at the real time: as if the videos' next checkpoint had come

    with WebhookReceiver().running() as receiver:
        for key, value in settings_env(settings).items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("VIGIL_ALERT_WEBHOOKS", receiver.url)

        run = _run("refresh_spread")
        assert run.state == "success"
        docs = documents(settings)
        hot = docs[uids["flag"]]
        assert hot["spread"]["views"] == 100_000 and len(snapshots(settings, uids["flag"])) == 2
        assert hot["spread"]["views_per_hour"] > 10_000
        assert docs[uids["copy"]]["cluster"]["id"] == hot["cluster"]["id"] != docs[uids["other"]]["cluster"]["id"]
        assert hot["risk"] == pytest.approx(0.92 * hot["spread"]["views_per_hour"], rel=1e-3)

        run = _run("alerts")
        assert run.state == "success"
        fired = {r["body"]["text"].split(":", 2)[2].split(":")[0].strip() for r in receiver.received}
        assert {"Likely manipulated and spreading fast", "New re-upload of a flagged video"} <= fired
        assert all(set(r["body"]) == {"text", "blocks"} for r in receiver.received)
        posted = len(receiver.received)

        run = _run("alerts")  # within the cooldown: nothing new
        assert run.state == "success"
        assert len(receiver.received) == posted
