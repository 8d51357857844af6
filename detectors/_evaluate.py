"""``vigil eval`` and ``vigil calibrate``: the suite against labelled media, and calibration fitted on it.

A dataset is a folder with ``real/`` and ``fake/`` sub-folders (searched recursively for media files) or a CSV
``path,label[,group]`` (a header row is optional; relative paths are relative to the CSV; labels real/fake,
0/1, bonafide/spoof, pristine/manipulated …; ``group`` is free text such as the manipulation method).

``evaluate`` runs the suite (prepare on the CPU, analyse in batches across videos) and writes::

    DIR/report.json   {"n", "detectors": {name: {"auc", "eer", "n_applicable"}}, "fused": {"auc", "eer", "accuracy"}}
                      plus (added keys; the ones above are a contract and never change):
                      "n_real", "n_fake"; per detector "tpr_at_1pct_fpr", "auc_ci"; fused "tpr_at_1pct_fpr",
                      "auc_ci", "false_flag_rate", "false_flag_rate_ci", "flag_rate", "flag_rate_ci"; and
                      "groups": {group: {"n", "n_real", "n_fake", "fused": {…as above}, "detectors": {…as above}}}
    DIR/roc.png       ROC curves of every detector (on the items it could judge) and of the fused score
    DIR/items.csv     one row per item: label, group, fused score and verdict, per detector calibrated and raw
                      score and applicability, error

Metrics: AUC and EER of a detector over the items where it was applicable (null when those hold one class only);
the fused score of an inconclusive item counts as 0 (nothing found); accuracy is fused score ≥ 0.5 against the
label. Items whose media cannot be decoded are listed with their error and left out of the metrics.
``tpr_at_1pct_fpr`` is the largest TPR on the ROC whose FPR ≤ 0.01 (null with one class; with fewer than 100 real
items that is the share of fakes scored above every real one). ``false_flag_rate`` is the share of real items with
fused ≥ 0.5, ``flag_rate`` the share of fake items with fused ≥ 0.5 (null when the class is absent). Intervals
are 95 % percentile bootstraps, 1000 resamples, seed 0 (deterministic): AUC resampled within each class, rates
over the items of their class; a rate of 0 or 1 has a zero-width interval, so read it with its n.
``groups`` repeats the metrics per item group (CSV third column or sub-folder under real/ or fake/; items without
one under ``"(ungrouped)"``; ``{}`` when no item has a group). A group often holds one class only (``youtube`` of
FaceForensics++ is all real): its AUC, EER and TPR are then null, but ``false_flag_rate`` (all real) or
``flag_rate`` (all fake) still say how the suite does on it.

``fit_calibration`` fits, on raw detector scores, what ``detectors/_fusion.py`` applies: per-detector Platt scaling
(scikit-learn logistic regression on logit(score)) and the noisy-OR weights (maximum likelihood of the labels
under ``1 - Π(1 - w_i p_i)``, each weight in [0, 1]); verdict thresholds are kept from the base calibration. It
reads either a dataset (running the suite) or the ``items.csv`` of an earlier ``vigil eval`` (no models run).
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline import ConfigError

from ._base import DetectorResult
from ._exceptions import MediaError

if TYPE_CHECKING:
    from ._fusion import Calibration, Fusion
    from ._suite import Suite

__all__ = [
    "Item", "ItemResult", "load_dataset", "run_items", "evaluate", "metrics", "write_report", "read_items_csv",
    "fit_calibration", "write_calibration", "rescore", "MEDIA_SUFFIXES", "bootstrap_ci", "tpr_at_fpr", "rate_ci",
    "UNGROUPED",
]

logger = logging.getLogger(__name__)

MEDIA_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".flv", ".mpg", ".mpeg", ".ts", ".3gp"})
_FAKE_WORDS = {"1", "fake", "spoof", "manipulated", "deepfake", "synthetic", "forged", "true", "yes"}
_REAL_WORDS = {"0", "real", "bonafide", "bona-fide", "bona_fide", "pristine", "original", "genuine", "false", "no"}
_EPS = 1e-6
UNGROUPED = "(ungrouped)"  # the key in report["groups"] of items without a group
_THRESHOLD = 0.5  # fused score at which an item counts as flagged (accuracy, flag rates)


@dataclass(frozen=True)
class Item:
    """One labelled video: label 1 = manipulated, 0 = real."""

    path: Path
    label: int
    group: str = ""


@dataclass
class ItemResult:
    """What the suite said about one item (``results`` hold calibrated scores and ``evidence['raw_score']``)."""

    item: Item
    results: dict[str, DetectorResult] = field(default_factory=dict)
    fused_score: float | None = None
    verdict: str = ""
    error: str | None = None

    def raw(self, name: str) -> float | None:
        """The detector's score before calibration, None when it was not applicable."""
        result = self.results.get(name)
        if result is None or not result.applicable or result.score is None:
            return None
        return float(result.evidence.get("raw_score", result.score))

    def calibrated(self, name: str) -> float | None:
        result = self.results.get(name)
        return None if result is None or not result.applicable else result.score


