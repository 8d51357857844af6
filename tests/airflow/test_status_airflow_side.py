"""`vigil status` on the Airflow side says the detector checks do not apply here, without importing detectors."""
from __future__ import annotations

import sys

from pipeline._settings import Settings
from pipeline.cli import status_checks


def test_model_checks_are_not_in_this_environment(tmp_path) -> None:  # noqa: ANN001
    # nothing listens on these ports: the shared checks fail fast; the worker side's lines are what is looked at
    settings = Settings(face_forgery_checkpoint="org/name", es_url="https://127.0.0.1:1", kafka_bootstrap="127.0.0.1:1",
                        es_request_timeout_s=1, kafka_request_timeout_ms=1000, kafka_bootstrap_timeout_ms=1000,
                        media_store=str(tmp_path / "media"))
    checks = {c.name: c for c in status_checks(settings)}
    for name in ("torch device", "face mesh", "models"):
        assert checks[name].ok and checks[name].detail.startswith("not in this environment"), checks[name]
    assert not any(m.startswith("detectors.") and m != "detectors.configs" for m in sys.modules)  # only the configs
    assert "torch" not in sys.modules
