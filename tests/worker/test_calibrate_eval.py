"""vigil eval and vigil calibrate: datasets, metrics, the report shape, calibration fitted and applied."""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from detectors import DetectorResult
from detectors._evaluate import UNGROUPED, Item, ItemResult, bootstrap_ci, fit_calibration, load_dataset, metrics, \
    rate_ci, read_items_csv, rescore, tpr_at_fpr, write_calibration, write_report
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


ADDED_REPORT_KEYS = {"n_real", "n_fake", "groups"}
ADDED_DETECTOR_KEYS = {"tpr_at_1pct_fpr", "auc_ci"}
ADDED_FUSED_KEYS = {"tpr_at_1pct_fpr", "auc_ci", "false_flag_rate", "false_flag_rate_ci", "flag_rate",
                    "flag_rate_ci"}


def test_report_shape_roc_and_items(tmp_path: Path) -> None:
    results = rescore(generated_results(20), __import__("detectors._fusion", fromlist=["Fusion"]).Fusion())
    results.append(ItemResult(item=Item(Path("broken.mp4"), 1), error="CorruptMedia: broken.mp4: truncated"))
    names = ["face_forgery", "voice_synthetic", "nonverbal"]
    report = write_report(results, tmp_path / "out", names=names)
    on_disk = json.loads((tmp_path / "out" / "report.json").read_text())
    assert on_disk == report
    # the contract keys stay; the added ones are listed exactly too
    assert set(report) == {"n", "detectors", "fused"} | ADDED_REPORT_KEYS and report["n"] == 20
    assert report["n_real"] == 10 and report["n_fake"] == 10 and report["groups"] == {}  # no item has a group
    assert set(report["detectors"]) == set(names)
    for row in report["detectors"].values():
        assert set(row) == {"auc", "eer", "n_applicable"} | ADDED_DETECTOR_KEYS
    assert report["detectors"]["nonverbal"] == {"auc": None, "eer": None, "n_applicable": 2,
                                                "tpr_at_1pct_fpr": None, "auc_ci": None}
    assert report["detectors"]["face_forgery"]["auc"] > 0.9 and report["detectors"]["face_forgery"]["eer"] < 0.2
    face = report["detectors"]["face_forgery"]
    assert face["auc_ci"][0] <= face["auc"] <= face["auc_ci"][1] <= 1.0
    assert 0.0 <= face["tpr_at_1pct_fpr"] <= 1.0
    assert set(report["fused"]) == {"auc", "eer", "accuracy"} | ADDED_FUSED_KEYS
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
    # 4 reals: FPR ≤ 1 % means no real flagged; the fakes above the top real (0.4) are 0.6, 0.8, 0.9
    assert report["detectors"]["d"]["tpr_at_1pct_fpr"] == pytest.approx(3 / 4)
    assert report["fused"]["tpr_at_1pct_fpr"] == pytest.approx(3 / 4)
    assert report["fused"]["false_flag_rate"] == 0.0  # no real reaches 0.5
    assert report["fused"]["flag_rate"] == pytest.approx(3 / 4)  # the fake at 0.35 is missed


# -- TPR at a fixed FPR, bootstrap intervals, groups --------------------------------------------------------------

def test_tpr_at_fpr_on_a_known_roc() -> None:
    reals = [i / 100 for i in range(100)]  # 0.00 … 0.99: each real above a threshold adds 1 % FPR
    fakes = [0.995, 0.992, 0.985, 0.975, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05]
    labels, scores = [0] * 100 + [1] * 10, reals + fakes
    assert tpr_at_fpr(labels, scores, fpr=0.0) == pytest.approx(0.2)  # above 0.99: 0.995, 0.992
    assert tpr_at_fpr(labels, scores) == pytest.approx(0.3)  # threshold 0.985: one real (0.99) flagged, 1 %
    assert tpr_at_fpr(labels, scores, fpr=0.015) == pytest.approx(0.3)  # no interpolation between ROC points
    assert tpr_at_fpr(labels, scores, fpr=0.02) == pytest.approx(0.4)  # threshold 0.975: reals 0.99, 0.98 flagged
    assert tpr_at_fpr(labels, scores, fpr=0.03) == pytest.approx(0.4)  # 0.97 flags a third real, no new fake
    assert tpr_at_fpr(labels, scores, fpr=1.0) == 1.0
    # the order of the items does not matter
    order = np.random.default_rng(1).permutation(110)
    assert tpr_at_fpr(np.asarray(labels)[order], np.asarray(scores)[order]) == pytest.approx(0.3)
    # a fake tied with the only real cannot be counted without flagging that real (FPR 100 %)
    assert tpr_at_fpr([0, 1, 1], [0.9, 0.9, 0.5]) == 0.0
    assert tpr_at_fpr([0, 1, 1], [0.1, 0.9, 0.5]) == 1.0
    assert tpr_at_fpr([1, 1], [0.2, 0.9]) is None and tpr_at_fpr([], []) is None


