"""Faults the consume kit must survive on the real stack: a device that runs out of memory, a device that never
recovers, a document Elasticsearch rejects in front of good ones, and a poison job replayed once fixed upstream."""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.worker import (  # no_process_left_behind: autouse
    no_process_left_behind,  # noqa: F401
    LightSuite,
    ROOT,
    committed_total,
    consume_all,
    durable_total,
    job_for,
    make_clips,
    produce,
    settings_env,
    wait_for,
)

from support.stack import remove_test_objects, settings_for
from pipeline import FusedScore, JobMessage, ResultMessage, Settings, decode, encode, make_es_client, run_setup
from pipeline.consume import parse_dead_letter
from pipeline.sink import Sink
from pipeline.worker import Worker

pytestmark = [pytest.mark.kafka, pytest.mark.elasticsearch]


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("fault-clips")
    make_clips(directory, 8)
    return directory


@pytest.fixture
def fault_settings(stack_env: dict[str, str], tmp_path: Path) -> Iterator[Settings]:
    settings = settings_for(stack_env, tmp_path, worker_batch_size=4, worker_batch_wait_s=0.2,
                            worker_session_timeout_ms=6000, sink_session_timeout_ms=6000, sink_flush_interval_s=0.2,
                            retry_backoff_s=0.05,
                            retry_backoff_max_s=0.3, retry_attempts=2, worker_device_retries=2,
                            worker_shutdown_timeout_s=20)
    run_setup(settings)
    yield settings
    remove_test_objects(settings)


def _run(member: Worker | Sink, seconds: float = 120) -> threading.Thread:
    thread = threading.Thread(target=member.run, kwargs={"max_seconds": seconds}, daemon=True)
    thread.start()
    return thread


def _finish(member: Worker | Sink, thread: threading.Thread) -> None:
    member.stop()
    thread.join(60)
    assert not thread.is_alive()


def _es_count(settings: Settings, which: str, **query: object) -> int:
    es = make_es_client(settings)
    try:
        es.indices.refresh(index=settings.index(which), ignore_unavailable=True)
        body = {"query": query} if query else {}
        return int(es.count(index=settings.index(which), ignore_unavailable=True, **body)["count"])
    finally:
        es.close()


def test_out_of_memory_once_per_batch_is_retried_and_every_job_gets_one_real_result(
        fault_settings: Settings, clip_dir: Path) -> None:
    settings = fault_settings
    jobs = [job_for(settings, path) for path in sorted(clip_dir.glob("*.mp4"))]
    produce(settings, settings.topic_jobs, [(j.video_uid.encode(), encode(j)) for j in jobs])
    suite = LightSuite(flaky="once")
    worker = Worker(settings, suite=suite)
    thread = _run(worker)
    early: list[tuple[int, int]] = []
    try:
        def settled() -> bool:
            # the commits first, then what is durable: a result written between the two reads cannot pass for one
            # committed before it was durable (reading the results first, it could)
            committed = committed_total(settings, settings.worker_group, settings.topic_jobs)
            produced = durable_total(settings, settings.topic_results)
            if committed > produced:
                early.append((committed, produced))
            return committed == len(jobs)
        assert wait_for(settled, 90, 0.3)
    finally:
        _finish(worker, thread)
    assert early == []  # never an offset committed before its result was durable
    flaky = suite.detectors[-1]
    assert flaky.calls > 1 and any(size > 1 for size in suite.batches)  # it did fail, batches were split
    results = [decode(m.value, ResultMessage) for m in consume_all(settings, settings.topic_results,
                                                                    expect=len(jobs) + 1, timeout_s=3)]
    assert sorted(r.video_uid for r in results) == sorted(j.video_uid for j in jobs)  # one result each, no more
    for result in results:
        out = result.detectors["test_flaky_device"]
        assert out.applicable and out.error is None and out.score is not None  # a real output, retried
    assert consume_all(settings, settings.topic_dlq, expect=1, timeout_s=2) == []


