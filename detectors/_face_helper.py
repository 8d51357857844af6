"""dlib's face descriptor in a helper process of its own.

dlib's binding holds the GIL for the whole forward pass of its ResNet (65-140 ms a chip on one CPU core): run in one
of the suite's preparing threads, it stops every other thread of the process (the face mesh and the decode of the
next clip) until it returns. A thread that sends the chips to this helper waits on a pipe instead, without the GIL,
and the same model file gives the same numbers.

    FaceEmbedder.embed ── chips (pickle, stdin) ──▶ helper: compute_face_descriptor ── (n, 128) (pickle, stdout) ──┐
          ▲                                                                                                        │
          └────────────────────────────────────────────────────────────────────────────────────────────────────┘

The helper is started on first use with this interpreter and this copy of the package (``python -c``: unlike
``multiprocessing``'s spawn, nothing of the caller's main module runs again), serves one request at a time, writes its
own messages to stderr (the caller's log), and exits when its stdin closes: when the embedder closes it, at the
interpreter's exit, or when the caller dies. Only the caller's own pickles cross the pipes.
"""
from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import threading
import weakref
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DescriptorHelper", "HelperFailed", "descriptors", "serve"]

logger = logging.getLogger(__name__)

_PACKAGE_PARENT = str(Path(__file__).resolve().parents[1])
_SERVE = "import sys; from detectors._face_helper import serve; serve(sys.argv[1])"


class HelperFailed(RuntimeError):
    """The helper process could not be started, or died or broke the protocol during a request."""


def descriptors(resnet: Any, chips: list[np.ndarray]) -> np.ndarray:
    """(n, 128) float32 descriptors of aligned uint8 chips, in one call of dlib's ResNet."""
    found: Any = resnet.compute_face_descriptor(chips)
    return np.asarray([np.asarray(d) for d in found], dtype=np.float32).reshape(len(chips), -1)


def serve(resnet_file: str) -> None:
    """The helper's loop: a list of chips in, ``("ok", descriptors)`` or ``("error", message)`` out, until EOF."""
    import dlib

    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must not corrupt the replies
    resnet = dlib.face_recognition_model_v1(resnet_file)
    while True:
        try:
            chips = pickle.load(requests)
        except EOFError:
            return
        try:
            reply: tuple[str, Any] = ("ok", descriptors(resnet, chips))
        except Exception as exc:  # noqa: BLE001 - the caller gets dlib's error as it would in its own process
            reply = ("error", f"{type(exc).__name__}: {exc}")
        pickle.dump(reply, replies, protocol=pickle.HIGHEST_PROTOCOL)
        replies.flush()


def _stop(proc: subprocess.Popen[bytes], timeout_s: float = 5.0) -> None:
    if proc.stdin is not None and not proc.stdin.closed:
        try:
            proc.stdin.close()
        except OSError:
            pass
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout_s)
    if proc.stdout is not None:
        proc.stdout.close()


class DescriptorHelper:
    """One helper process for one model file; thread-safe (requests are served one at a time)."""

    def __init__(self, resnet_file: str | os.PathLike[str]) -> None:
        self.resnet_file = str(resnet_file)
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        """The running helper's process id; None before the first request or after a failure or ``close``."""
        return None if self._proc is None else self._proc.pid

    def descriptors(self, chips: list[np.ndarray]) -> np.ndarray:
        """(n, 128) descriptors from the helper. Raises ``HelperFailed`` when the helper cannot serve (the next call
        starts a new one) and ``RuntimeError`` with dlib's message when dlib refuses the chips."""
        with self._lock:
            proc = self._running()
            assert proc.stdin is not None and proc.stdout is not None
            try:
                pickle.dump(chips, proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
                proc.stdin.flush()
                status, value = pickle.load(proc.stdout)
            except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError) as exc:
                self._proc = None
                _stop(proc, timeout_s=1.0)
                raise HelperFailed(f"the face descriptor helper (pid {proc.pid}, exit {proc.returncode}) failed: "
                                   f"{type(exc).__name__}: {exc}") from exc
        if status != "ok":
            raise RuntimeError(value)
        return value

    def _running(self) -> subprocess.Popen[bytes]:
        if self._proc is not None:
            if self._proc.poll() is None:
                return self._proc
            logger.warning("the face descriptor helper (pid %d) had stopped (exit %s); starting another",
                           self._proc.pid, self._proc.returncode)
            _stop(self._proc)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [_PACKAGE_PARENT, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])}
        try:
            proc = subprocess.Popen([sys.executable, "-c", _SERVE, self.resnet_file], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, env=env)
        except OSError as exc:
            raise HelperFailed(f"the face descriptor helper cannot be started: {exc}") from exc
        weakref.finalize(self, _stop, proc)
        logger.debug("face descriptor helper started (pid %d)", proc.pid)
        self._proc = proc
        return proc

    def close(self) -> None:
        """Stop the helper, if one runs; a later request starts a new one."""
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is not None:
            _stop(proc)