def test_bootstrap_ci_is_deterministic_and_covers_the_estimate() -> None:
    values = np.random.default_rng(7).normal(0.0, 1.0, 400)
    mean = lambda v: float(np.mean(v))  # noqa: E731
    ci = bootstrap_ci(values, mean, n=1000, seed=0)
    assert ci is not None and ci[0] < float(values.mean()) < ci[1]
    assert 0.15 < ci[1] - ci[0] < 0.25  # ≈ 2 × 1.96 / √400 = 0.196
    assert bootstrap_ci(values, mean, n=1000, seed=0) == ci  # same seed, same interval
    assert bootstrap_ci(list(values), mean, seed=0) == ci  # defaults: 1000 resamples; lists work too
    assert bootstrap_ci(values, mean, seed=1) != ci
    narrow = bootstrap_ci(values, mean, seed=0, level=0.5)
    assert ci[0] < narrow[0] < narrow[1] < ci[1]
    assert bootstrap_ci([], mean) is None

    # (labels, scores) are resampled together; strata keep every class at its size in each resample
    labels = np.array([0] * 6 + [1] * 4)
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 0.6, 0.8, 0.9, 0.95])
    seen: set[tuple[int, int]] = set()

    def auc(y: np.ndarray, s: np.ndarray) -> float | None:
        from sklearn.metrics import roc_auc_score

        seen.add((int((y == 0).sum()), int((y == 1).sum())))
        return None if len(set(y)) < 2 else float(roc_auc_score(y, s))

    point = auc(labels, scores)  # 23 / 24: only 0.7 (real) outranks 0.6 (fake)
    assert point == pytest.approx(23 / 24)
    seen.clear()
    ci = bootstrap_ci((labels, scores), auc, n=300, seed=3, strata=labels)
    assert seen == {(6, 4)} and ci[0] <= point <= ci[1] == 1.0
    # unstratified, resamples with one class are skipped rather than failing
    assert bootstrap_ci(([0, 1], [0.2, 0.8]), auc, n=200, seed=0) == (1.0, 1.0)
    assert bootstrap_ci(([0, 0], [0.2, 0.8]), auc) is None
    with pytest.raises(ValueError, match="differ in length"):
        bootstrap_ci(([0, 1, 1], [0.2, 0.8]), auc)


def test_rate_ci() -> None:
    flags = [True] * 5 + [False] * 15
    ci = rate_ci(flags, seed=0)
    assert ci[0] < 0.25 < ci[1] and rate_ci(flags, seed=0) == ci
    assert 0.0 <= ci[0] and ci[1] <= 0.6
    assert rate_ci([False] * 30) == (0.0, 0.0)  # zero width: read it with n
    assert rate_ci([]) is None


