"""Helpers for the worker and sink tests: generated MP4 clips, jobs in a media store, a light detector suite.

The light suite has the shape of ``detectors.Suite`` (prepare / analyse / version, results with ``to_message``)
with two small real detectors computed on the decoded clip (frame brightness, audio loudness), so runtime tests
stay fast on two CPU cores. ``VIGIL_WORKER_SUITE=support.worker:make_suite`` makes a worker process use it.
"""
from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from detectors import Clip, Detector, DetectorResult, NotApplicable, Window, decode_clip, run_detector, suite_version
from pipeline import FusedScore, JobMessage, ResultMessage, Settings, SourceMetadata
from pipeline.contracts import MediaStore

from .stack import ROOT, settings_env

logger = logging.getLogger(__name__)


def ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def make_clip(path: Path, *, seconds: float = 2.0, tone_hz: int = 440, size: str = "160x120",
              pattern: str = "testsrc") -> Path:
    """A small real MP4 (H.264 + AAC): a test pattern with a sine tone; the tone makes each file unique."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [ffmpeg(), "-hide_banner", "-loglevel", "error", "-y",
           "-f", "lavfi", "-i", f"{pattern}=size={size}:rate=15:duration={seconds}",
           "-f", "lavfi", "-i", f"sine=frequency={tone_hz}:duration={seconds}",
           "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "32k",
           "-shortest", str(path)]
    subprocess.run(cmd, check=True, capture_output=True)
    return path


def make_clips(directory: Path, n: int, *, seconds: float = 2.0) -> list[Path]:
    return [make_clip(directory / f"clip{i:03d}.mp4", seconds=seconds + (i % 3) * 0.5, tone_hz=300 + 37 * i)
            for i in range(n)]


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def store_file(settings: Settings, path: Path) -> tuple[str, str]:
    """Put ``path`` into the media store (content-addressed, as the crawl does); returns (sha256, uri)."""
    sha = sha256_of(path)
    return sha, MediaStore.from_settings(settings).put(path, sha256=sha)


def job_for(settings: Settings, path: Path, uid: str | None = None) -> JobMessage:
    sha, uri = store_file(settings, path)
    uid = uid or f"file:{sha[:16]}"
    return JobMessage(video_uid=uid, media_uri=uri, media_sha256=sha,
                      source=SourceMetadata(platform="file", url=path.as_uri(), title=path.name))


# ---------------------------------------------------------------- a light suite with real computations

class Brightness(Detector[torch.Tensor, torch.Tensor]):
    """Mean frame brightness (a stand-in with real arithmetic on the decoded frames)."""

    name = "test_brightness"
    version = "1"

    def preprocess(self, clip: Clip) -> torch.Tensor | NotApplicable:
        if len(clip.frames) == 0:
            return NotApplicable("no frames")
        return torch.from_numpy(np.ascontiguousarray(clip.frames)).float().mean(dim=(1, 2, 3))

    def _forward(self, batch: list[torch.Tensor]) -> list[torch.Tensor]:
        return [t / 255.0 for t in batch]

    def postprocess(self, raw: torch.Tensor, clip: Clip) -> DetectorResult:
        per_frame = raw.numpy()
        timeline = [Window(float(t), float(t) + 1.0 / clip.fps, float(s)) for t, s in zip(clip.timestamps, per_frame)]
        return self.result(applicable=True, score=float(per_frame.mean()), timeline=timeline[:50],
                           evidence={"frames": len(per_frame)})


class Loudness(Detector[torch.Tensor, torch.Tensor]):
    """RMS loudness of the audio track; not applicable without audio."""

    name = "test_loudness"
    version = "1"

    def preprocess(self, clip: Clip) -> torch.Tensor | NotApplicable:
        if not clip.has_audio:
            return NotApplicable("no audio")
        return torch.from_numpy(np.ascontiguousarray(clip.audio, dtype=np.float32))

    def _forward(self, batch: list[torch.Tensor]) -> list[torch.Tensor]:
        return [t.pow(2).mean().sqrt() for t in batch]

    def postprocess(self, raw: torch.Tensor, clip: Clip) -> DetectorResult:
        rms = float(raw)
        return self.result(applicable=True, score=float(min(1.0, rms * 2)), evidence={"rms": rms})


class FlakyDevice(Detector[torch.Tensor, torch.Tensor]):
    """A device step that raises CUDA out-of-memory: on the first try of every batch it sees (``once``), or
    always (``always``). Its score is real arithmetic on the frames when it does run."""

    name = "test_flaky_device"
    version = "1"

    def __init__(self, *, mode: str = "once", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mode = mode
        self.seen: set[tuple[float, ...]] = set()
        self.calls = 0

    def preprocess(self, clip: Clip) -> torch.Tensor | NotApplicable:
        return torch.tensor([float(clip.duration_s), float(np.asarray(clip.frames).mean())])

    def _forward(self, batch: list[torch.Tensor]) -> list[torch.Tensor]:
        self.calls += 1
        key = tuple(round(float(t[1]), 6) for t in batch)
        if self.mode == "always" or key not in self.seen:
            self.seen.add(key)
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.1 GiB "
                                              "total capacity)")
        return [t[1:2] / 255.0 for t in batch]

    def postprocess(self, raw: torch.Tensor, clip: Clip) -> DetectorResult:
        return self.result(applicable=True, score=float(raw[0]), evidence={"mean": float(raw[0])})


@dataclass
class LightResult:
    clip: Clip
    results: dict[str, DetectorResult]
    fused: FusedScore
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_message(self, *, video_uid: str, suite_version: str, source: Any = None,
                   extra_timings: dict[str, float] | None = None) -> ResultMessage:
        return ResultMessage(video_uid=video_uid, media_sha256=self.clip.media_sha256, suite_version=suite_version,
                             duration_s=self.clip.duration_s, fused=self.fused,
                             detectors={n: r.to_output() for n, r in self.results.items()},
                             timings_ms={**(extra_timings or {}), **self.timings_ms}, source=source)


class LightSuite:
    """``detectors.Suite``'s shape with the two light detectors; ``analyse_delay_s`` stretches each batch."""

    def __init__(self, *, analyse_delay_s: float = 0.0, fps: float = 5.0, max_side: int = 160,
                 max_duration_s: float | None = None, flaky: str | None = None) -> None:
        self.detectors: list[Detector[Any, Any]] = [Brightness(device="cpu"), Loudness(device="cpu")]
        if flaky:
            self.detectors.append(FlakyDevice(mode=flaky, device="cpu"))
        self.version = suite_version(self.detectors, "test")
        self.analyse_delay_s = analyse_delay_s
        self.fps, self.max_side, self.max_duration_s = fps, max_side, max_duration_s
        self.batches: list[int] = []

    def prepare(self, source: Any, *, media_sha256: str | None = None) -> tuple[Clip, dict[str, float]]:
        start = time.perf_counter()
        clip = decode_clip(source, fps=self.fps, max_side=self.max_side, max_duration_s=self.max_duration_s,
                           media_sha256=media_sha256)
        return clip, {"decode": round((time.perf_counter() - start) * 1000, 3)}

    def analyse(self, clips: list[Clip]) -> list[LightResult]:
        self.batches.append(len(clips))
        logger.info("light suite: analysing a batch of %d", len(clips))
        if self.analyse_delay_s:
            time.sleep(self.analyse_delay_s)
        per_detector = {}
        timings = {}
        for detector in self.detectors:
            start = time.perf_counter()
            per_detector[detector.name] = run_detector(detector, clips)
            timings[detector.name] = round((time.perf_counter() - start) * 1000 / max(1, len(clips)), 3)
        out = []
        for i, clip in enumerate(clips):
            results = {name: rs[i] for name, rs in per_detector.items()}
            scores = [r.score for r in results.values() if r.applicable and r.score is not None]
            score = float(np.mean(scores)) if scores else None
            verdict = "inconclusive" if score is None else ("suspicious" if score >= 0.5 else "no_signal")
            out.append(LightResult(clip, results, FusedScore(score=score, verdict=verdict,
                                                             reasons=[f"mean of {len(scores)} test detectors"]),
                                   dict(timings)))
        return out