# -- datasets -----------------------------------------------------------------------------------------------------

def _label(value: str, where: str) -> int:
    word = value.strip().lower()
    if word in _FAKE_WORDS:
        return 1
    if word in _REAL_WORDS:
        return 0
    raise ConfigError(f"{where}: label {value!r} is neither real nor fake (use real/fake or 0/1)")


def load_dataset(dataset: str | Path) -> list[Item]:
    """Items of a ``real/`` + ``fake/`` folder or of a ``path,label[,group]`` CSV; ConfigError when neither."""
    root = Path(dataset)
    if root.is_dir():
        items = []
        for name, label in (("real", 0), ("fake", 1)):
            folder = root / name
            if not folder.is_dir():
                raise ConfigError(f"{root}: a dataset folder needs real/ and fake/ sub-folders ({name}/ is missing)")
            for path in _media_files(folder):
                group = path.parent.relative_to(folder).as_posix()
                items.append(Item(path=path, label=label, group="" if group == "." else group))
        if not items:
            raise ConfigError(f"{root}: no media files ({', '.join(sorted(MEDIA_SUFFIXES))}) under real/ or fake/")
        return items
    if root.is_file():
        return _load_csv(root)
    raise ConfigError(f"{root}: no such dataset (a folder with real/ and fake/, or a CSV path,label[,group])")


def _media_files(folder: Path) -> list[Path]:
    """Media files under ``folder``, following symbolic links (a dataset is often links into a corpus)."""
    found = []
    for directory, _, files in os.walk(folder, followlinks=True):
        found += [Path(directory) / f for f in files if Path(f).suffix.lower() in MEDIA_SUFFIXES]
    return sorted(found)


def _load_csv(path: Path) -> list[Item]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.reader(handle) if row and not row[0].lstrip().startswith("#")]
    if rows and rows[0][0].strip().lower() == "path":
        rows = rows[1:]
    items = []
    for number, row in enumerate(rows, start=1):
        if len(row) < 2:
            raise ConfigError(f"{path}, row {number}: expected path,label[,group], got {row}")
        media = Path(row[0].strip())
        media = media if media.is_absolute() else path.parent / media
        items.append(Item(path=media, label=_label(row[1], f"{path}, row {number}"),
                          group=row[2].strip() if len(row) > 2 else ""))
    if not items:
        raise ConfigError(f"{path}: the CSV lists no items")
    return items


# -- running ------------------------------------------------------------------------------------------------------

Progress = Callable[[int, int], None]


def run_items(items: Sequence[Item], suite: Suite, *, batch_size: int = 4,
              on_progress: Progress | None = None) -> list[ItemResult]:
    """prepare every item, analyse them ``batch_size`` at a time (batched across videos on the device)."""
    out: list[ItemResult] = []
    done = 0
    for start in range(0, len(items), max(1, batch_size)):
        chunk = items[start:start + batch_size]
        prepared: list[tuple[ItemResult, Any]] = []
        for item in chunk:
            entry = ItemResult(item=item)
            try:
                clip, _ = suite.prepare(item.path)
                prepared.append((entry, clip))
            except MediaError as exc:
                logger.warning("cannot use %s: %s", item.path, exc)
                entry.error = f"{type(exc).__name__}: {exc}"
            out.append(entry)
        if prepared:
            for (entry, _), analysed in zip(prepared, suite.analyse([clip for _, clip in prepared]), strict=True):
                entry.results = dict(analysed.results)
                entry.fused_score = analysed.fused.score
                entry.verdict = analysed.fused.verdict
        done += len(chunk)
        if on_progress is not None:
            on_progress(done, len(items))
    return out


