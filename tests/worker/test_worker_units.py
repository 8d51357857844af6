"""The pure parts of the worker and the sink: offset tracking, batching policy, DLQ wrapping, document ids, media
checks, steps with in-memory neighbours (no Kafka or Elasticsearch needed here)."""
from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import TopicPartition

from pipeline import DeadLetter, FusedScore, MessageError, ResultMessage, Settings
from pipeline.consume import Backoff, Failure, MessageRejected, OffsetTracker, ProcessingStep, Record, describe
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
    from pipeline.consume import RebalanceEvents

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


def _analyse(suite: object, out: ProcessingStep[object], dlq: ProcessingStep[object],
             requeue: ProcessingStep[object] | None = None, **options: object) -> object:
    from pipeline.worker import Analyse

    options.setdefault("retry_attempts", 3)
    options.setdefault("backoff", Backoff(0.001, 0.01, jitter=0.5))
    return Analyse(suite, out, dlq, requeue if requeue is not None else _Sink(), **options)


def _drain(step: ProcessingStep[object], until: float = 5.0) -> None:
    deadline = time.monotonic() + until
    while step.pending() and time.monotonic() < deadline:
        step.poll()
        time.sleep(0.005)


def test_analyse_batches_across_videos_bounded_and_applies_backpressure() -> None:
    from pipeline.worker import Analyse

    suite = _CountingSuite()
    out, dlq = _Sink(), _Sink()
    step = _analyse(suite, out, dlq, policy=BatchPolicy(max_size=3, max_wait_s=10.0))
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
    step = _analyse(suite, out, dlq, policy=BatchPolicy(max_size=3, max_wait_s=0.0))
    for i in range(3):
        step.submit(_work(i))
    step.join(5)
    assert [w.record.offset for w in out.items] == [0, 2]
    assert len(dlq.items) == 1 and dlq.items[0].stage == "analyse"
    assert dlq.items[0].envelope.record.offset == 1 and "breaks the model" in str(dlq.items[0].error)
    step.close()


# ---------------------------------------------------------------- dead letters

def test_dead_letter_keeps_the_original_bytes_and_says_why_in_headers() -> None:
    from types import SimpleNamespace

    from pipeline.consume import dead_letter_headers, parse_dead_letter

    raw = b'{"schema": "vigil.job/2"}'
    record = Record("vigil.jobs", 1, 42, b"youtube:abc", raw, headers=[("trace", b"t-1")])
    headers = dead_letter_headers(record, MessageError("schema is 'vigil.job/2'"), stage="parse", attempts=1,
                                  component="worker")
    names = dict(headers)
    assert names["__connect.errors.exception.class.name"] == b"MessageError"
    assert names["__connect.errors.stage"] == b"parse" and names["__connect.errors.attempts"] == b"1"
    assert (names["__connect.errors.topic"], names["__connect.errors.partition"],
            names["__connect.errors.offset"]) == (b"vigil.jobs", b"1", b"42")
    assert names["trace"] == b"t-1"  # the record's own headers travel along
    message = SimpleNamespace(topic="vigil.dlq", partition=0, offset=7, key=b"youtube:abc", value=raw,
                              headers=headers, timestamp=1_764_000_000_000)
    letter = parse_dead_letter(message)
    assert letter.original_bytes() == raw and letter.original_encoding == "utf-8"
    assert (letter.error_class, letter.stage, letter.attempts, letter.component) == (
        "MessageError", "parse", 1, "vigil-worker")
    assert (letter.original_topic, letter.original_partition, letter.original_offset, letter.original_key) == (
        "vigil.jobs", 1, 42, "youtube:abc")
    binary = parse_dead_letter(SimpleNamespace(topic="vigil.dlq", partition=0, offset=8, key=None, value=b"\xff\x00",
                                               headers=dead_letter_headers(
                                                   Record("t", 0, 1, None, b"\xff\x00"), ChecksumMismatch("x"),
                                                   stage="fetch", attempts=3, component="worker"), timestamp=None))
    assert binary.original_bytes() == b"\xff\x00" and binary.attempts == 3 and binary.original_encoding == "base64"
    foreign = parse_dead_letter(SimpleNamespace(topic="vigil.dlq", partition=0, offset=9, key=None, value=b"x",
                                                headers=[], timestamp=None))
    assert foreign.original_topic == "?" and "not written by Vigil" in foreign.error_message
    assert isinstance(letter, DeadLetter)