def make_suite(settings: Settings) -> LightSuite:
    """Factory for ``VIGIL_WORKER_SUITE=support.worker:make_suite``; ``VIGIL_TEST_ANALYSE_DELAY_S`` slows batches."""
    return LightSuite(analyse_delay_s=float(os.environ.get("VIGIL_TEST_ANALYSE_DELAY_S", "0")),
                      max_duration_s=settings.max_duration_s)


# ---------------------------------------------------------------- processes

def spawn(command: str, settings: Settings, log: Path, **extra_env: str) -> subprocess.Popen[bytes]:
    """``python -m pipeline <command>`` with the settings in its environment; output to ``log``."""
    import sys

    env = settings_env(settings, inherit=True, **extra_env)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests"), env.get("PYTHONPATH", "")])
    out = open(log, "ab")
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "-v", command], cwd=ROOT, env=env, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)
    SPAWNED.append(proc)
    return proc


SPAWNED: list[subprocess.Popen[bytes]] = []


def reap() -> None:
    """Kill what a test spawned and left running (a failed assertion must not leave a worker behind)."""
    while SPAWNED:
        proc = SPAWNED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.fixture(autouse=True)
def no_process_left_behind() -> Iterator[None]:
    """Autouse in every test module that imports it: what a test spawned is reaped when it ends."""
    yield
    reap()