def test_a_device_failure_that_never_clears_ends_in_the_dlq_and_nothing_is_scored(
        fault_settings: Settings, clip_dir: Path) -> None:
    settings = fault_settings
    jobs = [job_for(settings, path) for path in sorted(clip_dir.glob("*.mp4"))[:3]]
    produce(settings, settings.topic_jobs, [(j.video_uid.encode(), encode(j)) for j in jobs])
    worker = Worker(settings, suite=LightSuite(flaky="always"))
    sink = Sink(settings)
    threads = [_run(worker), _run(sink)]
    try:
        letters = consume_all(settings, settings.topic_dlq, expect=3, timeout_s=90)
        # the first attempt of each job is handed back to vigil.jobs as attempt 2; then the DLQ
        assert wait_for(lambda: committed_total(settings, settings.worker_group, settings.topic_jobs) == 6, 30)
    finally:
        _finish(worker, threads[0])
        _finish(sink, threads[1])
    parsed = [parse_dead_letter(m) for m in letters]
    assert len(parsed) == 3 and {p.stage for p in parsed} == {"analyse"}
    assert all(p.attempts == 2 and p.original_topic == settings.topic_jobs for p in parsed)
    assert all("out of memory" in p.error_message for p in parsed)
    assert sorted(decode(p.original_bytes(), JobMessage).video_uid for p in parsed) == sorted(j.video_uid for j in jobs)
    requeued = [decode(m.value, JobMessage) for m in consume_all(settings, settings.topic_jobs, expect=7, timeout_s=2)]
    assert sorted(j.attempt for j in requeued) == [1, 1, 1, 2, 2, 2]
    assert consume_all(settings, settings.topic_results, expect=1, timeout_s=2) == []  # never a result
    assert _es_count(settings, "videos", term={"status": "scored"}) == 0
    assert _es_count(settings, "detections") == 0


def test_fifty_good_results_behind_one_rejected_document_are_written_within_seconds(
        fault_settings: Settings) -> None:
    settings = fault_settings

    def result(i: int, **extra: object) -> ResultMessage:
        return ResultMessage(video_uid=f"test:g{i}", media_sha256=f"{i:064x}", suite_version="suite-x",
                             duration_s=2.0, fused=FusedScore(score=0.01 * i, verdict="no_signal"), detectors={},
                             **extra)

    rejected = result(0, timings_ms={"": 5.0})  # an empty field name: Elasticsearch answers 400 for this document
    good = [result(i) for i in range(1, 51)]
    produce(settings, settings.topic_results, [(m.video_uid.encode(), encode(m)) for m in [rejected, *good]])
    sink = Sink(settings)
    thread = _run(sink)
    try:
        assert wait_for(lambda: bool(sink.consumer.assignment()), 30, 0.1)
        start = time.monotonic()
        assert wait_for(lambda: _es_count(settings, "detections") == 50, 20, 0.2)
        elapsed = time.monotonic() - start
        assert wait_for(lambda: committed_total(settings, settings.sink_group, settings.topic_results) == 51, 20)
    finally:
        _finish(sink, thread)
    assert elapsed < 5.0, f"50 good results took {elapsed:.1f}s behind one rejected document"
    letters = [parse_dead_letter(m) for m in consume_all(settings, settings.topic_dlq, expect=1, timeout_s=10)]
    assert len(letters) == 1 and letters[0].original_key == "test:g0" and letters[0].stage == "index"
    assert letters[0].error_class == "BulkRejected" and letters[0].original_bytes() == encode(rejected)


