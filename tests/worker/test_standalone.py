"""`vigil standalone` as a user runs it: one process on the real stack (its own index prefix and topics, so it
starts from an empty Elasticsearch), a local platform (tests/support/fakeplatform.py: an RSS feed, JSON-LD pages,
generated MP4s) crawled by the crawl cycle, the worker and sink scoring what it queued, the console serving the
queue; then SIGINT, and no process of the tree may be left."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests
from support.console import PASSWORDS, ROOT, env_for, free_port
from support.worker import wait_for

from support.stack import remove_test_objects, settings_for
from pipeline import make_es_client
from pipeline.console import Accounts, make_store_client

from support.fakeplatform import FakePlatform, FakeVideo, MediaFactory  # noqa: E402

pytestmark = [pytest.mark.kafka, pytest.mark.elasticsearch, pytest.mark.slow]


def _marked(marker: str) -> list[int]:
    """Processes whose environment carries the marker (every child inherits it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_standalone_crawls_scores_serves_and_stops_cleanly(stack_env: dict[str, str], tmp_path: Path) -> None:
    media = MediaFactory(tmp_path / "platform")
    port = free_port()
    with FakePlatform() as platform:
        platform.add(FakeVideo("senate", "Senator accused of election fraud in heated debate",
                               "The senator denies the claims about the ballots.", media=media.clip(2), views=90_000))
        platform.add(FakeVideo("minister", "Prime minister's leaked speech on the new immigration law",
                               media=media.clip(3), views=20_000))
        watchlist = tmp_path / "watchlist.yaml"
        watchlist.write_text(f"entries:\n  - kind: feed\n    target: \"{platform.feed_url}\"\n    limit: 10\n")
        settings = settings_for(stack_env, tmp_path, allowed_private_networks=["127.0.0.0/8"],
                                ytdlp_extractors=["generic"], crawl_retry_wait_s=0.05, crawl_socket_timeout_s=5.0,
                                max_download_mb=5, max_duration_s=30, worker_batch_wait_s=0.3,
                                sink_flush_interval_s=0.3, worker_session_timeout_ms=6000, sink_session_timeout_ms=6000)
        marker = f"standalone-{uuid.uuid4().hex}"
        env = env_for(settings, VIGIL_WORKER_SUITE="support.worker:make_suite", VIGIL_TEST_MARK=marker)
        log = tmp_path / "standalone.log"
        proc = subprocess.Popen([sys.executable, "-m", "pipeline", "standalone", "--watchlist", str(watchlist),
                                 "--port", str(port)], cwd=ROOT, env=env, stdout=open(log, "ab"),
                                stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        es = make_es_client(settings)
        try:
            def healthy() -> bool:
                assert proc.poll() is None, log.read_text()[-4000:]
                try:
                    return requests.get(f"{base}/healthz", timeout=2).status_code == 200
                except requests.ConnectionError:
                    return False

            assert wait_for(healthy, timeout_s=120), log.read_text()[-4000:]
            assert "first start: user admin, password" in log.read_text()  # a newcomer can log in at once
            accounts = Accounts(make_store_client(settings), settings)  # the client the console itself uses
            accounts.add_user("ana", "analyst", PASSWORDS["ana"])  # passes the policy (>= 12, not the name)
            token, _ = accounts.new_token("ana")
            auth = {"Authorization": f"Bearer {token}"}

            def scored() -> list[dict]:
                response = requests.get(f"{base}/api/queue", headers=auth, timeout=10)
                assert response.status_code == 200, response.text[:500]
                return [v for v in response.json()["items"] if v.get("status") == "scored"]

            assert wait_for(lambda: len(scored()) == 2, timeout_s=300, interval_s=2), log.read_text()[-6000:]
            items = scored()
            assert {v["video_uid"].split(":", 1)[1] for v in items} == {"senate", "minister"}
            assert all(v["fused"]["score"] is not None for v in items)
            assert len(_marked(marker)) >= 4  # supervisor, sink, worker, console (and cycles)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
            try:
                code = proc.wait(90)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = None
            left = _marked(marker)
            for pid in left:  # never leave them behind, even when the assertion below fails
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            es.close()
            remove_test_objects(settings)
        assert code == 0, log.read_text()[-4000:]
        assert left == [], f"left running: {left}\n{log.read_text()[-3000:]}"
        assert "[standalone] stopped" in log.read_text()
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{base}/healthz", timeout=2)


def test_standalone_with_elasticsearch_down_says_so_and_starts_nothing(stack_env: dict[str, str],
                                                                       tmp_path: Path) -> None:
    port = free_port()
    settings = settings_for(stack_env, tmp_path, es_url=f"https://127.0.0.1:{free_port()}", es_request_timeout_s=2)
    marker = f"standalone-{uuid.uuid4().hex}"
    try:
        done = subprocess.run([sys.executable, "-m", "pipeline", "standalone", "--port", str(port)], cwd=ROOT,
                              env=env_for(settings, VIGIL_TEST_MARK=marker), capture_output=True, text=True,
                              timeout=300)
    finally:
        remove_test_objects(settings.model_copy(update={"es_url": stack_env["VIGIL_ES_URL"]}))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "standalone failed" in done.stderr and "not reachable" in done.stderr
    assert _marked(marker) == []


def test_children_stop_when_the_supervisor_is_killed(stack_env: dict[str, str], tmp_path: Path) -> None:
    """SIGKILL leaves the supervisor no chance to clean up: its children still stop (they die with their parent)."""
    port = free_port()
    settings = settings_for(stack_env, tmp_path, worker_session_timeout_ms=6000, sink_session_timeout_ms=6000,
                            worker_shutdown_timeout_s=5)
    marker = f"standalone-{uuid.uuid4().hex}"
    log = tmp_path / "standalone.log"
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "standalone", "--port", str(port)], cwd=ROOT,
                            env=env_for(settings, VIGIL_WORKER_SUITE="support.worker:make_suite",
                                        VIGIL_TEST_MARK=marker), stdout=open(log, "ab"), stderr=subprocess.STDOUT)
    try:
        def up() -> bool:
            try:
                return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
            except requests.ConnectionError:
                return False

        assert wait_for(up, timeout_s=120), log.read_text()[-3000:]
        assert "no crawl cycle" in log.read_text()  # no watchlist given
        assert len(_marked(marker)) >= 4
        proc.kill()
        proc.wait(10)
        assert wait_for(lambda: _marked(marker) == [], timeout_s=60), _marked(marker)
    finally:
        for pid in _marked(marker):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        remove_test_objects(settings)