def evaluate(dataset: str | Path, out_dir: str | Path, *, suite: Suite, batch_size: int = 4,
             on_progress: Progress | None = None) -> dict[str, Any]:
    """Run ``suite`` over the dataset and write report.json, roc.png and items.csv to ``out_dir``; the report."""
    items = load_dataset(dataset)
    started = time.perf_counter()
    results = run_items(items, suite, batch_size=batch_size, on_progress=on_progress)
    logger.info("evaluated %d items in %.1f s", len(items), time.perf_counter() - started)
    return write_report(results, out_dir, names=suite.names)


# -- metrics and report -------------------------------------------------------------------------------------------

def _auc_eer(labels: np.ndarray, scores: np.ndarray) -> tuple[float | None, float | None]:
    from sklearn.metrics import roc_auc_score, roc_curve

    if labels.size == 0 or len(np.unique(labels)) < 2:
        return None, None
    auc = float(roc_auc_score(labels, scores))
    fpr, tpr, _ = roc_curve(labels, scores)
    fnr = 1.0 - tpr
    i = int(np.nanargmin(np.abs(fnr - fpr)))
    # interpolate between the two ROC points around the crossing
    if i + 1 < fpr.size and (fnr[i] - fpr[i]) * (fnr[i + 1] - fpr[i + 1]) < 0:
        d0, d1 = fnr[i] - fpr[i], fnr[i + 1] - fpr[i + 1]
        t = d0 / (d0 - d1)
        eer = float(fpr[i] + t * (fpr[i + 1] - fpr[i]))
    else:
        eer = float((fpr[i] + fnr[i]) / 2)
    return round(auc, 6), round(eer, 6)


def _auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """AUC as the Mann-Whitney statistic (ties count half), fast enough to bootstrap; None with one class."""
    from scipy.stats import rankdata

    labels = np.asarray(labels)
    n_fake = int(np.count_nonzero(labels == 1))
    n_real = labels.size - n_fake
    if n_fake == 0 or n_real == 0:
        return None
    ranks = rankdata(np.asarray(scores, dtype=float))
    return float((ranks[labels == 1].sum() - n_fake * (n_fake + 1) / 2) / (n_fake * n_real))


def tpr_at_fpr(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray,
               fpr: float = 0.01) -> float | None:
    """The largest true positive rate on the ROC of ``scores`` (label 1 = fake) whose false positive rate is
    ≤ ``fpr``; None when one class is missing. Tied scores move together (no interpolation between ROC points),
    so with fewer than 1/fpr real items this is the share of fakes scored above every real one."""
    from sklearn.metrics import roc_curve

    y = np.asarray(labels, dtype=int)
    if y.size == 0 or len(np.unique(y)) < 2:
        return None
    fprs, tprs, _ = roc_curve(y, np.asarray(scores, dtype=float), drop_intermediate=False)
    return round(float(tprs[fprs <= fpr + 1e-12].max()), 6)


def bootstrap_ci(data: Sequence[Any] | np.ndarray | tuple[Sequence[Any] | np.ndarray, ...],
                 statistic: Callable[..., float | None], n: int = 1000, seed: int = 0, *, level: float = 0.95,
                 strata: Sequence[Any] | np.ndarray | None = None) -> tuple[float, float] | None:
    """Percentile bootstrap interval of ``statistic``: ``data`` is one array (``statistic(values)``) or a tuple
    of equally long arrays resampled together by the same indices (``statistic(labels, scores)``). With
    ``strata`` each stratum is resampled on its own, keeping its size (pass the labels to keep both classes in
    every AUC resample). Resamples where ``statistic`` returns None are skipped. Deterministic for a ``seed``;
    None when there is no data or no resample gives a value."""
    arrays = tuple(np.atleast_1d(np.asarray(a)) for a in data) if isinstance(data, tuple) \
        else (np.atleast_1d(np.asarray(data)),)
    sizes = {a.shape[0] for a in arrays}
    if len(sizes) != 1:
        raise ValueError(f"bootstrap_ci: the arrays in data differ in length ({sorted(sizes)})")
    size = sizes.pop()
    if size == 0:
        return None
    groups = ([np.arange(size)] if strata is None else
              [np.flatnonzero(np.asarray(strata) == s) for s in np.unique(np.asarray(strata))])
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n):
        index = np.concatenate([g[rng.integers(0, g.size, g.size)] for g in groups])
        value = statistic(*(a[index] for a in arrays))
        if value is not None and np.isfinite(value):
            values.append(float(value))
    if not values:
        return None
    tail = (1.0 - level) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return round(float(lo), 6), round(float(hi), 6)


