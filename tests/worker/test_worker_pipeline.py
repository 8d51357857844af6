"""The worker and the sink on the real local Kafka and Elasticsearch.

Worker and sink run as real subprocesses (``python -m pipeline worker`` / ``sink``) with VIGIL_* variables from
``settings_for``, or in threads where a test needs to look inside. Jobs point at small generated MP4 clips.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.worker import (  # no_process_left_behind: autouse
    no_process_left_behind,  # noqa: F401
    LightSuite,
    committed_total,
    consume_all,
    job_for,
    make_clip,
    make_clips,
    produce,
    sha256_of,
    spawn,
    stop,
    wait_for,
)

from support.stack import remove_test_objects, settings_for
from pipeline import ResultMessage, Settings, decode, encode, make_es_client, run_setup
from pipeline.consume import parse_dead_letter
from pipeline.sink import Sink, detection_id
from pipeline.worker import Worker

pytestmark = [pytest.mark.kafka, pytest.mark.elasticsearch]


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 distinct MP4 clips (testsrc + sine, 2-3 s, 160x120), made once per session."""
    directory = tmp_path_factory.mktemp("clips")
    make_clips(directory, 24)
    return directory


@pytest.fixture
def pipeline_settings(stack_env: dict[str, str], tmp_path: Path) -> Iterator[Settings]:
    settings = settings_for(stack_env, tmp_path, worker_batch_size=4, worker_batch_wait_s=0.3,
                            worker_session_timeout_ms=6000, sink_session_timeout_ms=6000, sink_flush_interval_s=0.3,
                            retry_backoff_s=0.2,
                            retry_backoff_max_s=2.0, retry_attempts=2)
    run_setup(settings)
    yield settings
    remove_test_objects(settings)


def clips(clip_dir: Path, n: int) -> list[Path]:
    return sorted(clip_dir.glob("clip*.mp4"))[:n]


def real_suite_available() -> bool:
    try:
        from detectors import Suite  # noqa: F401
    except ImportError:
        return False
    return True


def detections(settings: Settings) -> list[dict]:
    es = make_es_client(settings)
    try:
        index = settings.index("detections")
        if not es.indices.exists(index=index):
            return []
        es.indices.refresh(index=index)
        hits = es.search(index=index, size=1000, query={"match_all": {}})["hits"]["hits"]
        return [dict(h["_source"], _id=h["_id"]) for h in hits]
    finally:
        es.close()


def videos(settings: Settings) -> dict[str, dict]:
    es = make_es_client(settings)
    try:
        index = settings.index("videos")
        if not es.indices.exists(index=index):
            return {}
        es.indices.refresh(index=index)
        hits = es.search(index=index, size=1000, query={"match_all": {}})["hits"]["hits"]
        return {h["_id"]: h["_source"] for h in hits}
    finally:
        es.close()


def light_env() -> dict[str, str]:
    return {"VIGIL_WORKER_SUITE": "support.worker:make_suite"}