def test_backoff_jitter_stays_below_the_plain_delay() -> None:
    backoff = Backoff(1.0, 8.0, jitter=0.5)
    delays = [backoff.delay(3) for _ in range(200)]
    assert all(2.0 <= d <= 4.0 for d in delays) and len({round(d, 6) for d in delays}) > 50


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
    assert doc["fused"] == {"score": 0.83, "verdict": "likely_manipulated", "reasons": ["mouth lags speech by 200 ms"],
                            "timeline": []}
    update = video_update(result)
    assert update["status"] == "scored" and update["fused"]["verdict"] == "likely_manipulated"
    videos = json.loads((Path(__file__).resolve().parents[2] / "infra/elasticsearch/index/videos.json")
                        .read_text())["template"]["mappings"]["properties"]
    assert set(update) <= set(videos)
    assert update["scored_at"] == doc["@timestamp"] and update["detection_id"] == doc["detection_id"]
    settings = Settings(es_index_prefix="vigil")
    index, upsert = bulk_actions(result, settings)
    assert (index["_op_type"], index["_index"], index["_id"]) == ("index", "vigil-detections", doc["detection_id"])
    assert (upsert["_op_type"], upsert["_index"], upsert["_id"]) == ("update", "vigil-videos", "youtube:abc123")
    assert upsert["doc_as_upsert"] is True and "script" not in upsert