def rate_ci(flags: Sequence[bool] | np.ndarray, n: int = 1000, seed: int = 0, *,
            level: float = 0.95) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the share of true ``flags`` (e.g. real items flagged); None when empty.
    All-false or all-true flags give a zero-width interval: read it together with the number of items."""
    return bootstrap_ci(np.asarray(flags, dtype=float), lambda v: float(v.mean()), n=n, seed=seed, level=level)


def _interval(ci: tuple[float, float] | None) -> list[float] | None:
    return None if ci is None else [ci[0], ci[1]]


def _rate(flags: np.ndarray) -> float | None:
    return round(float(flags.mean()), 6) if flags.size else None


def _fused(entry: ItemResult) -> float:
    return 0.0 if entry.fused_score is None else float(entry.fused_score)


def _detector_metrics(scored: Sequence[ItemResult], name: str) -> dict[str, Any]:
    pairs = [(r.item.label, r.calibrated(name)) for r in scored if r.calibrated(name) is not None]
    y = np.asarray([p[0] for p in pairs], dtype=int)
    s = np.asarray([p[1] for p in pairs], dtype=float)
    auc, eer = _auc_eer(y, s)
    return {"auc": auc, "eer": eer, "n_applicable": len(pairs), "tpr_at_1pct_fpr": tpr_at_fpr(y, s),
            "auc_ci": _interval(bootstrap_ci((y, s), _auc, strata=y) if auc is not None else None)}


def _fused_metrics(scored: Sequence[ItemResult]) -> dict[str, Any]:
    labels = np.asarray([r.item.label for r in scored], dtype=int)
    fused = np.asarray([_fused(r) for r in scored], dtype=float)
    flagged = fused >= _THRESHOLD
    auc, eer = _auc_eer(labels, fused)
    accuracy = round(float(np.mean(flagged.astype(int) == labels)), 6) if scored else None
    false_flags, flags = flagged[labels == 0], flagged[labels == 1]
    return {"auc": auc, "eer": eer, "accuracy": accuracy, "tpr_at_1pct_fpr": tpr_at_fpr(labels, fused),
            "auc_ci": _interval(bootstrap_ci((labels, fused), _auc, strata=labels) if auc is not None else None),
            "false_flag_rate": _rate(false_flags), "false_flag_rate_ci": _interval(rate_ci(false_flags)),
            "flag_rate": _rate(flags), "flag_rate_ci": _interval(rate_ci(flags))}


def _counts(scored: Sequence[ItemResult]) -> dict[str, int]:
    n_fake = sum(r.item.label for r in scored)
    return {"n": len(scored), "n_real": len(scored) - n_fake, "n_fake": n_fake}


def metrics(results: Sequence[ItemResult], names: Sequence[str]) -> dict[str, Any]:
    """The report (DESIGN.md): n, per-detector AUC / EER / n_applicable, fused AUC / EER / accuracy; and, as added
    keys, TPR at 1 % FPR, bootstrap intervals, false-flag and flag rates, and the same per item group."""
    scored = [r for r in results if r.error is None]
    counts = _counts(scored)
    report: dict[str, Any] = {"n": counts["n"], "detectors": {name: _detector_metrics(scored, name) for name in names},
                              "fused": _fused_metrics(scored), "n_real": counts["n_real"], "n_fake": counts["n_fake"]}
    groups: dict[str, Any] = {}
    if any(r.item.group for r in scored):
        for group in sorted({r.item.group or UNGROUPED for r in scored}):
            members = [r for r in scored if (r.item.group or UNGROUPED) == group]
            groups[group] = {**_counts(members), "fused": _fused_metrics(members),
                             "detectors": {name: _detector_metrics(members, name) for name in names}}
    report["groups"] = groups
    return report


def write_report(results: Sequence[ItemResult], out_dir: str | Path, *, names: Sequence[str]) -> dict[str, Any]:
    """report.json, roc.png and items.csv for ``results``; returns the report."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = metrics(results, names)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    _write_items(results, names, out / "items.csv")
    _plot_roc(results, names, report, out / "roc.png")
    return report


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