@pytest.mark.slow
def test_twenty_jobs_through_worker_and_sink(pipeline_settings: Settings, clip_dir: Path, tmp_path: Path) -> None:
    """20 jobs → `vigil worker` → results → `vigil sink` → exactly one detections document each, with scores."""
    settings = pipeline_settings
    jobs = [job_for(settings, path) for path in clips(clip_dir, 20)]
    produce(settings, settings.topic_jobs, [(j.video_uid.encode(), encode(j)) for j in jobs])
    env = {} if real_suite_available() else light_env()
    worker = spawn("worker", settings, tmp_path / "worker.log", VIGIL_METRICS_PORT="0", **env)
    sink = spawn("sink", settings, tmp_path / "sink.log")
    try:
        done = wait_for(lambda: len(detections(settings)) >= 20, timeout_s=240, interval_s=2)
        assert done, (tmp_path / "worker.log").read_text()[-4000:] + (tmp_path / "sink.log").read_text()[-2000:]
        assert wait_for(lambda: committed_total(settings, settings.worker_group, settings.topic_jobs) == 20, 30)
        assert wait_for(lambda: committed_total(settings, settings.sink_group, settings.topic_results) == 20, 30)
    finally:
        assert stop(worker) == 0, (tmp_path / "worker.log").read_text()[-3000:]
        assert stop(sink) == 0, (tmp_path / "sink.log").read_text()[-3000:]
    docs = detections(settings)
    assert sorted(d["media_sha256"] for d in docs) == sorted(j.media_sha256 for j in jobs)
    for doc in docs:
        assert doc["_id"] == doc["detection_id"] == detection_id(doc["media_sha256"], doc["suite_version"])
        assert doc["detectors"] and doc["fused"]["verdict"] in ("likely_manipulated", "suspicious", "no_signal",
                                                                "inconclusive")
        assert any(d.get("score") is not None for d in doc["detectors"].values()) or doc["fused"]["score"] is None
        assert "decode" in doc["timings_ms"] and "@timestamp" in doc
        # evidence is data: the worker renders no plots; what it stores beside the media are face-crop JPEGs
        for uri in doc["evidence_uris"]:
            assert f"{doc['media_sha256']}.evidence/" in uri and "/faces/" in uri
            assert Path(uri.removeprefix("file://")).read_bytes()[:2] == b"\xff\xd8"
    if real_suite_available():  # the worker ran the real detectors: their names are in every document
        assert all({"lipsync", "spectral"} <= set(doc["detectors"]) for doc in docs)
    by_uid = videos(settings)
    assert set(by_uid) == {j.video_uid for j in jobs}
    for video in by_uid.values():
        assert video["status"] == "scored" and video["detection_id"] and video["suite_version"]
        assert "verdict" in video["fused"]
    log = (tmp_path / "worker.log").read_text()
    assert "[file:" in log  # video_uid on the job's log lines


@pytest.mark.slow
def test_worker_killed_mid_batch_loses_and_doubles_nothing(pipeline_settings: Settings, clip_dir: Path,
                                                           tmp_path: Path) -> None:
    """SIGKILL while a batch runs, restart: every job ends with exactly one detections document."""
    settings = pipeline_settings
    jobs = [job_for(settings, path) for path in clips(clip_dir, 12)]
    produce(settings, settings.topic_jobs, [(j.video_uid.encode(), encode(j)) for j in jobs])
    slow = dict(light_env(), VIGIL_TEST_ANALYSE_DELAY_S="2.0")
    sink = spawn("sink", settings, tmp_path / "sink.log")
    worker = spawn("worker", settings, tmp_path / "worker1.log", **slow)
    try:
        # wait until the first batch is produced: the next one is on the device (2 s a batch of 4)
        log1 = tmp_path / "worker1.log"
        assert wait_for(lambda: log1.read_text().count("scored:") >= 1, timeout_s=90, interval_s=0.1)
        time.sleep(0.5)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
        assert log1.read_text().count("scored:") < len(jobs), "the worker finished before it could be killed"
        committed = committed_total(settings, settings.worker_group, settings.topic_jobs)
        assert committed < len(jobs)
        restarted = spawn("worker", settings, tmp_path / "worker2.log", **light_env())
        try:
            assert wait_for(lambda: len(detections(settings)) >= len(jobs), timeout_s=120, interval_s=1), \
                (tmp_path / "worker2.log").read_text()[-3000:]
            assert wait_for(lambda: committed_total(settings, settings.worker_group, settings.topic_jobs)
                            == len(jobs), 30)
        finally:
            assert stop(restarted) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
        stop(sink)
    docs = detections(settings)
    assert len(docs) == len(jobs)
    assert sorted(d["media_sha256"] for d in docs) == sorted(j.media_sha256 for j in jobs)
    results = consume_all(settings, settings.topic_results, expect=len(jobs) + 50, timeout_s=5)
    assert len(results) >= len(jobs)  # redone work may produce a result twice; the index holds it once


