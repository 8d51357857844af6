"""The sink while Elasticsearch is down for 60 s: it backs off, keeps its offsets and loses nothing.

A second, isolated Elasticsearch (its own state directory and port) is started for this test, so the shared
stack's Elasticsearch is never stopped. Kafka is the shared one.
"""
from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.worker import committed_total, no_process_left_behind, produce, spawn, stop, wait_for  # noqa: F401

from support.stack import STACK, parse_exports, remove_test_objects, settings_for
from pipeline import FusedScore, ResultMessage, Settings, encode, make_es_client, run_setup

pytestmark = [pytest.mark.kafka, pytest.mark.elasticsearch, pytest.mark.stack, pytest.mark.slow]


ISOLATED = {
    "VIGIL_STACK_DIR": "/var/tmp/vigil-stack-sinktest",
    "VIGIL_STACK_ES_PORT": "9250",
    "VIGIL_STACK_KAFKA_PORT": "9192",
}
OUTAGE_S = 60


def isolated_stack(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, **ISOLATED)
    return subprocess.run([str(STACK), *args], env=env, capture_output=True, text=True, timeout=400)


@pytest.fixture(scope="module")
def isolated_es() -> Iterator[dict[str, str]]:
    """VIGIL_ES_* of an Elasticsearch of this module's own; stopped afterwards."""
    up = isolated_stack("up", "elasticsearch")
    if up.returncode != 0:
        pytest.fail(f"isolated Elasticsearch did not start:\n{up.stderr[-3000:]}")
    env = parse_exports(isolated_stack("env").stdout)
    try:
        yield env
    finally:
        isolated_stack("down", "elasticsearch")


@pytest.fixture
def outage_settings(stack_env: dict[str, str], isolated_es: dict[str, str], tmp_path: Path) -> Iterator[Settings]:
    es_env = {**stack_env, **{k: v for k, v in isolated_es.items() if k.startswith("VIGIL_ES_")}}
    settings = settings_for(es_env, tmp_path, sink_bulk_size=20, sink_flush_interval_s=0.3, retry_backoff_s=0.5,
                            retry_backoff_max_s=4.0, es_request_timeout_s=5.0)
    run_setup(settings)
    yield settings
    try:
        remove_test_objects(settings)
    except Exception:  # noqa: BLE001 - the isolated server may already be down at teardown
        pass


def results(start: int, n: int) -> list[ResultMessage]:
    return [ResultMessage(video_uid=f"test:v{i}", media_sha256=f"{i:064x}", suite_version="suite-outage",
                          duration_s=2.0, fused=FusedScore(score=(i % 10) / 10, verdict="no_signal"), detectors={})
            for i in range(start, start + n)]


def indexed(settings: Settings) -> int:
    es = make_es_client(settings, max_retries=0)
    try:
        index = settings.index("detections")
        es.indices.refresh(index=index)
        return int(es.count(index=index)["count"])
    except Exception:  # noqa: BLE001 - down, or not yet created
        return -1
    finally:
        es.close()


def test_elasticsearch_down_for_a_minute_loses_nothing(outage_settings: Settings, tmp_path: Path) -> None:
    settings = outage_settings
    sink = spawn("sink", settings, tmp_path / "sink.log")
    try:
        first = results(0, 30)
        produce(settings, settings.topic_results, [(r.video_uid.encode(), encode(r)) for r in first])
        assert wait_for(lambda: indexed(settings) == 30, 60), (tmp_path / "sink.log").read_text()[-3000:]

        down = isolated_stack("down", "elasticsearch")
        assert down.returncode == 0, down.stderr
        stopped_at = time.monotonic()
        during = results(30, 70)  # results keep flowing while Elasticsearch is away
        for i in range(0, len(during), 10):
            chunk = during[i:i + 10]
            produce(settings, settings.topic_results, [(r.video_uid.encode(), encode(r)) for r in chunk])
            time.sleep(2)
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped_at)))
        assert sink.poll() is None, "the sink died while Elasticsearch was down"
        committed_during = committed_total(settings, settings.sink_group, settings.topic_results)
        assert committed_during <= 30  # nothing committed that Elasticsearch did not acknowledge

        up = isolated_stack("up", "elasticsearch")
        assert up.returncode == 0, up.stderr[-3000:]
        assert wait_for(lambda: indexed(settings) == 100, 90), (tmp_path / "sink.log").read_text()[-4000:]
        assert wait_for(lambda: committed_total(settings, settings.sink_group, settings.topic_results) == 100, 30)
    finally:
        assert stop(sink) == 0, (tmp_path / "sink.log").read_text()[-3000:]
    es = make_es_client(settings)
    try:
        es.indices.refresh(index=settings.index("videos"))
        assert es.count(index=settings.index("videos"))["count"] == 100
        ids = {h["_source"]["video_uid"] for h in es.search(index=settings.index("detections"), size=200)["hits"]["hits"]}
        assert ids == {f"test:v{i}" for i in range(100)}
    finally:
        es.close()
    log = (tmp_path / "sink.log").read_text()
    assert "not yet written" in log and "Elasticsearch is back" in log