def _write_items(results: Sequence[ItemResult], names: Sequence[str], path: Path) -> None:
    header = ["path", "label", "group", "fused_score", "verdict", "error"]
    for name in names:
        header += [f"{name}_score", f"{name}_raw", f"{name}_applicable"]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for r in results:
            row = [str(r.item.path), "fake" if r.item.label else "real", r.item.group, _fmt(r.fused_score),
                   r.verdict, r.error or ""]
            for name in names:
                result = r.results.get(name)
                row += [_fmt(r.calibrated(name)), _fmt(r.raw(name)),
                        "" if result is None else str(bool(result.applicable)).lower()]
            writer.writerow(row)


def _plot_roc(results: Sequence[ItemResult], names: Sequence[str], report: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    scored = [r for r in results if r.error is None]
    figure, axes = plt.subplots(figsize=(5.5, 5.5), dpi=100)
    axes.plot([0, 1], [0, 1], color="0.75", linestyle="--", linewidth=1)
    curves = [(name, [(r.item.label, r.calibrated(name)) for r in scored if r.calibrated(name) is not None],
               report["detectors"][name]["auc"], 1.2) for name in names]
    curves.append(("fused", [(r.item.label, _fused(r)) for r in scored], report["fused"]["auc"], 2.5))
    for name, pairs, auc, width in curves:
        y = [p[0] for p in pairs]
        if len(set(y)) < 2:
            continue
        fpr, tpr, _ = roc_curve(y, [p[1] for p in pairs])
        axes.plot(fpr, tpr, linewidth=width, label=f"{name} (AUC {auc:.3f}, n={len(pairs)})")
    axes.set(xlabel="false positive rate (real flagged)", ylabel="true positive rate (fake flagged)",
             xlim=(0, 1), ylim=(0, 1.01), title=f"ROC, {len(scored)} items")
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def read_items_csv(path: str | Path) -> tuple[list[ItemResult], list[str]]:
    """ItemResults (raw scores as uncalibrated results) and detector names from an ``items.csv`` of ``vigil eval``."""
    with Path(path).open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "fused_score" not in rows[0]:
        raise ConfigError(f"{path}: not an items.csv written by `vigil eval`")
    names = [column[: -len("_raw")] for column in rows[0] if column.endswith("_raw")]
    results = []
    for row in rows:
        entry = ItemResult(item=Item(Path(row["path"]), _label(row["label"], str(path)), row.get("group", "")),
                           error=row.get("error") or None, verdict=row.get("verdict", ""),
                           fused_score=float(row["fused_score"]) if row.get("fused_score") else None)
        for name in names:
            raw = row.get(f"{name}_raw", "")
            applicable = row.get(f"{name}_applicable", "") == "true" and raw != ""
            entry.results[name] = (DetectorResult(name=name, version="", applicable=True, score=float(raw))
                                   if applicable else DetectorResult(name=name, version="", applicable=False))
        results.append(entry)
    return results, names


# -- calibration --------------------------------------------------------------------------------------------------

def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def _fit_platt(raw: np.ndarray, labels: np.ndarray, *, c: float) -> tuple[float, float] | None:
    """(a, b) of ``sigmoid(a * logit(p) + b)`` by logistic regression; None when the scores do not rank the
    labels (slope ≤ 0) or one class is missing."""
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(labels)) < 2:
        return None
    model = LogisticRegression(C=c).fit(_logit(raw)[:, None], labels)
    a, b = float(model.coef_[0, 0]), float(model.intercept_[0])
    return (a, b) if a > 1e-3 else None


