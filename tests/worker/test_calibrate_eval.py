"""vigil eval and vigil calibrate: datasets, metrics, the report shape, calibration fitted and applied."""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from detectors import DetectorResult
from detectors._evaluate import Item, ItemResult, fit_calibration, load_dataset, metrics, read_items_csv, rescore, \
    write_calibration, write_report
from pipeline import ConfigError


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0")
    return path


def test_dataset_folder_and_csv_layouts(tmp_path: Path) -> None:
    root = tmp_path / "set"
    touch(root / "real" / "a.mp4")
    touch(root / "fake" / "Deepfakes" / "b.mp4")
    touch(root / "fake" / "notes.txt")
    touch(tmp_path / "corpus" / "c23" / "c.MP4")
    (root / "fake" / "FaceSwap").symlink_to(tmp_path / "corpus")  # links into a corpus are followed
    items = load_dataset(root)
    assert [(i.path.name, i.label, i.group) for i in items] == [
        ("a.mp4", 0, ""), ("b.mp4", 1, "Deepfakes"), ("c.MP4", 1, "FaceSwap/c23")]

    listing = tmp_path / "list.csv"
    listing.write_text("path,label,group\nset/real/a.mp4,bonafide,\nset/fake/Deepfakes/b.mp4,spoof,A07\n"
                       f"{root / 'real' / 'a.mp4'},0\n")
    items = load_dataset(listing)
    assert [(i.path, i.label, i.group) for i in items] == [
        (tmp_path / "set/real/a.mp4", 0, ""), (tmp_path / "set/fake/Deepfakes/b.mp4", 1, "A07"),
        (root / "real" / "a.mp4", 0, "")]
    (tmp_path / "bad.csv").write_text("x.mp4,maybe\n")
    with pytest.raises(ConfigError, match="neither real nor fake"):
        load_dataset(tmp_path / "bad.csv")
    (tmp_path / "half").mkdir()
    with pytest.raises(ConfigError, match="real/ and fake/"):
        load_dataset(tmp_path / "half")


