"""`vigil submit FILE|URL` and the metrics endpoint, on the real local Kafka."""
from __future__ import annotations

import functools
import http.server
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner
from support.worker import LightSuite, consume_all, make_clip, settings_env, wait_for

from support.stack import remove_test_objects, settings_for
from pipeline import JobMessage, Settings, decode, ensure_topics, make_admin
from pipeline._submit import SubmitRefused, submit_target

pytestmark = [pytest.mark.kafka]


@pytest.fixture
def kafka_settings(stack_env: dict[str, str], tmp_path: Path) -> Iterator[Settings]:
    settings = settings_for(stack_env, tmp_path, allowed_private_networks=["127.0.0.0/8"])
    admin = make_admin(settings)
    ensure_topics(admin, settings)
    admin.close()
    yield settings
    remove_test_objects(settings)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("submit") / "speech.mp4", seconds=2, tone_hz=523)


def test_submit_a_file_stores_it_by_hash_and_queues_a_job(kafka_settings: Settings, video: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline import cli
    from pipeline._settings import get_settings

    for key, value in settings_env(kafka_settings).items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    try:
        outcome = CliRunner().invoke(cli.app, ["submit", str(video)])
    finally:
        get_settings.cache_clear()
    assert outcome.exit_code == 0, outcome.output
    jobs = consume_all(kafka_settings, kafka_settings.topic_jobs, expect=1, timeout_s=20)
    job = decode(jobs[0].value, JobMessage)
    import hashlib

    sha = hashlib.sha256(video.read_bytes()).hexdigest()
    stored = Path(kafka_settings.media_store) / sha[:2] / f"{sha}.mp4"
    assert stored.read_bytes() == video.read_bytes()
    assert job.media_sha256 == sha and job.video_uid == f"file:{sha[:16]}" and jobs[0].key == job.video_uid.encode()
    assert job.media_uri == stored.as_uri() and job.source.platform == "file"
    # submitting again stores nothing new and queues the same job again (idempotent downstream)
    again = submit_target(str(video), kafka_settings)
    assert again.media_uri == job.media_uri


@pytest.fixture
def http_server(video: Path) -> Iterator[str]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(video.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_submit_a_url_downloads_within_the_rules(kafka_settings: Settings, video: Path, http_server: str) -> None:
    job = submit_target(f"{http_server}/{video.name}", kafka_settings)
    assert Path(job.media_uri.removeprefix("file://")).read_bytes() == video.read_bytes()
    assert job.video_uid.startswith("generic:")
    refused = kafka_settings.model_copy(update={"allowed_private_networks": []})
    with pytest.raises(SubmitRefused, match="refused: host resolves to a (private|loopback)"):
        submit_target(f"{http_server}/{video.name}", refused)


def test_metrics_endpoint_counts_jobs_batches_and_stages(kafka_settings: Settings, video: Path) -> None:
    import socket

    from pipeline import encode
    from pipeline._observe import start_metrics
    from pipeline.worker import Worker
    from support.worker import job_for, produce

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert start_metrics(port)
    job = job_for(kafka_settings, video)
    produce(kafka_settings, kafka_settings.topic_jobs, [(job.video_uid.encode(), encode(job))])
    worker = Worker(kafka_settings.model_copy(update={"worker_batch_wait_s": 0.0}), suite=LightSuite())
    thread = threading.Thread(target=worker.run, kwargs={"max_seconds": 60})
    thread.start()
    try:
        assert consume_all(kafka_settings, kafka_settings.topic_results, expect=1, timeout_s=30)

        def scrape() -> str:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()

        assert wait_for(lambda: 'vigil_jobs_total{component="worker",outcome="ok"}' in scrape(), 10)
    finally:
        worker.stop()
        thread.join(30)
    text = scrape()
    for needle in ('vigil_video_seconds_total{component="worker"}', 'vigil_batch_size_bucket{component="worker"',
                   'vigil_stage_seconds_bucket{component="worker",le="0.005",stage="decode"}',
                   'vigil_stage_seconds_count{component="worker",stage="fetch"}', "vigil_consumer_lag",
                   "vigil_errors_total"):
        assert needle in text, needle


def test_submit_stores_only_media_inside_the_roots(kafka_settings: Settings, video: Path, tmp_path: Path) -> None:
    """#24: a text file exits non-zero and stores nothing; file:///etc/passwd is refused; media is stored 0640."""
    from typer.testing import CliRunner

    from pipeline import cli
    from pipeline._settings import get_settings

    text = tmp_path / "notes.mp4"
    text.write_text("just words, not a video\n" * 50)
    for target in (str(text), "file:///etc/passwd", "/etc/passwd"):
        with pytest.raises(SubmitRefused):
            submit_target(target, kafka_settings)
    store = Path(kafka_settings.media_store)
    assert not store.exists() or not any(p.is_file() for p in store.rglob("*"))
    import os

    env = {k: v for k, v in os.environ.items()}
    try:
        os.environ["VIGIL_MEDIA_STORE"] = str(store)
        get_settings.cache_clear()
        outcome = CliRunner().invoke(cli.app, ["submit", str(text)])
    finally:
        os.environ.clear()
        os.environ.update(env)
        get_settings.cache_clear()
    assert outcome.exit_code != 0
    assert not store.exists() or not any(p.is_file() for p in store.rglob("*"))
    job = submit_target(str(video), kafka_settings)
    stored = Path(job.media_uri.removeprefix("file://"))
    assert stored.stat().st_mode & 0o777 == 0o640
