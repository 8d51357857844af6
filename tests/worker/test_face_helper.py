"""dlib's face descriptor in its helper process (detectors/_face_helper.py): the same numbers as in this process, the
GIL free while it runs, a dead or unstartable helper costs a warning and no descriptor, dlib's own refusal reaches
the caller, and the helper stops with its embedder."""
from __future__ import annotations

import logging
import os
import signal
import threading

import numpy as np
import pytest
from detector_media import prepared, talking  # noqa: F401  (session fixtures)

from detectors import Clip
from detectors._face_embed import HELPER_FAILURES_MAX, FaceEmbedder
from detectors._face_helper import DescriptorHelper, HelperFailed


@pytest.fixture(scope="module")
def chips(prepared: dict[str, Clip]) -> list[np.ndarray]:  # noqa: F811
    clip = prepared["sync"]
    found = FaceEmbedder(isolated=False).track_chips(clip, clip.speaker, limit=4)
    assert len(found) == 4
    return found


@pytest.fixture
def isolated() -> FaceEmbedder:
    embedder = FaceEmbedder()
    yield embedder
    embedder.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_helper_gives_the_numbers_this_process_gives(chips: list[np.ndarray], isolated: FaceEmbedder) -> None:
    here = FaceEmbedder(isolated=False).embed(chips)
    there = isolated.embed(chips)
    assert isolated.helper.pid is not None and isolated.helper.pid != os.getpid()
    assert there.dtype == np.float32 and there.shape == (4, 128)
    assert np.array_equal(here, there)
    assert np.array_equal(isolated.embed(chips[:1]), here[:1])  # the same helper serves the next request
    assert isolated.embed([]).shape == (0, 128)


def _spins_during(embed: FaceEmbedder, chips: list[np.ndarray]) -> int:
    """How far a pure-Python loop in another thread gets while ``embed`` runs."""
    count, running, started = [0], threading.Event(), threading.Event()

    def spin() -> None:
        started.set()
        while not running.is_set():
            pass
        while running.is_set():
            count[0] += 1

    thread = threading.Thread(target=spin)
    thread.start()
    started.wait()
    running.set()
    try:
        embed.embed(chips * 3)
    finally:
        spun = count[0]
        running.clear()
        thread.join()
    return spun


def test_another_thread_runs_while_the_helper_computes(chips: list[np.ndarray], isolated: FaceEmbedder) -> None:
    isolated.embed(chips[:1])  # started and loaded
    in_process = _spins_during(FaceEmbedder(isolated=False), chips)
    in_helper = _spins_during(isolated, chips)
    # dlib holds the GIL for its whole call: the other thread barely moves; waiting on the helper lets it run
    assert in_helper > 10 * max(in_process, 1000), (in_helper, in_process)


def test_a_helper_killed_between_requests_is_started_again(
        chips: list[np.ndarray], isolated: FaceEmbedder, caplog: pytest.LogCaptureFixture) -> None:
    expected = FaceEmbedder(isolated=False).embed(chips)
    assert np.array_equal(isolated.embed(chips), expected)
    first = isolated.helper.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    os.waitid(os.P_PID, first, os.WEXITED | os.WNOWAIT)  # dead (not reaped: the helper's Popen reads its status)
    with caplog.at_level(logging.WARNING, logger="detectors._face_helper"):
        assert np.array_equal(isolated.embed(chips), expected)
    assert f"helper (pid {first}) had stopped (exit -9); starting another" in caplog.text
    assert isolated.isolated and isolated.helper.pid not in (None, first)


class _ExitWhenLoaded:
    """A request the helper dies reading: its unpickling ends the process."""

    def __reduce__(self) -> tuple[object, tuple[int]]:
        return os._exit, (3,)


def test_a_helper_dying_mid_request_fails_that_request_and_the_next_starts_another(chips: list[np.ndarray]) -> None:
    helper = DescriptorHelper(FaceEmbedder(isolated=False).helper.resnet_file)
    try:
        assert helper.descriptors(chips[:1]).shape == (1, 128)
        first = helper.pid
        with pytest.raises(HelperFailed, match=rf"helper \(pid {first}, exit 3\) failed: EOFError"):
            helper.descriptors([_ExitWhenLoaded()])  # type: ignore[list-item]
        assert helper.pid is None
        assert helper.descriptors(chips[:1]).shape == (1, 128) and helper.pid not in (None, first)
    finally:
        helper.close()


def test_a_helper_that_cannot_load_its_model_leaves_the_embedder_in_this_process(
        chips: list[np.ndarray], tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    embedder = FaceEmbedder()
    expected = FaceEmbedder(isolated=False).embed(chips[:1])
    broken = tmp_path / "resnet.dat"
    broken.write_bytes(b"not a dlib model")
    embedder.helper = DescriptorHelper(broken)
    with caplog.at_level(logging.WARNING, logger="detectors._face_embed"):
        for _ in range(HELPER_FAILURES_MAX):
            assert np.array_equal(embedder.embed(chips[:1]), expected)
    assert not embedder.isolated
    assert f"from now on ({HELPER_FAILURES_MAX} failures in a row)" in caplog.text
    assert embedder.helper.pid is None
    assert np.array_equal(embedder.embed(chips[:1]), expected)  # no helper is started again
    assert embedder.helper.pid is None


def test_dlibs_refusal_reaches_the_caller_and_the_helper_serves_on(chips: list[np.ndarray]) -> None:
    helper = DescriptorHelper(FaceEmbedder(isolated=False).helper.resnet_file)
    try:
        with pytest.raises(RuntimeError) as refused:
            helper.descriptors([np.zeros((10, 10), dtype=np.uint8)])  # not an RGB chip
        assert not isinstance(refused.value, HelperFailed)
        pid = helper.pid
        assert helper.descriptors(chips[:1]).shape == (1, 128) and helper.pid == pid
    finally:
        helper.close()


def test_close_stops_the_helper(chips: list[np.ndarray]) -> None:
    embedder = FaceEmbedder()
    embedder.embed(chips[:1])
    pid = embedder.helper.pid
    assert pid is not None and _alive(pid)
    embedder.close()
    assert embedder.helper.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # stopped and reaped