def _fit_weights(calibrated: np.ndarray, labels: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Noisy-OR weights in [0, 1] maximising the likelihood of the labels, gently pulled towards ``prior``."""
    from scipy.optimize import minimize

    def loss(w: np.ndarray) -> float:
        fused = 1.0 - np.prod(1.0 - calibrated * w[None, :], axis=1)
        fused = np.clip(fused, _EPS, 1 - _EPS)
        nll = -np.mean(labels * np.log(fused) + (1 - labels) * np.log(1 - fused))
        return float(nll + 0.01 * np.sum((w - prior) ** 2))

    fit = minimize(loss, x0=prior, method="L-BFGS-B", bounds=[(0.0, 1.0)] * len(prior))
    return np.clip(fit.x, 0.0, 1.0)


def fit_calibration(results: Sequence[ItemResult], names: Sequence[str], *, base: Calibration | None = None,
                    source: str = "", min_items: int = 4, c: float = 1.0) -> Calibration:
    """Per-detector Platt scaling and noisy-OR weights fitted on raw scores of labelled items (DESIGN: the
    calibration that ``Fusion`` applies). A detector with fewer than ``min_items`` applicable items keeps the
    base's scaling and weight; one whose scores do not rank the labels keeps the base's scaling and gets a fitted
    (usually small) weight. Both are logged."""
    from ._fusion import Calibration, DetectorCalibration, Platt, load_calibration

    base = base or load_calibration()
    scored = [r for r in results if r.error is None]
    if len(scored) < min_items or len({r.item.label for r in scored}) < 2:
        raise ConfigError(f"calibration needs at least {min_items} usable items of both labels, got {len(scored)}")
    labels = np.asarray([r.item.label for r in scored], dtype=float)
    detectors: dict[str, DetectorCalibration] = {}
    calibrated = np.zeros((len(scored), len(names)))
    fitted: list[int] = []  # Platt scaling fitted
    weighed: list[int] = []  # enough items to fit a weight (also when the scores turn out not to rank the labels)
    for j, name in enumerate(names):
        mask = np.asarray([r.raw(name) is not None for r in scored])
        kept = base.for_detector(name)
        platt = None
        if mask.sum() >= min_items:
            weighed.append(j)
            raw = np.asarray([r.raw(name) for r in scored if r.raw(name) is not None], dtype=float)
            ab = _fit_platt(raw, labels[mask], c=c)
            if ab is not None:
                platt = Platt(a=ab[0], b=ab[1])
                fitted.append(j)
            else:
                logger.warning("%s: scores do not rank the labels here; keeping its base scaling", name)
        else:
            logger.warning("%s: applicable on %d items (< %d); keeping its base calibration", name, mask.sum(),
                           min_items)
        scale = platt or kept.platt
        for i, r in enumerate(scored):
            raw_i = r.raw(name)
            calibrated[i, j] = 0.0 if raw_i is None else (scale(raw_i) if scale is not None else raw_i)
        detectors[name] = kept.model_copy(update={"platt": platt or kept.platt})  # keeps rank bands
    prior = np.asarray([detectors[n].weight for n in names])
    if weighed:
        weights = _fit_weights(calibrated[:, weighed], labels, prior[weighed])
        for j, w in zip(weighed, weights):
            detectors[names[j]] = detectors[names[j]].model_copy(update={"weight": round(float(w), 6)})
    for name, kept in base.detectors.items():
        detectors.setdefault(name, kept)
    n_fake = int(labels.sum())
    body = {"detectors": {n: d.model_dump() for n, d in sorted(detectors.items())}}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:8]
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d")
    description = (f"fitted by vigil calibrate on {source or 'a labelled set'}: {len(scored)} items "
                   f"({n_fake} fake, {len(scored) - n_fake} real); Platt fitted for "
                   f"{', '.join(names[j] for j in fitted) or 'no detector'}; base {base.version}")
    return Calibration(version=f"cal-{stamp}-{digest}", description=description, detectors=detectors,
                       default=base.default, fusion=base.fusion, verdicts=base.verdicts)


def write_calibration(calibration: Calibration, path: str | Path) -> Path:
    """Write the calibration JSON that ``load_calibration`` (``VIGIL_CALIBRATION_FILE``) reads."""
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(calibration.model_dump(mode="json"), indent=2) + "\n", encoding="utf-8")
    return file


def rescore(results: Iterable[ItemResult], fusion: Fusion) -> list[ItemResult]:
    """The same items re-scored from their raw scores with another calibration (no models run)."""
    out = []
    for r in results:
        if r.error is not None:
            out.append(r)
            continue
        raw = {name: (DetectorResult(name=name, version=res.version, applicable=True, score=r.raw(name))
                      if r.raw(name) is not None else res) for name, res in r.results.items()}
        calibrated = {name: fusion.calibrate(res) for name, res in raw.items()}
        fused = fusion.fuse(calibrated)
        out.append(ItemResult(item=r.item, results=calibrated, fused_score=fused.score, verdict=fused.verdict))
    return out

