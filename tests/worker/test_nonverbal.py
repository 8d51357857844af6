"""nonverbal: a cough the face does not move with is flagged; one it moves with passes.

The audio classifier is a tiny AST trained in the fixture (a few seconds on a CPU) to tell 1 s windows with a
synthesised cough from espeak speech and silence, so event detection is real, not hard-coded.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detectors import AUDIO_RATE, ModelError, NonVerbal, NonverbalConfig
from detectors._models import clear_model_cache

from model_support import cough, place, speech_track, talking_clip, trained_cough_ast, tiny_ast

COUGH_AT_S = 2.6
# the fixture trains a model for a few seconds
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ast_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_cough_ast(tmp_path_factory.mktemp("ast"), steps=160)


@pytest.fixture
def detector(ast_dir: Path) -> NonVerbal:
    clear_model_cache()
    return NonVerbal(NonverbalConfig(checkpoint=str(ast_dir), event_threshold=0.5), device="cpu")


def speech_then_cough(duration_s: float = 5.0) -> np.ndarray:
    """Speech from 0.3 s to about 2.2 s, then a cough at COUGH_AT_S."""
    track = speech_track(duration_s, text="We will win this election")
    place(track, cough(np.random.default_rng(7)), COUGH_AT_S)
    return track


def test_a_cough_without_motion_is_flagged_and_one_with_motion_passes(detector: NonVerbal) -> None:
    audio = speech_then_cough()
    still = talking_clip("still", audio=audio)
    moving = talking_clip("moving", audio=audio.copy(), motion_at_s=(COUGH_AT_S, COUGH_AT_S + 0.4))
    talking = talking_clip("speech only", audio=speech_track(5.0, text="We will win this election"))
    no_face = talking_clip("no face", audio=audio.copy(), face=False)
    flagged, passed, quiet, faceless = detector([still, moving, talking, no_face])

    assert flagged.applicable and flagged.score >= 0.5 and flagged.flagged
    events = flagged.evidence["events"]
    assert [e["label"] for e in events] == ["Cough"]
    assert events[0]["start_s"] <= COUGH_AT_S + 0.2 <= events[0]["end_s"] and events[0]["matched"] is False
    assert "cough at" in flagged.evidence["top_reason"]
    assert flagged.timeline and flagged.timeline[0].score >= 0.5

    assert passed.applicable and passed.score < 0.5 and not passed.flagged
    assert passed.evidence["events"][0]["matched"] is True and passed.evidence["n_unmatched"] == 0

    assert not quiet.applicable and quiet.evidence["reason"] == "no non-verbal event"
    assert not faceless.applicable and faceless.evidence["reason"] == "no face"


def test_silence_and_missing_audio_are_not_applicable(detector: NonVerbal) -> None:
    silent = talking_clip("silent")
    no_audio = talking_clip("no audio")
    no_audio.audio = None
    results = detector([silent, no_audio])
    assert [r.evidence["reason"] for r in results] == ["silent audio", "no audio"]


def test_windows_of_two_clips_share_model_calls(detector: NonVerbal) -> None:
    clips = [talking_clip(f"c{i}", audio=speech_then_cough()) for i in range(2)]
    model = detector.loaded.model
    sizes: list[int] = []
    original = model.forward

    def spy(**inputs):  # noqa: ANN003, ANN202
        sizes.append(int(inputs["input_values"].shape[0]))
        return original(**inputs)

    model.forward = spy  # type: ignore[method-assign]
    try:
        detector(clips)
    finally:
        model.forward = original  # type: ignore[method-assign]
    # the audible 1 s windows of both clips (every 0.5 s, near-silent ones skipped) in one call
    assert len(sizes) == 1 and sizes[0] % 2 == 0 and 2 * 6 <= sizes[0] <= 2 * 9


def test_event_labels_missing_from_the_checkpoint_name_the_setting(tmp_path: Path) -> None:
    model, extractor = tiny_ast(tmp_path, id2label={0: "Speech", 1: "Music"})
    model.save_pretrained(tmp_path)
    extractor.save_pretrained(tmp_path)
    clear_model_cache()
    with pytest.raises(ModelError, match="VIGIL_NONVERBAL_EVENT_LABELS"):
        NonVerbal(NonverbalConfig(checkpoint=str(tmp_path)), device="cpu")
    assert AUDIO_RATE == 16_000
