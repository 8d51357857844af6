"""The pure parts of the worker and the sink: offset tracking, batching policy, DLQ wrapping, document ids, media
checks, steps with in-memory neighbours (no Kafka or Elasticsearch needed here)."""
from __future__ import annotations

import base64
import hashlib
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import TopicPartition

from pipeline import DeadLetter, FusedScore, MessageError, ResultMessage, Settings, decode, encode
from pipeline._consume import Backoff, MessageRejected, OffsetTracker, ProcessingStep, Record, describe
from pipeline._observe import JsonFormatter, log_context
from pipeline.sink import bulk_actions, detection_doc, detection_id, video_update
from pipeline.worker import BatchPolicy, ChecksumMismatch, MediaMissing, MediaOverCap, fetch_media, is_poison, \
    local_path

TP0 = TopicPartition("jobs", 0)
TP1 = TopicPartition("jobs", 1)


# ---------------------------------------------------------------- offsets

def test_commits_only_the_contiguous_done_prefix() -> None:
    tracker = OffsetTracker()
    tracker.assign([TP0])
    gens = {o: tracker.add(TP0, o) for o in (10, 11, 12, 13)}
    assert tracker.committable() == {}
    tracker.done(TP0, 11, gens[11])
    tracker.done(TP0, 13, gens[13])
    assert tracker.committable() == {}  # 10 is not done: nothing may be committed
    tracker.done(TP0, 10, gens[10])
    assert tracker.committable() == {TP0: 12}  # 10, 11 done; 12 not
    tracker.committed({TP0: 12})
    assert tracker.committable() == {}
    tracker.done(TP0, 12, gens[12])
    assert tracker.committable() == {TP0: 14}
    tracker.committed({TP0: 14})
    assert tracker.in_flight() == 0


def test_partitions_are_independent_and_gaps_in_offsets_are_fine() -> None:
    tracker = OffsetTracker()
    g0 = tracker.add(TP0, 5)
    g1 = tracker.add(TP1, 100)
    tracker.add(TP1, 103)  # compaction or transaction markers leave gaps
    tracker.done(TP1, 100, g1)
    tracker.done(TP1, 103, g1)
    assert tracker.committable() == {TP1: 104}
    tracker.done(TP0, 5, g0)
    assert tracker.committable() == {TP0: 6, TP1: 104}


def test_work_of_a_revoked_assignment_is_never_committed() -> None:
    tracker = OffsetTracker()
    tracker.assign([TP0])
    old = tracker.add(TP0, 1)
    tracker.revoke([TP0])
    tracker.assign([TP0])  # the partition came back (new generation), redelivered from the last commit
    new = tracker.add(TP0, 1)
    assert new != old
    assert tracker.done(TP0, 1, old) is False
    assert tracker.committable() == {}
    assert tracker.done(TP0, 1, new) is True
    assert tracker.committable() == {TP0: 2}


def test_records_redelivered_to_the_same_assignment_are_skipped() -> None:
    tracker = OffsetTracker()
    g = tracker.add(TP0, 7)
    tracker.add(TP0, 8)
    assert tracker.add(TP0, 7) is None and tracker.add(TP0, 6) is None  # the consumer went back: skip them
    tracker.done(TP0, 7, g)
    tracker.committed(tracker.committable())
    assert tracker.add(TP0, 7) is None  # below the committed position
    assert tracker.add(TP0, 9) == g


def test_rebalance_events_are_queued_for_the_main_loop() -> None:
    from pipeline._consume import RebalanceEvents

    events = RebalanceEvents()
    events.on_partitions_revoked({TP0})
    events.on_partitions_assigned({TP0, TP1})
    assert events.drain() == [("revoked", {TP0}), ("assigned", {TP0, TP1})]
    assert events.drain() == []


def test_describe_partitions_for_logs() -> None:
    assert describe([TP1, TP0, TopicPartition("r", 3)]) == "jobs[0,1] r[3]"
    assert describe([]) == "none"