def test_the_video_says_which_detector_failed_and_carries_what_detectors_found() -> None:
    from pipeline import DetectorOutput, Segment
    from pipeline.sink import video_update

    result = _result().model_copy(update={
        "detectors": {"lipsync": DetectorOutput(version="1", applicable=True, score=0.9),
                      "face_forgery": DetectorOutput(version="2", applicable=False,
                                                     error="ValueError: crop is empty")},
        "segments": [Segment(start_s=2.0, end_s=5.2, score=0.9, detectors=["lipsync"])],
        "annotations": {"persons": [{"name": "Jane Doe", "face_similarity": 0.94}], "provenance": {"present": False},
                        "not_a_video_field": 1}})
    update = video_update(result)
    assert update["status_reason"] == "scored: likely_manipulated; detector failed: face_forgery (ValueError: crop is empty)"
    assert update["detectors_failed"] == ["face_forgery"]
    assert update["segments"][0]["start_s"] == 2.0 and update["persons"][0]["name"] == "Jane Doe"
    assert update["provenance"] == {"present": False} and "not_a_video_field" not in update
    assert "timeline" not in update["fused"]  # the per-window fused timeline stays in the detection document


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
    step = _analyse(_CountingSuite(), out, dlq, policy=BatchPolicy(max_size=8, max_wait_s=10.0),
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
    # the update answers with the video's submission webhook (called once the result is written)
    assert body == {"doc": video_update(result), "doc_as_upsert": True, "_source": {"includes": ["submission.webhook"]}}


def test_group_watchdog_notices_a_member_stuck_in_a_rebalance() -> None:
    from types import SimpleNamespace

    from pipeline.consume import GroupWatchdog

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


def test_keyframes_builds_results_off_the_main_loop_in_order(tmp_path: Path) -> None:
    from pipeline import JobMessage, SourceMetadata
    from pipeline._media_store import MediaStore
    from pipeline.worker import Keyframes

    out, dlq = _Sink(limit=2), _Sink()
    step = Keyframes(MediaStore(str(tmp_path / "store")), out, dlq, suite_version="suite-9", crops=0, capacity=3)
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
        assert isinstance(work.message, ResultMessage) and work.message.evidence_uris == []
        assert work.clip is None  # frames released once the message is built
    step.close()


def test_face_keyframes_are_small_jpegs_where_the_detectors_fired(tmp_path: Path) -> None:
    import numpy as np

    from detectors import Clip, DetectorResult, FaceTrack, Window
    from pipeline._media_store import MediaStore
    from pipeline.worker import face_crops, keyframe_times, store_face_crops

    n = 40
    frames = np.zeros((n, 240, 320, 3), dtype=np.uint8)
    frames[:, 60:180, 100:220] = 200
    track = FaceTrack(track_id=0, frame_index=np.arange(n), boxes=np.tile([100, 60, 220, 180], (n, 1)).astype("f4"),
                      landmarks=None, mouth_open=np.zeros(n, dtype="f4"))
    clip = Clip(source="x.mp4", duration_s=8.0, fps=5.0, frames=frames, timestamps=np.arange(n) / 5.0, audio=None,
                faces=[track])

    class Result:
        results = {"lipsync": DetectorResult(name="lipsync", version="1", applicable=True, score=0.9,
                                             timeline=[Window(0, 2, 0.1), Window(4, 6, 0.95)])}
        segments: list[object] = []

    times = keyframe_times(Result(), 8.0, 3)
    assert times[0] == 5.0 and len(times) == 3 and len({round(t, 3) for t in times}) == 3
    crops = face_crops(clip, times)
    assert len(crops) == 3 and all(data[:2] == b"\xff\xd8" and len(data) < 20_000 for _, data in crops)
    store = MediaStore(str(tmp_path / "store"))
    sha = "ab" * 32
    uris = store_face_crops(store, clip, Result(), media_sha256=sha, suite_version="s/1", n=2)
    assert len(uris) == 2 and all(f"{sha}.evidence/s_1/faces/" in u and u.endswith(".jpg") for u in uris)
    no_face = Clip(source="y.mp4", duration_s=8.0, fps=5.0, frames=frames, timestamps=np.arange(n) / 5.0,
                   audio=None)
    assert face_crops(no_face, times) == []


class _FlakyDeviceSuite(_CountingSuite):
    """The device step fails with CUDA out-of-memory on the first call of every batch size, or always."""

    def __init__(self, *, always: bool = False) -> None:
        super().__init__()
        self.always = always
        self.failed_sizes: set[int] = set()

    def analyse(self, clips: list[object]) -> list[object]:
        import torch

        from detectors import DetectorUnavailable

        self.batches.append(len(clips))
        if self.always or len(clips) not in self.failed_sizes:
            self.failed_sizes.add(len(clips))
            try:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            except torch.cuda.OutOfMemoryError as exc:
                raise DetectorUnavailable(f"face_forgery: {exc}", detector="face_forgery",
                                          batch_size=len(clips)) from exc
        return [f"result:{c}" for c in clips]


def test_a_transient_device_failure_is_split_and_retried_never_a_result() -> None:
    suite = _FlakyDeviceSuite()
    out, dlq, requeue = _Sink(), _Sink(), _Sink()
    step = _analyse(suite, out, dlq, requeue, policy=BatchPolicy(max_size=4, max_wait_s=0.0))
    for i in range(4):
        step.submit(_work(i))
    step.join(10)
    assert sorted(w.result for w in out.items) == [f"result:clip{i}" for i in range(4)]
    assert dlq.items == [] and requeue.items == []
    assert suite.batches[0] == 4 and 2 in suite.batches  # split into halves after the failure
    assert step.buffered_bytes == 0
    step.close()


def test_a_device_failure_that_never_clears_requeues_then_dead_letters() -> None:
    from pipeline import JobMessage, SourceMetadata

    out, dlq, requeue = _Sink(), _Sink(), _Sink()
    step = _analyse(_FlakyDeviceSuite(always=True), out, dlq, requeue, policy=BatchPolicy(max_size=2, max_wait_s=0.0),
                    retry_attempts=3, local_tries=2)
    works = []
    for i, attempt in enumerate((1, 3)):
        work = _work(i)
        work.job = JobMessage(video_uid=f"file:{i}", media_uri="file:///x", media_sha256="a" * 64, attempt=attempt,
                              source=SourceMetadata(platform="file", url="/x"))
        works.append(work)
        step.submit(work)
    step.join(10)
    assert out.items == []  # never a result
    assert [w.job.attempt for w in requeue.items] == [1]  # handed back: goes to vigil.jobs as attempt 2
    assert len(dlq.items) == 1 and isinstance(dlq.items[0], Failure)
    assert dlq.items[0].stage == "analyse" and dlq.items[0].attempts == 3
    assert "out of memory" in str(dlq.items[0].error)
    step.close()


def test_requeued_job_carries_the_next_attempt() -> None:
    from pipeline import JobMessage, SourceMetadata, decode
    from pipeline.worker._steps import requeue_out

    work = _work(5)
    work.job = JobMessage(video_uid="file:5", media_uri="file:///x", media_sha256="a" * 64, attempt=2,
                          source=SourceMetadata(platform="file", url="/x"))
    message = requeue_out("vigil.jobs")(work)
    assert message.topic == "vigil.jobs" and decode(message.value, JobMessage).attempt == 3
    assert dict(message.headers)["__vigil.requeued_from"] == b"jobs:0:5"


def test_lag_gauges_of_revoked_partitions_are_removed() -> None:
    from types import SimpleNamespace

    from pipeline._observe import CONSUMER_LAG
    from pipeline.sink import Sink

    consumer = SimpleNamespace(pause=lambda *a: None, assignment=lambda: set(), paused=lambda: set())
    sink = Sink(Settings(topic_results="lag-test.results"), es=object(), consumer=consumer, producer=object())
    tp = TopicPartition("lag-test.results", 3)
    CONSUMER_LAG.labels("sink", tp.topic, "3").set(12)
    sink._rebalance.on_partitions_assigned({tp})
    sink._apply_rebalance()
    sink._rebalance.on_partitions_revoked({tp})
    sink._apply_rebalance()
    samples = [s for metric in CONSUMER_LAG.collect() for s in metric.samples
               if s.labels.get("topic") == tp.topic]
    assert samples == []  # not left stale at its last value
