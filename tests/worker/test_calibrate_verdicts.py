"""`vigil calibrate --from-verdicts`: analysts' verdicts in vigil-verdicts, joined with the detection documents they
were made on, fit the same calibration a labelled dataset does (real Elasticsearch, the real CLI)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.console import ROOT, env_for

from pipeline import Settings, make_es_client, run_setup
from pipeline.console import verdict_document
from pipeline.sink import detection_id

pytestmark = [pytest.mark.elasticsearch]


def _calibrate(settings: Settings, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipeline", "calibrate", "--from-verdicts", "--out", str(out)],
                          cwd=ROOT, env=env_for(settings, COLUMNS="200"), capture_output=True, text=True, timeout=300)


def test_calibration_is_fitted_from_verdicts(stack_settings: Settings, tmp_path: Path) -> None:
    settings = stack_settings
    run_setup(settings)
    es = make_es_client(settings)
    suite = "suite-test-1"
    for i in range(12):
        manipulated = i % 2 == 0
        sha = f"{i:064x}"
        raw = 0.55 + 0.04 * i if manipulated else 0.05 + 0.03 * i  # raw scores that rank the labels
        det_id = detection_id(sha, suite)
        detection = {"video_uid": f"file:{i}", "media_sha256": sha, "suite_version": suite,
                     "fused": {"score": raw, "verdict": "suspicious"},
                     "detectors": {"lipsync": {"version": "1", "applicable": True, "score": raw,
                                               "evidence": {"raw_score": raw}},
                                   "spectral": {"version": "1", "applicable": False}}}
        es.index(index=settings.index("detections"), id=det_id, document=detection)
        video = {"video_uid": f"file:{i}", "detection_id": det_id, "suite_version": suite, "media": {"sha256": sha}}
        # a first, overruled verdict on each file: only the newest counts
        es.index(index=settings.index("verdicts"), document=verdict_document(
            video, detection, verdict="cannot_tell" if manipulated else "manipulated", note="first look",
            analyst="ana"))
        es.index(index=settings.index("verdicts"), document=verdict_document(
            video, detection, verdict="manipulated" if manipulated else "authentic", note="", analyst="ana"))
    es.indices.refresh(index=[settings.index("verdicts"), settings.index("detections")])
    out = tmp_path / "calibration.json"
    done = _calibrate(settings, out)
    assert done.returncode == 0, done.stdout + done.stderr
    calibration = json.loads(out.read_text())
    text = json.dumps(calibration)
    assert "lipsync" in text and settings.index("verdicts") in text  # fitted, and says from what
    assert "wrote" in done.stdout


def test_without_verdicts_it_says_so(stack_settings: Settings, tmp_path: Path) -> None:
    run_setup(stack_settings)
    done = _calibrate(stack_settings, tmp_path / "c.json")
    assert done.returncode == 2 and "calibration needs at least" in done.stderr, done.stdout + done.stderr
    assert not (tmp_path / "c.json").exists()
