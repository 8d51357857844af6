"""spectral: upsampled (generator-like) frames against camera-like ones, crops, evidence, model file errors."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from detector_media import prepared, talking  # noqa: F401  (session fixtures)
from detectors import Clip, ModelError, Spectral, registered
from detectors.spectral import MODEL_FILE, N_BINS, SpectralModel, crop_side, fit_model, spectral_features
from detectors.synthetic import spectral_images


def _clips(images: np.ndarray) -> list[Clip]:
    return [Clip(source=f"img{i}", duration_s=0.2, fps=5.0, frames=images[i:i + 1], timestamps=np.zeros(1),
                 audio=None) for i in range(len(images))]


@pytest.fixture(scope="module")
def detector() -> Spectral:
    return Spectral(device="cpu")


def test_separates_upsampled_from_camera_like_frames(detector: Spectral) -> None:
    # the model file was fitted on seed 0; these are new crops, noise and kernels
    images, labels = spectral_images(30, seed=123)
    results = detector(_clips(images))
    scores = np.array([r.score for r in results])
    assert registered()["spectral"] is Spectral
    assert roc_auc_score(labels, scores) >= 0.95
    assert np.mean(scores[labels == 1] >= 0.5) >= 0.8  # upsampled flagged
    assert np.mean(scores[labels == 0] >= 0.5) <= 0.1  # camera-like not
    assert all(r.evidence["crop_source"] == "frame" for r in results)


def test_a_transposed_convolution_shows_a_nyquist_peak() -> None:
    images, labels = spectral_images(8, seed=5)
    grey = torch.from_numpy(images.astype(np.float32).mean(axis=-1))
    spectrum, peak = spectral_features(grey)
    assert spectrum.shape == (16, N_BINS)
    transposed = labels.astype(bool) & (np.arange(16) // 2 % 2 == 0)  # even pairs use ConvTranspose2d
    assert peak.numpy()[transposed].min() > peak.numpy()[labels == 0].max()


def test_talking_head_video_uses_face_crops_and_is_not_flagged(detector: Spectral,
                                                               prepared: dict[str, Clip]) -> None:
    face = detector(prepared["sync"])
    assert face.applicable and not face.flagged
    assert face.evidence["crop_source"] == "face" and face.evidence["n_crops"] == 12
    assert len(face.evidence["spectrum_db"]) == len(face.evidence["reference_low_db"]) == N_BINS
    assert len(face.timeline) == 12 and all(0 <= w.score <= 1 for w in face.timeline)
    frame = detector(prepared["no_face"])
    assert frame.applicable and frame.evidence["crop_source"] == "frame"


def test_tiny_frames_are_not_applicable(detector: Spectral) -> None:
    tiny = Clip(source="tiny", duration_s=1.0, fps=5.0, frames=np.zeros((3, 32, 40, 3), np.uint8),
                timestamps=np.arange(3) / 5, audio=None)
    result = detector(tiny)
    assert not result.applicable and "too small" in result.evidence["reason"]
    assert crop_side(47) == 0 and crop_side(100) == 96 and crop_side(999) == 256


def test_fit_writes_a_loadable_model(tmp_path: Path) -> None:
    data = fit_model(12, seed=3, version="test-1")
    path = tmp_path / "model.json"
    path.write_text(json.dumps(data))
    model = SpectralModel.load(path)
    assert model.version == "test-1" and model.weights.shape == (N_BINS + 1,)
    assert Spectral(device="cpu", model_file=path).version.endswith("+test-1")


@pytest.mark.parametrize(("content", "message"), [
    (None, "cannot be read"),
    ("{not json", "cannot be read"),
    ('{"version": "x"}', "cannot be read"),
    ("WRONG_SHAPE", "wrong shape"),
])
def test_model_file_errors(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "model.json"
    if content == "WRONG_SHAPE":
        data = json.loads(MODEL_FILE.read_text())
        data["weights"] = data["weights"][:-1]
        content = json.dumps(data)
    if content is not None:
        path.write_text(content)
    with pytest.raises(ModelError, match=message):
        Spectral(device="cpu", model_file=path)