def generated_results(n: int = 60, seed: int = 0) -> list[ItemResult]:
    """Items whose face_forgery raw score ranks the labels but sits in a narrow band around 0.5 (uncalibrated),
    and whose voice_synthetic score is low noise; nonverbal applies to two fakes only."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        label = i % 2
        face = rng.uniform(0.48, 0.62) if label else rng.uniform(0.38, 0.52)
        results = {
            "face_forgery": DetectorResult("face_forgery", "1", True, float(face)),
            "voice_synthetic": DetectorResult("voice_synthetic", "1", True, float(rng.uniform(0.05, 0.3))),
            "nonverbal": (DetectorResult("nonverbal", "1", True, 0.9) if i in (1, 3)
                          else DetectorResult("nonverbal", "1", False)),
        }
        out.append(ItemResult(item=Item(Path(f"v{i}.mp4"), label), results=results))
    return out


def log_loss(results: list[ItemResult]) -> float:
    y = np.array([r.item.label for r in results])
    p = np.clip(np.array([r.fused_score or 0.0 for r in results]), 1e-6, 1 - 1e-6)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def test_calibration_moves_fused_scores_the_expected_way(tmp_path: Path) -> None:
    from detectors._fusion import Fusion, load_calibration

    base = load_calibration()
    raw = generated_results()
    before = rescore(raw, Fusion(base))
    calibration = fit_calibration(raw, ["face_forgery", "voice_synthetic", "nonverbal"], base=base, source="gen")
    after = rescore(raw, Fusion(calibration))

    def mean(results: list[ItemResult], label: int) -> float:
        return float(np.mean([r.fused_score for r in results if r.item.label == label]))

    assert mean(after, 1) > mean(before, 1) + 0.05  # fakes pushed up
    assert mean(after, 0) < mean(before, 0) - 0.05  # reals pushed down
    assert log_loss(after) < log_loss(before)
    accuracy = [metrics(r, ["face_forgery"])["fused"]["accuracy"] for r in (before, after)]
    assert accuracy[1] > accuracy[0]
    face, voice = calibration.detectors["face_forgery"], calibration.detectors["voice_synthetic"]
    assert face.platt is not None and face.platt.a > 1.0  # the narrow band is stretched
    assert voice.weight < face.weight  # noise earns less trust
    # nonverbal applied to two items only: kept as it was
    assert calibration.detectors["nonverbal"] == base.for_detector("nonverbal")
    # the file fusion reads: versioned, round-trips through the loader, verdict thresholds kept
    path = write_calibration(calibration, tmp_path / "cal.json")
    loaded = load_calibration(path)
    assert loaded == calibration and loaded.verdicts == base.verdicts
    assert re.fullmatch(r"cal-\d{8}-[0-9a-f]{8}", loaded.version) and loaded.version != base.version
    assert "60 items (30 fake, 30 real)" in loaded.description


def test_calibration_needs_both_labels() -> None:
    only_real = [r for r in generated_results() if r.item.label == 0]
    with pytest.raises(ConfigError, match="both labels"):
        fit_calibration(only_real, ["face_forgery"])


def test_report_shape_roc_and_items(tmp_path: Path) -> None:
    results = rescore(generated_results(20), __import__("detectors._fusion", fromlist=["Fusion"]).Fusion())
    results.append(ItemResult(item=Item(Path("broken.mp4"), 1), error="CorruptMedia: broken.mp4: truncated"))
    names = ["face_forgery", "voice_synthetic", "nonverbal"]
    report = write_report(results, tmp_path / "out", names=names)
    on_disk = json.loads((tmp_path / "out" / "report.json").read_text())
    assert on_disk == report
    assert set(report) == {"n", "detectors", "fused"} and report["n"] == 20
    assert set(report["detectors"]) == set(names)
    for row in report["detectors"].values():
        assert set(row) == {"auc", "eer", "n_applicable"}
    assert report["detectors"]["nonverbal"] == {"auc": None, "eer": None, "n_applicable": 2}
    assert report["detectors"]["face_forgery"]["auc"] > 0.9 and report["detectors"]["face_forgery"]["eer"] < 0.2
    assert set(report["fused"]) == {"auc", "eer", "accuracy"}
    assert (tmp_path / "out" / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with (tmp_path / "out" / "items.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 21 and rows[-1]["error"].startswith("CorruptMedia")
    assert {"face_forgery_score", "face_forgery_raw", "face_forgery_applicable"} <= set(rows[0])
    # items.csv is enough to calibrate again without running models
    again, again_names = read_items_csv(tmp_path / "out" / "items.csv")
    assert again_names == names and len(again) == 21
    assert again[0].raw("face_forgery") == pytest.approx(results[0].raw("face_forgery"), abs=1e-6)


def test_eer_and_auc_of_a_known_ranking() -> None:
    scores = [0.1, 0.2, 0.3, 0.4, 0.6, 0.35, 0.8, 0.9]
    results = [ItemResult(item=Item(Path(f"{i}"), int(i >= 4)), fused_score=s, verdict="x",
                          results={"d": DetectorResult("d", "1", True, s)}) for i, s in enumerate(scores)]
    report = metrics(results, ["d"])
    assert report["detectors"]["d"]["auc"] == pytest.approx(15 / 16)
    assert report["detectors"]["d"]["eer"] == pytest.approx(0.25)
    assert report["fused"]["accuracy"] == pytest.approx(7 / 8)


# -- end to end through the command line, on generated videos ----------------------------------------------------

@pytest.mark.slow
def test_vigil_eval_and_calibrate_on_generated_videos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from detectors._fusion import Fusion, load_calibration
    from detectors.synthetic import SENTENCES, make_talking_clip
    from model_support import tiny_vit
    from pipeline._settings import get_settings
    from pipeline.cli import app

    root = tmp_path / "set"
    for i, text in enumerate(SENTENCES[:3]):
        (root / "real").mkdir(parents=True, exist_ok=True)
        (root / "fake" / "offset").mkdir(parents=True, exist_ok=True)
        make_talking_clip(root / "real" / f"r{i}.mp4", text, seed=i)
        make_talking_clip(root / "fake" / "offset" / f"f{i}.mp4", text, offset_ms=400 + 100 * i, seed=10 + i)
    touch(root / "fake" / "broken.mp4").write_bytes(b"not a video at all")
    monkeypatch.setenv("VIGIL_DEVICE", "cpu")
    monkeypatch.setenv("VIGIL_FACE_FORGERY_CHECKPOINT", str(tiny_vit(tmp_path / "vit")))
    monkeypatch.setenv("VIGIL_FACE_FORGERY_MAX_CROPS", "4")
    get_settings.cache_clear()
    runner = CliRunner()

    out = tmp_path / "out"
    run = runner.invoke(app, ["eval", str(root), "--out", str(out), "--detectors", "lipsync,face_forgery"])
    assert run.exit_code == 0, run.output
    report = json.loads((out / "report.json").read_text())
    assert report["n"] == 6 and set(report["detectors"]) == {"lipsync", "face_forgery"}
    assert report["detectors"]["face_forgery"]["n_applicable"] == 6
    assert set(report["fused"]) == {"auc", "eer", "accuracy"}
    assert (out / "roc.png").stat().st_size > 1000
    rows = list(csv.DictReader((out / "items.csv").open()))
    assert len(rows) == 7 and [r["error"] != "" for r in rows].count(True) == 1

    cal = tmp_path / "cal.json"
    run = runner.invoke(app, ["calibrate", str(out / "items.csv"), "--out", str(cal)])
    assert run.exit_code == 0, run.output
    calibration = load_calibration(cal)
    assert calibration.version.startswith("cal-") and "6 items (3 fake, 3 real)" in calibration.description
    results, _ = read_items_csv(out / "items.csv")
    before = rescore(results, Fusion(load_calibration()))
    after = rescore(results, Fusion(calibration))
    scored = lambda rs: [r for r in rs if r.error is None]  # noqa: E731
    assert log_loss(scored(after)) < log_loss(scored(before))
    get_settings.cache_clear()