def bad_inputs(settings: Settings, clip_dir: Path, tmp_path: Path) -> list[tuple[bytes | None, bytes, str]]:
    """30 poison messages: (key, value, what)."""
    good = clips(clip_dir, 1)[0]
    base = json.loads(encode(job_for(settings, good, uid="test:template")))
    store = Path(settings.media_store)
    out: list[tuple[bytes | None, bytes, str]] = []

    def job_file(name: str, data: bytes, uid: str, *, sha: str | None = None) -> None:
        path = tmp_path / "bad" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        import hashlib

        real = hashlib.sha256(data).hexdigest()
        target = store / real[:2] / f"{real}{path.suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        job = dict(base, video_uid=uid, media_uri=target.as_uri(), media_sha256=sha or real)
        out.append((uid.encode(), json.dumps(job).encode(), name))

    mp4 = good.read_bytes()
    rng = __import__("random").Random(7)
    job_file("zero.mp4", b"", "bad:zero")
    for i, cut in enumerate((0.1, 0.3, 0.5)):
        job_file(f"trunc{i}.mp4", mp4[: int(len(mp4) * cut)], f"bad:trunc{i}")
    for i in range(4):
        job_file(f"random{i}.mp4", bytes(rng.getrandbits(8) for _ in range(2000 + 500 * i)), f"bad:random{i}")
    job_file("text.mp4", b"this is not a video, only text\n" * 40, "bad:text")
    job_file("html.mp4", b"<!doctype html><html><body>404</body></html>", "bad:html")
    job_file("wrongsha.mp4", mp4, "bad:wrongsha", sha="0" * 64)
    job_file("wrongsha2.mp4", mp4 + b"x", "bad:wrongsha2", sha=base["media_sha256"])
    # an audio-only file and a still image: decodable, but not a video
    audio = tmp_path / "bad" / "tone.m4a"
    import subprocess

    from support.worker import ffmpeg
    subprocess.run([ffmpeg(), "-loglevel", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=500:duration=1",
                    "-c:a", "aac", str(audio)], check=True)
    job_file("audio.m4a", audio.read_bytes(), "bad:audio")
    png = tmp_path / "bad" / "still.png"
    subprocess.run([ffmpeg(), "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=64x48:duration=0.1",
                    "-frames:v", "1", str(png)], check=True)
    job_file("still.png", png.read_bytes(), "bad:image")
    # over the duration cap (settings.max_duration_s is 2 in this test): a 6 s clip
    long_clip = make_clip(tmp_path / "bad" / "long.mp4", seconds=6, tone_hz=999)
    job_file("long.mp4", long_clip.read_bytes(), "bad:toolong")
    # media that is not there
    missing = dict(base, video_uid="bad:missing", media_uri=(store / "ab" / ("ab" + "0" * 62 + ".mp4")).as_uri(),
                   media_sha256="ab" + "0" * 62)
    out.append((b"bad:missing", json.dumps(missing).encode(), "missing"))
    # malformed messages
    raw_messages = [
        (b"bad:json1", b"{not json", "malformed JSON"),
        (b"bad:json2", b"", "empty value"),
        (None, b"\xff\xfe\x00garbage", "binary"),
        (b"bad:json3", b"[1, 2, 3]", "a JSON list"),
        (b"bad:json4", b"null", "JSON null"),
        (b"bad:schema1", json.dumps(dict(base, schema="vigil.job/2")).encode(), "wrong schema version"),
        (b"bad:schema2", json.dumps({k: v for k, v in base.items() if k != "schema"}).encode(), "no schema"),
        (b"bad:schema3", json.dumps(dict(base, media_sha256="xyz")).encode(), "sha256 not hex"),
        (b"bad:schema4", json.dumps(dict(base, video_uid="no colon")).encode(), "bad video_uid"),
        (b"bad:schema5", json.dumps({k: v for k, v in base.items() if k != "media_uri"}).encode(), "no media_uri"),
        (b"bad:schema6", json.dumps(dict(base, attempt=0)).encode(), "attempt 0"),
        (b"bad:schema7", json.dumps(dict(base, surprise=True)).encode(), "unknown field"),
        (b"bad:schema8", json.dumps(dict(base, source="youtube")).encode(), "source not an object"),
        (b"bad:schema10", json.dumps(dict(base, schema="vigil.result/1")).encode(), "another message type"),
    ]
    out.extend(raw_messages)
    return out