def stop(proc: subprocess.Popen[bytes], timeout: float = 60) -> int:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.returncode


# ---------------------------------------------------------------- reading back

def consume_all(settings: Settings, topic: str, *, expect: int, timeout_s: float = 60.0) -> list[Any]:
    """Read ``topic`` from the start (no group) until ``expect`` messages arrived or ``timeout_s`` passed."""
    from kafka import KafkaConsumer, TopicPartition

    from pipeline import kafka_config

    consumer = KafkaConsumer(**kafka_config(settings), enable_auto_commit=False, auto_offset_reset="earliest")
    try:
        deadline = time.monotonic() + timeout_s
        partitions = None
        while partitions is None and time.monotonic() < deadline:
            found = consumer.partitions_for_topic(topic)
            partitions = [TopicPartition(topic, p) for p in sorted(found)] if found else None
            if partitions is None:
                time.sleep(0.2)
        if not partitions:
            return []
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        out: list[Any] = []
        while len(out) < expect and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                out.extend(records)
        return out
    finally:
        consumer.close(autocommit=False)


def committed_total(settings: Settings, group: str, topic: str) -> int:
    """Sum of a group's committed offsets over the topic's partitions."""
    from kafka import KafkaConsumer, TopicPartition

    from pipeline import kafka_config

    consumer = KafkaConsumer(**kafka_config(settings), group_id=group, enable_auto_commit=False)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        return sum(consumer.committed(TopicPartition(topic, p)) or 0 for p in parts)
    finally:
        consumer.close(autocommit=False)


def durable_total(settings: Settings, topic: str) -> int:
    """Messages durably written to ``topic``: the sum of its partitions' high watermarks (the end offsets a
    read-uncommitted consumer sees: what every in-sync replica holds, so what acks=all waited for)."""
    from kafka import KafkaConsumer, TopicPartition

    from pipeline import kafka_config

    consumer = KafkaConsumer(**kafka_config(settings), enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        return sum(consumer.end_offsets(parts).values()) if parts else 0
    finally:
        consumer.close(autocommit=False)


def produce(settings: Settings, topic: str, items: list[tuple[bytes | None, bytes]]) -> None:
    from pipeline import make_producer

    producer = make_producer(settings)
    try:
        for key, value in items:
            producer.send(topic, key=key, value=value)
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=10)


def wait_for(predicate: Any, timeout_s: float, interval_s: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return bool(predicate())
