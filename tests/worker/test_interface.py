"""The detector interface: batching across clips, devices, NotApplicable, and per-clip failures."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from detectors import Clip, Detector, DetectorResult, NotApplicable, Window, create, register, registered, \
    suite_version


def make_clip(name: str, brightness: int, n_frames: int = 4) -> Clip:
    frames = np.full((n_frames, 8, 8, 3), brightness, dtype=np.uint8)
    return Clip(source=name, duration_s=n_frames / 2, fps=2.0, frames=frames,
                timestamps=np.arange(n_frames) / 2.0, audio=np.zeros(8000, dtype=np.float32))


@register
class MeanBrightness(Detector[torch.Tensor, torch.Tensor]):
    """A real (if simple) detector: the mean brightness of the frames, to exercise the machinery."""

    name = "test_mean_brightness"
    version = "1"
    forward_batches: list[int] = []

    def preprocess(self, clip: Clip) -> torch.Tensor | NotApplicable:
        if len(clip.frames) == 0:
            return NotApplicable("no frames")
        if clip.source == "broken":
            raise ValueError("cannot read this one")
        return torch.from_numpy(clip.frames).float()

    def _forward(self, batch: list[torch.Tensor]) -> list[torch.Tensor]:
        type(self).forward_batches.append(len(batch))
        assert all(t.device == self.device for t in batch)
        return [t.mean() / 255.0 for t in batch]

    def postprocess(self, raw: torch.Tensor, clip: Clip) -> DetectorResult:
        assert raw.device.type == "cpu"
        score = float(raw)
        return self.result(applicable=True, score=score, timeline=[Window(0.0, clip.duration_s, score)],
                           evidence={"mean": np.float32(score), "per_frame": np.full(2, score)})


def test_registry_finds_and_creates_by_name() -> None:
    assert registered()["test_mean_brightness"] is MeanBrightness
    detector = create("test_mean_brightness", device="cpu", batch_size=2)
    assert detector.device == torch.device("cpu") and detector.batch_size == 2
    with pytest.raises(KeyError, match="no detector named 'nope'"):
        create("nope")


def test_batches_across_clips_and_keeps_order() -> None:
    MeanBrightness.forward_batches.clear()
    detector = MeanBrightness(device="cpu", batch_size=2)
    clips = [make_clip(f"c{i}", 51 * i) for i in range(5)]
    results = detector(clips)
    assert MeanBrightness.forward_batches == [2, 2, 1]
    assert [round(r.score, 3) for r in results] == [0.0, 0.2, 0.4, 0.6, 0.8]
    assert [r.flagged for r in results] == [False, False, False, True, True]


def test_not_applicable_and_failures_stay_with_their_clip() -> None:
    detector = MeanBrightness(device="cpu")
    empty = make_clip("empty", 0, n_frames=0)
    results = detector([empty, make_clip("broken", 10), make_clip("fine", 255)])
    assert results[0].applicable is False and results[0].score is None
    assert results[0].evidence["reason"] == "no frames"
    assert results[1].applicable is False and "cannot read this one" in results[1].error
    assert results[2].score == pytest.approx(1.0)


def test_results_convert_to_the_wire_shape() -> None:
    result = MeanBrightness(device="cpu")(make_clip("c", 128))
    output = result.to_output()
    assert output.evidence == {"mean": pytest.approx(128 / 255), "per_frame": [pytest.approx(128 / 255)] * 2}
    assert output.timeline[0].end_s == 2.0


def test_a_result_cannot_fake_a_score() -> None:
    with pytest.raises(ValueError, match="carries no score"):
        DetectorResult(name="x", version="1", applicable=False, score=0.0)
    with pytest.raises(ValueError, match="needs a score"):
        DetectorResult(name="x", version="1", applicable=True, score=1.5)


def test_suite_version_follows_detector_versions_and_calibration() -> None:
    a = suite_version([MeanBrightness(device="cpu")])
    assert a == suite_version([MeanBrightness(device="cpu")])
    assert a != suite_version([MeanBrightness(device="cpu")], calibration_version="cal-2")


def test_to_device_moves_tensors_inside_a_detectors_dataclass_inputs() -> None:
    """Prepared inputs are often dataclasses (lipsync's): their tensors go to the device with the rest."""
    from dataclasses import dataclass

    import numpy as np
    import torch

    from detectors._base import to_device

    @dataclass
    class Inputs:
        signal: torch.Tensor
        times: np.ndarray
        nested: dict

    original = Inputs(torch.ones(3), np.arange(3.0), {"mask": torch.zeros(2)})
    moved = to_device(original, torch.device("meta"))
    assert moved.signal.device.type == "meta" and moved.nested["mask"].device.type == "meta"
    assert moved.times is original.times and original.signal.device.type == "cpu"
    same = to_device(original, torch.device("cpu"))  # already there: the tensors are not copied
    assert same.signal is original.signal and same.nested["mask"] is original.nested["mask"]
