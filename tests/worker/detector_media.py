"""Generated clips for the detector-suite tests, made once per test session (files cached under the session's
base temporary directory, decoded clips cached in memory).

Import the fixtures into a test module: ``from detector_media import talking, prepared  # noqa: F401``.
"""
from __future__ import annotations

import copy
from pathlib import Path

import pytest

from detectors import Clip, FaceTracker, LipSync, decode_clip
from detectors.synthetic import SENTENCES, TalkingClip, make_talking_clip

#: (kind, offset_ms, sentence index): everything the lip-sync and suite tests need
SPECS: dict[str, tuple[str, float, int]] = {
    "sync": ("talking", 0.0, 0),
    "sync_b": ("talking", 0.0, 1),
    "lead_80": ("talking", 80.0, 1),
    "lag_80": ("talking", -80.0, 2),
    "late_200": ("talking", 200.0, 0),
    "early_200": ("talking", -200.0, 1),
    "late_400": ("talking", 400.0, 2),
    "early_400": ("talking", -400.0, 0),
    "still_face": ("still_face", 0.0, 0),
    "silent": ("silent", 0.0, 1),
    "no_face": ("no_face", 0.0, 2),
    "mismatched": ("mismatched", 0.0, 0),
}
_CLIPS: dict[str, Clip] = {}


def media_dir(factory: pytest.TempPathFactory) -> Path:
    directory = factory.getbasetemp() / "synthetic-media"
    directory.mkdir(exist_ok=True)
    return directory


def generated(factory: pytest.TempPathFactory, name: str) -> TalkingClip:
    kind, offset, sentence = SPECS[name]
    path = media_dir(factory) / f"{name}.mp4"
    if path.exists():
        return TalkingClip(path=path, kind=kind, offset_ms=offset if kind == "talking" else 0.0,
                           text=SENTENCES[sentence], duration_s=0.0)
    return make_talking_clip(path, SENTENCES[sentence], offset_ms=offset, kind=kind, seed=sentence)


@pytest.fixture(scope="session")
def talking(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TalkingClip]:
    """Every generated clip of SPECS, by name."""
    return {name: generated(tmp_path_factory, name) for name in SPECS}


@pytest.fixture(scope="session")
def prepared(talking: dict[str, TalkingClip]) -> dict[str, Clip]:
    """The clips decoded at 5 fps with face tracks and probed as ``Suite.prepare`` does (lipsync reads the mouth
    from the file at its own rate); tests get their own copies."""
    tracker, lipsync = FaceTracker(), LipSync(device="cpu")
    for name, made in talking.items():
        if name not in _CLIPS:
            clip = tracker(decode_clip(made.path, fps=5.0))
            lipsync.probe(clip, str(made.path))
            _CLIPS[name] = clip
    return {name: copy.deepcopy(clip) for name, clip in _CLIPS.items()}