@pytest.mark.slow
def test_thirty_bad_inputs_go_to_the_dlq_and_the_worker_keeps_going(stack_env: dict[str, str], clip_dir: Path,
                                                                     tmp_path: Path) -> None:
    settings = settings_for(stack_env, tmp_path, worker_batch_size=4, worker_batch_wait_s=0.2, max_duration_s=4,
                            retry_attempts=2, retry_backoff_s=0.1, retry_backoff_max_s=0.2)
    run_setup(settings)
    try:
        bad = bad_inputs(settings, clip_dir, tmp_path)
        assert len(bad) == 30
        good = [job_for(settings, path) for path in clips(clip_dir, 6)]
        messages: list[tuple[bytes | None, bytes]] = []
        for i, (key, value, _) in enumerate(bad):
            messages.append((key, value))
            if i % 5 == 0:  # good jobs in between the bad ones
                job = good[i // 5]
                messages.append((job.video_uid.encode(), encode(job)))
        produce(settings, settings.topic_jobs, messages)
        env = {} if real_suite_available() else light_env()  # the real detectors when they are installed
        worker = spawn("worker", settings, tmp_path / "worker.log", **env)
        try:
            letters = consume_all(settings, settings.topic_dlq, expect=30, timeout_s=120)
            results = consume_all(settings, settings.topic_results, expect=6, timeout_s=60)
            assert wait_for(lambda: committed_total(settings, settings.worker_group, settings.topic_jobs)
                            == len(messages), 30)
            assert worker.poll() is None, "the worker died on bad input"
            # and it still takes new work afterwards
            late = job_for(settings, clips(clip_dir, 7)[6])
            produce(settings, settings.topic_jobs, [(late.video_uid.encode(), encode(late))])
            assert wait_for(lambda: len(consume_all(settings, settings.topic_results, expect=7, timeout_s=5)) >= 7,
                            60)
        finally:
            assert stop(worker) == 0
        log = (tmp_path / "worker.log").read_text()
        assert len(letters) == 30, log[-5000:]
        assert len(results) == 6
        parsed = [parse_dead_letter(m) for m in letters]
        assert sorted(p.original_bytes() for p in parsed) == sorted(value for _, value, _ in bad)  # bytes unchanged
        by_key = {p.original_key: p for p in parsed}
        for letter in parsed:
            assert letter.error_class and letter.error_message and letter.stage and letter.attempts >= 1
            assert letter.original_topic == settings.topic_jobs and letter.original_offset is not None
        assert by_key["bad:zero"].error_class == "CorruptMedia"
        assert by_key["bad:text"].error_class in ("NotAVideo", "CorruptMedia")
        assert by_key["bad:wrongsha"].error_class == "ChecksumMismatch"
        assert by_key["bad:wrongsha2"].error_class == "ChecksumMismatch"
        assert by_key["bad:toolong"].error_class == "MediaTooLarge"
        assert by_key["bad:audio"].error_class == "NotAVideo"
        assert by_key["bad:missing"].error_class == "MediaMissing"
        assert by_key["bad:json1"].error_class == "MessageError" and by_key["bad:json1"].stage == "parse"
        assert "vigil.job/2" in by_key["bad:schema1"].error_message
        binary = [p for p in parsed if p.original_key is None][0]
        assert binary.original_encoding == "base64"
    finally:
        remove_test_objects(settings)


def test_worker_in_a_thread_batches_across_videos_and_commits_last(pipeline_settings: Settings, clip_dir: Path) -> None:
    """A worker in this process: batches hold several videos; offsets are committed only for produced results."""
    settings = pipeline_settings.model_copy(update={"worker_batch_size": 3, "worker_batch_wait_s": 1.0})
    jobs = [job_for(settings, path) for path in clips(clip_dir, 6)]
    produce(settings, settings.topic_jobs, [(j.video_uid.encode(), encode(j)) for j in jobs])
    suite = LightSuite()
    worker = Worker(settings, suite=suite)
    thread = threading.Thread(target=worker.run, kwargs={"max_seconds": 60})
    thread.start()
    try:
        results = consume_all(settings, settings.topic_results, expect=6, timeout_s=60)
        assert wait_for(lambda: committed_total(settings, settings.worker_group, settings.topic_jobs) == 6, 20)
    finally:
        worker.stop()
        thread.join(60)
    assert not thread.is_alive()
    assert len(results) == 6
    assert max(suite.batches) >= 2 and all(size <= 3 for size in suite.batches)
    messages = [decode(r.value, ResultMessage) for r in results]
    assert {m.media_sha256 for m in messages} == {j.media_sha256 for j in jobs}
    assert all(m.suite_version == suite.version for m in messages)
    assert all(r.key == m.video_uid.encode() for r, m in zip(results, messages))


@pytest.mark.slow
def test_sigterm_finishes_in_flight_work_and_exits_cleanly(pipeline_settings: Settings, clip_dir: Path,
                                                           tmp_path: Path) -> None:
    settings = pipeline_settings
    jobs = [job_for(settings, path) for path in clips(clip_dir, 4)]
    produce(settings, settings.topic_jobs, [(j.video_uid.encode(), encode(j)) for j in jobs])
    worker = spawn("worker", settings, tmp_path / "worker.log", VIGIL_TEST_ANALYSE_DELAY_S="1.5", **light_env())
    log_path = tmp_path / "worker.log"
    # a loaded machine takes a while to start the process and join the group: wait for the batch itself
    assert wait_for(lambda: "light suite: analysing a batch" in log_path.read_text(), 180, 0.2), \
        log_path.read_text()[-4000:]
    assert stop(worker) == 0  # SIGTERM while the batch is on the device (1.5 s)
    log = log_path.read_text()
    assert "worker: closed" in log
    produced = consume_all(settings, settings.topic_results, expect=len(jobs), timeout_s=3)
    committed = committed_total(settings, settings.worker_group, settings.topic_jobs)
    assert committed <= len(produced)  # nothing committed that was not produced
    assert committed >= 1  # the in-flight batch was finished and committed


def test_sink_dead_letters_a_document_elasticsearch_rejects(pipeline_settings: Settings) -> None:
    """A mapping rejection (HTTP 400) of one document goes to the DLQ; the others are indexed; all committed."""
    settings = pipeline_settings
    from pipeline import FusedScore

    def result(i: int, **extra: object) -> ResultMessage:
        return ResultMessage(video_uid=f"test:r{i}", media_sha256=f"{i:064x}", suite_version="suite-x",
                             duration_s=2.0, fused=FusedScore(score=0.1 * i, verdict="no_signal"),
                             detectors={}, **extra)

    messages = [result(1), result(2, timings_ms={"": 5.0}), result(3), ]
    produce(settings, settings.topic_results, [(m.video_uid.encode(), encode(m)) for m in messages]
            + [(b"test:junk", b"{broken")])
    sink = Sink(settings)
    thread = threading.Thread(target=sink.run, kwargs={"max_seconds": 60})
    thread.start()
    try:
        letters = consume_all(settings, settings.topic_dlq, expect=2, timeout_s=30)
        assert wait_for(lambda: committed_total(settings, settings.sink_group, settings.topic_results) == 4, 20)
    finally:
        sink.stop()
        thread.join(30)
    parsed = {parse_dead_letter(m).original_key: parse_dead_letter(m) for m in letters}
    assert set(parsed) == {"test:r2", "test:junk"}
    assert parsed["test:r2"].error_class == "BulkRejected" and "400" in parsed["test:r2"].error_message
    assert parsed["test:junk"].stage == "parse"
    docs = detections(settings)
    assert sorted(d["video_uid"] for d in docs) == ["test:r1", "test:r3"]


@pytest.mark.slow
def test_a_batch_longer_than_max_poll_interval_triggers_no_rebalance(pipeline_settings: Settings,
                                                                     clip_dir: Path) -> None:
    """The device step runs in a thread while the main loop keeps polling paused partitions: a batch that takes
    longer than max.poll.interval.ms neither loses the member its partitions nor gets its jobs redone."""
    settings = pipeline_settings.model_copy(update={
        "worker_batch_size": 2, "worker_batch_wait_s": 0.0, "worker_max_poll_interval_ms": 6000,
        "worker_session_timeout_ms": 6000, "sink_session_timeout_ms": 6000})
    jobs = [job_for(settings, path) for path in clips(clip_dir, 2)]
    produce(settings, settings.topic_jobs, [(j.video_uid.encode(), encode(j)) for j in jobs])
    suite = LightSuite(analyse_delay_s=9.0)  # 1.5 x max.poll.interval.ms
    worker = Worker(settings, suite=suite)
    revoked: list[object] = []
    original = worker.tracker.revoke
    worker.tracker.revoke = lambda parts: (  # type: ignore[method-assign]
        None if worker._stop.is_set() else revoked.append(set(parts)), original(parts))
    thread = threading.Thread(target=worker.run, kwargs={"max_seconds": 60})
    thread.start()
    try:
        assert wait_for(lambda: committed_total(settings, settings.worker_group, settings.topic_jobs) == 2, 40)
    finally:
        worker.stop()
        thread.join(30)
    results = consume_all(settings, settings.topic_results, expect=10, timeout_s=3)
    assert len(results) == 2  # each job analysed once: no rebalance handed them to anyone again
    assert [r for r in revoked if r] == []  # before the shutdown, only the empty ones of the first join
    assert sum(suite.batches) == 2


@pytest.mark.slow
def test_a_replaced_consumer_carries_on_without_losing_jobs(pipeline_settings: Settings, clip_dir: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    """What the group watchdog does to a member stuck in a rebalance: a new consumer, the same jobs, all committed."""
    caplog.set_level(logging.INFO, logger="pipeline")
    settings = pipeline_settings.model_copy(update={"worker_batch_wait_s": 0.0})
    paths = clips(clip_dir, 6)
    first = [job_for(settings, path) for path in paths[:3]]
    produce(settings, settings.topic_jobs, [(j.video_uid.encode(), encode(j)) for j in first])
    worker = Worker(settings, suite=LightSuite())
    thread = threading.Thread(target=worker.run, kwargs={"max_seconds": 300})
    thread.start()
    try:
        assert wait_for(lambda: committed_total(settings, settings.worker_group, settings.topic_jobs) == 3, 30)
        old = worker.consumer
        stalled = iter([True])
        worker._watchdog.stalled = lambda: next(stalled, False)  # type: ignore[method-assign]
        assert wait_for(lambda: worker.consumer is not old, 10)
        second = [job_for(settings, path) for path in paths[3:]]
        produce(settings, settings.topic_jobs, [(j.video_uid.encode(), encode(j)) for j in second])
        # the new member joins the group in a rebalance: on a loaded machine that can take most of a minute
        assert wait_for(lambda: committed_total(settings, settings.worker_group, settings.topic_jobs) == 6, 180), \
            "\n".join(r.getMessage() for r in caplog.records[-40:])
    finally:
        worker.stop()
        thread.join(60)
    results = consume_all(settings, settings.topic_results, expect=20, timeout_s=3)
    assert {decode(r.value, ResultMessage).media_sha256 for r in results} == {sha256_of(p) for p in paths}
