"""`vigil status` on the worker side: the torch device, face mesh and each model detector's checkpoint."""
from __future__ import annotations

from pathlib import Path

from pipeline._settings import Settings
from pipeline.worker.status import device_check, face_mesh_check, model_checks

from support.checkpoint_twins import twins


def test_status_reports_device_face_mesh_and_models(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    face = twins()["dima806/deepfake_vs_real_image_detection"].build(tmp_path / "face")
    settings = Settings(device="cpu", face_forgery_checkpoint=str(face),
                        voice_synthetic_checkpoint="MattyB95/AST-ASVspoof2019-Synthetic-Voice-Detection")
    device = device_check(settings)
    assert device.ok and device.detail.startswith(("cpu", "cuda:"))
    assert face_mesh_check().ok and "face mesh available" in face_mesh_check().detail
    checks = {c.name: c for c in model_checks(settings)}
    assert checks["model face_forgery"].ok and "local:sha256-" in checks["model face_forgery"].detail
    assert "reads Fake" in checks["model face_forgery"].detail
    voice = checks["model voice_synthetic"]
    assert voice.ok and "not on this machine yet" in voice.detail and "vigil models pull" in voice.hint
    assert checks["model nonverbal"].detail.startswith("not configured")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # offline, a missing checkpoint is a failure: the worker cannot start
    assert not {c.name: c for c in model_checks(settings)}["model voice_synthetic"].ok
    wrong = device_check(Settings(device="cuda"))
    assert wrong.ok or "CUDA" in wrong.detail  # ok on a GPU machine, a failure with a hint on a CPU-only one