def _vigil(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update(settings_env(settings))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_dlq_replay_of_a_job_fixed_upstream_reaches_the_worker_again(fault_settings: Settings, clip_dir: Path,
                                                                      tmp_path: Path) -> None:
    settings = fault_settings
    clip = sorted(clip_dir.glob("*.mp4"))[0]
    job = job_for(settings, clip)
    stored = Path(job.media_uri.removeprefix("file://"))
    held_back = tmp_path / "held-back.mp4"
    stored.rename(held_back)  # the store lost the file: the job is poison (MediaMissing) until it is put back
    produce(settings, settings.topic_jobs, [(job.video_uid.encode(), encode(job))])
    worker = Worker(settings, suite=LightSuite())
    thread = _run(worker, 180)
    try:
        letters = consume_all(settings, settings.topic_dlq, expect=1, timeout_s=60)
        assert len(letters) == 1 and parse_dead_letter(letters[0]).error_class == "MediaMissing"
        listed = _vigil(settings, "dlq", "list", "--error-class", "MediaMissing")
        assert listed.returncode == 0, listed.stderr
        assert "MediaMissing" in listed.stdout and "fetch" in listed.stdout
        held_back.rename(stored)  # fixed upstream
        where = f"{letters[0].partition}:{letters[0].offset}"
        shown = _vigil(settings, "dlq", "show", where)
        assert shown.returncode == 0 and job.video_uid in shown.stdout and "__connect.errors.stage" in shown.stdout
        refused = _vigil(settings, "dlq", "replay")  # nothing selected: refused, nothing sent
        assert refused.returncode != 0
        replayed = _vigil(settings, "dlq", "replay", where)
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
        assert "1 sent" in replayed.stdout
        results = consume_all(settings, settings.topic_results, expect=1, timeout_s=60)
    finally:
        _finish(worker, thread)
    assert len(results) == 1 and decode(results[0].value, ResultMessage).video_uid == job.video_uid
    again = consume_all(settings, settings.topic_jobs, expect=2, timeout_s=3)
    assert len(again) == 2 and again[1].value == again[0].value  # the original job, byte for byte
    assert dict(again[1].headers)["__vigil.replayed_from"].startswith(settings.topic_dlq.encode())


def _results(n: int, prefix: str = "k", start: int = 0) -> list[ResultMessage]:
    return [ResultMessage(video_uid=f"test:{prefix}{i}", media_sha256=f"{start + i:064x}", suite_version="suite-x",
                          duration_s=2.0, fused=FusedScore(score=(i % 100) / 100, verdict="no_signal"), detectors={})
            for i in range(n)]


@pytest.mark.slow
def test_sink_killed_mid_stream_loses_and_doubles_nothing(fault_settings: Settings, tmp_path: Path) -> None:
    """SIGKILL while the sink writes, restart: every result ends as exactly one detections document."""
    import os
    import signal

    from support.worker import spawn, stop

    settings = fault_settings.model_copy(update={"sink_bulk_size": 10, "sink_flush_interval_s": 0.0})
    results = _results(2000)
    produce(settings, settings.topic_results, [(r.video_uid.encode(), encode(r)) for r in results])
    sink = spawn("sink", settings, tmp_path / "sink1.log")
    try:
        # generous: on a loaded machine the sink's start (imports, group join) has taken over a minute
        assert wait_for(lambda: _es_count(settings, "detections") >= 50, 180, 0.2), \
            (tmp_path / "sink1.log").read_text()[-3000:]
        os.killpg(sink.pid, signal.SIGKILL)
        sink.wait(10)
        written = _es_count(settings, "detections")
        assert written < len(results), "the sink finished before it could be killed"
        assert committed_total(settings, settings.sink_group, settings.topic_results) <= written
        restarted = spawn("sink", settings, tmp_path / "sink2.log")
        try:
            assert wait_for(lambda: committed_total(settings, settings.sink_group, settings.topic_results)
                            == len(results), 120, 0.5), (tmp_path / "sink2.log").read_text()[-3000:]
        finally:
            assert stop(restarted) == 0
    finally:
        if sink.poll() is None:
            sink.kill()
    assert _es_count(settings, "detections") == len(results)  # redone writes hit the same ids
    assert _es_count(settings, "videos") == len(results)


def test_a_replaced_sink_consumer_and_a_second_sink_lose_nothing(fault_settings: Settings) -> None:
    """The watchdog's replacement of a stuck member, then a rebalance onto a second sink: all written once."""
    settings = fault_settings
    first, second = _results(40, "a"), _results(40, "b", start=40)
    produce(settings, settings.topic_results, [(r.video_uid.encode(), encode(r)) for r in first])
    sink = Sink(settings)
    thread = _run(sink)
    other: Sink | None = None
    try:
        assert wait_for(lambda: committed_total(settings, settings.sink_group, settings.topic_results) == 40, 30)
        old = sink.consumer
        stalled = iter([True])
        sink._watchdog.stalled = lambda: next(stalled, False)  # type: ignore[method-assign]
        assert wait_for(lambda: sink.consumer is not old, 10)
        other = Sink(settings)
        other_thread = _run(other)
        assert wait_for(lambda: bool(other.consumer.assignment()) and bool(sink.consumer.assignment()), 40, 0.2)
        produce(settings, settings.topic_results, [(r.video_uid.encode(), encode(r)) for r in second])
        assert wait_for(lambda: committed_total(settings, settings.sink_group, settings.topic_results) == 80, 60)
    finally:
        _finish(sink, thread)
        if other is not None:
            _finish(other, other_thread)
    assert _es_count(settings, "detections") == 80
