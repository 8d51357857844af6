"""`vigil status` on the Airflow side says the detector checks do not apply here, without importing detectors."""
from __future__ import annotations

import sys

from pipeline._settings import Settings
from pipeline._setup import _check_device, _check_face_mesh, _check_models


def test_model_checks_are_not_in_this_environment() -> None:
    settings = Settings(face_forgery_checkpoint="org/name")
    checks = [_check_device(settings), _check_face_mesh(), *_check_models(settings)]
    assert all(c.ok and c.detail.startswith("not in this environment") for c in checks), checks
    assert not any(m == "detectors" or m.startswith("detectors.") for m in sys.modules)