def test_backoff_doubles_up_to_a_cap() -> None:
    backoff = Backoff(0.5, 3.0)
    assert [backoff.delay(n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


# ---------------------------------------------------------------- batching

def test_batch_policy_full_or_waited_long_enough() -> None:
    policy = BatchPolicy(max_size=4, max_wait_s=0.5)
    assert not policy.ready(0, 10.0)
    assert not policy.ready(3, 0.1)
    assert policy.ready(4, 0.0)
    assert policy.ready(1, 0.5)
    assert policy.ready(1, 0.0, flushing=True)
    assert policy.take(9) == 4 and policy.take(2) == 2
    assert policy.capacity == 8 and policy.full(8) and not policy.full(7)
    with pytest.raises(ValueError):
        BatchPolicy(max_size=0)


class _Sink(ProcessingStep[object]):
    def __init__(self, limit: int = 1000) -> None:
        self.items: list[object] = []
        self.limit = limit

    def submit(self, item: object) -> None:
        if len(self.items) >= self.limit:
            raise MessageRejected
        self.items.append(item)

    def poll(self) -> None:
        pass

    def pending(self) -> int:
        return 0


class _CountingSuite:
    version = "suite-test"

    def __init__(self, fail_on: object = None) -> None:
        self.batches: list[int] = []
        self.fail_on = fail_on

    def prepare(self, source: object, *, media_sha256: str | None = None) -> tuple[object, dict[str, float]]:
        return source, {}

    def analyse(self, clips: list[object]) -> list[object]:
        self.batches.append(len(clips))
        if self.fail_on in clips:
            raise RuntimeError("this clip breaks the model")
        return [f"result:{c}" for c in clips]


def _work(i: int) -> object:
    from pipeline.worker import Work

    work = Work(Record("jobs", 0, i, None, b""))
    work.clip = f"clip{i}"
    return work


def _drain(step: ProcessingStep[object], until: float = 5.0) -> None:
    deadline = time.monotonic() + until
    while step.pending() and time.monotonic() < deadline:
        step.poll()
        time.sleep(0.005)


def test_analyse_batches_across_videos_bounded_and_applies_backpressure() -> None:
    from pipeline.worker import Analyse

    suite = _CountingSuite()
    out, dlq = _Sink(), _Sink()
    step = Analyse(suite, out, dlq, policy=BatchPolicy(max_size=3, max_wait_s=10.0))
    for i in range(6):
        step.submit(_work(i))
    with pytest.raises(MessageRejected):  # two batches wait: the step is full
        step.submit(_work(99))
    step.poll()
    _drain(step, 0.2)  # the second batch is full too: both run without waiting
    assert suite.batches == [3, 3]
    step.submit(_work(6))
    step.poll()
    time.sleep(0.05)
    step.poll()
    assert suite.batches == [3, 3]  # one video waits for company (max_wait_s = 10 s)
    step.join(5)  # shutdown flushes the partial batch
    assert suite.batches == [3, 3, 1]
    assert [w.result for w in out.items] == [f"result:clip{i}" for i in range(7)]
    step.close()


def test_analyse_isolates_the_clip_that_breaks_a_batch() -> None:
    from pipeline.worker import Analyse

    suite = _CountingSuite(fail_on="clip1")
    out, dlq = _Sink(), _Sink()
    step = Analyse(suite, out, dlq, policy=BatchPolicy(max_size=3, max_wait_s=0.0))
    for i in range(3):
        step.submit(_work(i))
    step.join(5)
    assert [w.record.offset for w in out.items] == [0, 2]
    assert len(dlq.items) == 1 and dlq.items[0].stage == "analyse"
    assert dlq.items[0].work.record.offset == 1 and "breaks the model" in str(dlq.items[0].error)
    step.close()


# ---------------------------------------------------------------- dead letters

def test_dead_letter_keeps_the_original_and_says_why() -> None:
    raw = b'{"schema": "vigil.job/2"}'
    letter = DeadLetter.wrap(raw, topic="vigil.jobs", error=MessageError("schema is 'vigil.job/2'"), stage="parse",
                             attempts=1, partition=1, offset=42, key=b"youtube:abc")
    back = decode(encode(letter), DeadLetter)
    assert back.original_value == raw.decode() and back.original_encoding == "utf-8"
    assert (back.error_class, back.stage, back.attempts) == ("MessageError", "parse", 1)
    assert (back.original_partition, back.original_offset, back.original_key) == (1, 42, "youtube:abc")
    binary = DeadLetter.wrap(b"\xff\x00", topic="t", error=ChecksumMismatch("x"), stage="fetch", attempts=3)
    assert base64.b64decode(binary.original_value) == b"\xff\x00" and binary.attempts == 3


def test_poison_and_transient_errors_are_told_apart() -> None:
    from detectors import CorruptMedia, NotAVideo

    from pipeline.worker import MediaUnavailable

    assert is_poison(MessageError("bad")) and is_poison(ChecksumMismatch("x")) and is_poison(MediaMissing("x"))
    assert is_poison(CorruptMedia("truncated", source="f")) and is_poison(NotAVideo("text", source="f"))
    assert not is_poison(MediaUnavailable("store down")) and not is_poison(RuntimeError("bug"))


# ---------------------------------------------------------------- media

def test_fetch_media_verifies_sha256_size_and_presence(tmp_path: Path) -> None:
    data = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 10
    path = tmp_path / "ab" / "file.mp4"
    path.parent.mkdir()
    path.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    with fetch_media(path.as_uri(), sha, max_bytes=10_000) as local:
        assert local == path
    with fetch_media(str(path), sha, max_bytes=10_000) as local:
        assert local == path
    with pytest.raises(ChecksumMismatch), fetch_media(str(path), "0" * 64, max_bytes=10_000):
        pass
    with pytest.raises(MediaOverCap), fetch_media(str(path), sha, max_bytes=100):
        pass
    with pytest.raises(MediaMissing), fetch_media(str(tmp_path / "nope.mp4"), sha, max_bytes=10_000):
        pass


def test_fetch_media_copies_remote_uris_and_removes_the_copy(tmp_path: Path) -> None:
    import fsspec

    data = b"remote bytes" * 100
    sha = hashlib.sha256(data).hexdigest()
    with fsspec.open("memory://store/aa/x.mp4", "wb") as out:
        out.write(data)
    with fetch_media("memory://store/aa/x.mp4", sha, max_bytes=1 << 20, scratch=tmp_path) as local:
        assert local.read_bytes() == data and local.parent == tmp_path
    assert not local.exists()
    with pytest.raises(ChecksumMismatch), fetch_media("memory://store/aa/x.mp4", "1" * 64, max_bytes=1 << 20,
                                                      scratch=tmp_path):
        pass
    with pytest.raises(MediaMissing), fetch_media("memory://store/none.mp4", sha, max_bytes=1 << 20,
                                                  scratch=tmp_path):
        pass
    assert list(tmp_path.iterdir()) == []


def test_local_paths() -> None:
    assert local_path("file:///a/b%20c.mp4") == Path("/a/b c.mp4")
    assert local_path("/a/b.mp4") == Path("/a/b.mp4")
    assert local_path("s3://bucket/b.mp4") is None


# ---------------------------------------------------------------- documents

def _result() -> ResultMessage:
    return ResultMessage(video_uid="youtube:abc123", media_sha256="a" * 64, suite_version="suite-1",
                         duration_s=31.2, fused=FusedScore(score=0.83, verdict="likely_manipulated",
                                                           reasons=["mouth lags speech by 200 ms"]),
                         detectors={}, timings_ms={"decode": 410.0},
                         produced_at=datetime(2026, 11, 26, 10, 0, tzinfo=UTC))


def test_detection_id_is_a_hash_of_sha_and_suite() -> None:
    sha = "a" * 64
    assert detection_id(sha, "suite-1") == hashlib.sha256(f"{sha}:suite-1".encode()).hexdigest()
    assert detection_id(sha, "suite-1") != detection_id(sha, "suite-2")
    assert detection_id(sha, "suite-1") != detection_id("b" * 64, "suite-1")


def test_documents_follow_the_index_mappings() -> None:
    result = _result()
    doc = detection_doc(result)
    mapping = json.loads((Path(__file__).resolve().parents[2] / "infra/elasticsearch/index/detections.json")
                         .read_text())["template"]["mappings"]["properties"]
    assert set(doc) - {"source", "evidence_uris"} <= set(mapping)
    assert doc["detection_id"] == detection_id(result.media_sha256, result.suite_version)
    assert doc["@timestamp"].startswith("2026-11-26T10:00:00")
    assert doc["fused"] == {"score": 0.83, "verdict": "likely_manipulated", "reasons": ["mouth lags speech by 200 ms"]}
    update = video_update(result)
    assert update["status"] == "scored" and update["fused"]["verdict"] == "likely_manipulated"
    assert update["scored_at"] == doc["@timestamp"] and update["detection_id"] == doc["detection_id"]
    settings = Settings(es_index_prefix="vigil")
    index, upsert = bulk_actions(result, settings)
    assert (index["_op_type"], index["_index"], index["_id"]) == ("index", "vigil-detections", doc["detection_id"])
    assert (upsert["_op_type"], upsert["_index"], upsert["_id"]) == ("update", "vigil-videos", "youtube:abc123")
    assert upsert["doc_as_upsert"] is True and "script" not in upsert


# ---------------------------------------------------------------- logs

def test_log_lines_carry_the_video_uid(capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    logger = logging.getLogger("vigil.test")
    record = logger.makeRecord("vigil.test", logging.INFO, __file__, 1, "scored %s", ("x",), None)
    with log_context("youtube:abc"):
        from pipeline._observe import _ContextFilter

        _ContextFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["video_uid"] == "youtube:abc" and line["message"] == "scored x" and line["level"] == "info"


def test_analyse_bounds_the_memory_of_waiting_clips() -> None:
    import numpy as np

    from pipeline.worker import Analyse, Work

    class Frames:
        def __init__(self, mb: int) -> None:
            self.frames = np.zeros(mb * 1024 * 1024, dtype=np.uint8)
            self.audio = None

    out, dlq = _Sink(), _Sink()
    step = Analyse(_CountingSuite(), out, dlq, policy=BatchPolicy(max_size=8, max_wait_s=10.0),
                   max_buffered_bytes=3 * 1024 * 1024)
    works = []
    for i in range(4):
        work = Work(Record("jobs", 0, i, None, b""))
        work.clip = Frames(1)
        works.append(work)
    for work in works[:3]:
        step.submit(work)
    with pytest.raises(MessageRejected):  # 3 MB wait already: the fourth would pass the bound
        step.submit(works[3])
    assert step.buffered_bytes == 3 * 1024 * 1024
    step.join(5)
    assert step.buffered_bytes == 0 and len(out.items) == 3
    big = Work(Record("jobs", 0, 9, None, b""))
    big.clip = Frames(5)
    step.submit(big)  # a clip larger than the bound alone is still taken (no deadlock)
    step.join(5)
    step.close()


def test_bulk_lines_are_the_bulk_actions_as_ndjson() -> None:
    from pipeline.sink import bulk_lines

    result = _result()
    settings = Settings(es_index_prefix="vigil")
    (key_index, index_lines), (key_update, update_lines) = bulk_lines(result, settings)
    head, body = [json.loads(line) for line in index_lines.decode().splitlines()]
    assert key_index == ("index", "vigil-detections", detection_id(result.media_sha256, result.suite_version))
    assert head == {"index": {"_index": "vigil-detections", "_id": key_index[2]}}
    expected = detection_doc(result)
    assert {k: v for k, v in body.items() if k != "event"} == {k: v for k, v in expected.items() if k != "event"}
    head, body = [json.loads(line) for line in update_lines.decode().splitlines()]
    assert key_update == ("update", "vigil-videos", "youtube:abc123")
    assert head == {"update": {"_index": "vigil-videos", "_id": "youtube:abc123"}}
    assert body == {"doc": video_update(result), "doc_as_upsert": True}


def test_group_watchdog_notices_a_member_stuck_in_a_rebalance() -> None:
    from types import SimpleNamespace

    from pipeline._consume import GroupWatchdog

    state = {"stable": True}
    consumer = SimpleNamespace(_coordinator=SimpleNamespace(stable=lambda: state["stable"]))
    watchdog = GroupWatchdog(consumer, limit_s=0.05)
    assert not watchdog.stalled()
    state["stable"] = False
    assert not watchdog.stalled()  # rebalancing for a moment is normal
    time.sleep(0.08)
    assert watchdog.stalled()
    state["stable"] = True
    assert not watchdog.stalled()
    assert not GroupWatchdog(object(), limit_s=0).stalled()  # a consumer without a coordinator is never stalled


class _SuiteResult:
    """Stands where a detectors.SuiteResult goes: builds the result message of one job."""

    def __init__(self, sha: str, broken: bool = False) -> None:
        self.sha, self.broken = sha, broken

    def to_message(self, *, video_uid: str, suite_version: str, source: object = None,
                   extra_timings: dict[str, float] | None = None) -> ResultMessage:
        if self.broken:
            raise ValueError("score out of range")
        from pipeline import DetectorOutput, TimelineWindow

        return ResultMessage(video_uid=video_uid, media_sha256=self.sha, suite_version=suite_version, duration_s=4.0,
                             fused=FusedScore(score=0.2, verdict="no_signal"),
                             detectors={"lipsync": DetectorOutput(version="1", applicable=True, score=0.2, timeline=[
                                 TimelineWindow(start_s=0, end_s=4, score=0.2)])},
                             timings_ms=extra_timings or {})


def test_evidence_renders_plots_off_the_main_loop_in_order(tmp_path: Path) -> None:
    from pipeline import JobMessage, SourceMetadata
    from pipeline._media_store import MediaStore
    from pipeline.worker import Evidence

    out, dlq = _Sink(limit=2), _Sink()
    step = Evidence(MediaStore(str(tmp_path / "store")), out, dlq, suite_version="suite-9", capacity=3)
    works = []
    for i in range(4):
        sha = f"{i:x}" * 64
        work = _work(i)
        work.job = JobMessage(video_uid=f"file:{i}", media_uri=f"file:///x/{sha}", media_sha256=sha,
                              source=SourceMetadata(platform="file", url=f"/x/{i}.mp4"))
        work.result = _SuiteResult(sha, broken=(i == 2))
        works.append(work)
    for work in works[:3]:
        step.submit(work)
    with pytest.raises(MessageRejected):  # bounded
        step.submit(works[3])
    _drain(step, 10)
    # the next step took two (its limit), the broken one went to the dead-letter step, in order
    assert [w.job.video_uid for w in out.items] == ["file:0", "file:1"]
    assert [f.stage for f in dlq.items] == ["result"] and "score out of range" in str(dlq.items[0].error)
    for work in out.items:
        assert isinstance(work.result, ResultMessage) and len(work.result.evidence_uris) >= 1
        for uri in work.result.evidence_uris:
            assert Path(uri.removeprefix("file://")).read_bytes().startswith(b"\x89PNG")
            assert f"{work.job.media_sha256}.evidence/suite-9/" in uri
    step.close()