def test_group_metrics_with_single_class_groups() -> None:
    def item(i: int, label: int, group: str, fused: float | None, detector: float | None) -> ItemResult:
        result = (DetectorResult("d", "1", True, detector) if detector is not None
                  else DetectorResult("d", "1", False))
        return ItemResult(item=Item(Path(f"{group}-{i}.mp4"), label, group), fused_score=fused, verdict="x",
                          results={"d": result})

    webcam = [item(i, 0, "real/webcam", f, f) for i, f in enumerate([0.1, 0.6, 0.2, 0.7, 0.3])]
    offset = [item(i, 1, "offset", f, f) for i, f in enumerate([0.9, 0.4, 0.8])]
    mixed = [item(0, 0, "c23", 0.2, 0.2), item(1, 0, "c23", 0.55, None), item(2, 1, "c23", 0.7, 0.7),
             item(3, 1, "c23", 0.95, 0.95)]
    loose = [item(0, 0, "", 0.05, 0.05), item(1, 1, "", None, None)]  # the fake: inconclusive
    broken = ItemResult(item=Item(Path("x.mp4"), 1, "offset"), error="CorruptMedia: x")
    report = metrics(webcam + offset + mixed + loose + [broken], ["d"])
    assert report["n"] == 14 and (report["n_real"], report["n_fake"]) == (8, 6)
    groups = report["groups"]
    assert list(groups) == sorted(["real/webcam", "offset", "c23", UNGROUPED])

    cam = groups["real/webcam"]
    assert (cam["n"], cam["n_real"], cam["n_fake"]) == (5, 5, 0)
    fused = cam["fused"]
    assert fused["auc"] is None and fused["eer"] is None and fused["auc_ci"] is None
    assert fused["tpr_at_1pct_fpr"] is None
    assert fused["false_flag_rate"] == pytest.approx(2 / 5)  # 0.6 and 0.7 are ≥ 0.5
    assert fused["false_flag_rate_ci"][0] <= 0.4 <= fused["false_flag_rate_ci"][1]
    assert fused["flag_rate"] is None and fused["flag_rate_ci"] is None
    assert fused["accuracy"] == pytest.approx(3 / 5)
    assert cam["detectors"]["d"] == {"auc": None, "eer": None, "n_applicable": 5, "tpr_at_1pct_fpr": None,
                                     "auc_ci": None}

    fakes = groups["offset"]  # the broken item is left out
    assert (fakes["n"], fakes["n_real"], fakes["n_fake"]) == (3, 0, 3)
    assert fakes["fused"]["flag_rate"] == pytest.approx(2 / 3) and fakes["fused"]["false_flag_rate"] is None
    assert fakes["fused"]["auc"] is None

    both = groups["c23"]
    assert both["fused"]["auc"] == pytest.approx(1.0) and both["fused"]["tpr_at_1pct_fpr"] == pytest.approx(1.0)
    assert both["fused"]["auc_ci"] == [1.0, 1.0]
    assert both["fused"]["false_flag_rate"] == pytest.approx(0.5) and both["fused"]["flag_rate"] == 1.0
    assert both["detectors"]["d"]["n_applicable"] == 3 and both["detectors"]["d"]["auc"] == pytest.approx(1.0)

    assert (groups[UNGROUPED]["n_real"], groups[UNGROUPED]["n_fake"]) == (1, 1)
    assert groups[UNGROUPED]["fused"]["flag_rate"] == 0.0  # inconclusive counts as nothing found
    # the overall figures are those of all usable items
    assert report["fused"]["false_flag_rate"] == pytest.approx(3 / 8)
    assert report["fused"]["flag_rate"] == pytest.approx(4 / 6)
    assert report["fused"]["auc_ci"][0] <= report["fused"]["auc"] <= report["fused"]["auc_ci"][1]
    # and it is plain JSON
    assert json.loads(json.dumps(report)) == report


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
    assert set(report["fused"]) == {"auc", "eer", "accuracy"} | ADDED_FUSED_KEYS
    # reals sit directly under real/ (ungrouped), fakes under fake/offset/; broken.mp4 is left out
    assert set(report["groups"]) == {UNGROUPED, "offset"}
    real, offset = report["groups"][UNGROUPED], report["groups"]["offset"]
    assert (real["n"], real["n_real"], real["n_fake"]) == (3, 3, 0)
    assert (offset["n"], offset["n_real"], offset["n_fake"]) == (3, 0, 3)
    assert real["fused"]["auc"] is None and real["fused"]["flag_rate"] is None
    assert real["fused"]["false_flag_rate"] in (0.0, pytest.approx(1 / 3), pytest.approx(2 / 3), 1.0)
    assert offset["fused"]["auc"] is None and offset["fused"]["false_flag_rate"] is None
    assert offset["fused"]["flag_rate"] is not None
    assert set(offset["detectors"]) == {"lipsync", "face_forgery"}
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
