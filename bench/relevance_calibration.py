"""Relevance calibration: precision and recall of `RelevanceScorer` per language on a labelled title set, and the
threshold that keeps precision high at the best recall.

The default set is tests/airflow/data/relevance_titles.yaml ({language: {political: [...], other: [...]}}, 16
languages in 7 scripts). Each title is scored as the crawl scores it (`apply_relevance`: language detected, encoder
against the topic phrases, keyword lexicon of that language). No servers needed.

    python bench/relevance_calibration.py [--titles FILE] [--threshold 0.28] [--json report.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TITLES = ROOT / "tests/airflow/data/relevance_titles.yaml"
MIN_PRECISION = 0.95


def load_titles(path: Path) -> list[tuple[str, str, bool]]:
    """(language, title, political) rows of a labelled set."""
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [(lang, title, label == "political") for lang, groups in data.items()
            for label in ("political", "other") for title in groups.get(label) or []]


def score_titles(rows: list[tuple[str, str, bool]]) -> list[dict[str, Any]]:
    """Each row scored the way the crawl scores a candidate."""
    from pipeline import Settings
    from pipeline.crawl import Candidate, RelevanceScorer, apply_relevance

    scorer = RelevanceScorer.shared(Settings())
    candidates = [Candidate(video_uid=f"t:{i}", url=f"https://t.example/{i}", title=title)
                  for i, (_, title, _) in enumerate(rows)]
    apply_relevance(candidates, scorer, threshold=0.0)
    return [{"language": lang, "title": title, "political": political, "score": c.relevance_score,
             "reason": c.relevance_reason, "detected": c.language}
            for (lang, title, political), c in zip(rows, candidates, strict=True)]


def precision_recall(scored: list[dict[str, Any]], threshold: float) -> dict[str, float | int]:
    tp = sum(1 for s in scored if s["political"] and s["score"] >= threshold)
    fp = sum(1 for s in scored if not s["political"] and s["score"] >= threshold)
    fn = sum(1 for s in scored if s["political"] and s["score"] < threshold)
    political = [s["score"] for s in scored if s["political"]]
    other = [s["score"] for s in scored if not s["political"]]
    return {"precision": round(tp / (tp + fp), 3) if tp + fp else 1.0,
            "recall": round(tp / (tp + fn), 3) if tp + fn else 1.0, "tp": tp, "fp": fp, "fn": fn,
            "lowest_political": min(political, default=None), "highest_other": max(other, default=None)}


def best_threshold(scored: list[dict[str, Any]]) -> float:
    """The lowest threshold (best recall) whose overall precision is at least MIN_PRECISION."""
    for step in range(5, 80):
        threshold = step / 100
        if precision_recall(scored, threshold)["precision"] >= MIN_PRECISION:
            return threshold
    return 0.8


def report(scored: list[dict[str, Any]], threshold: float) -> dict[str, Any]:
    languages = sorted({s["language"] for s in scored})
    return {"threshold": threshold, "suggested_threshold": best_threshold(scored), "n": len(scored),
            "overall": precision_recall(scored, threshold),
            "languages": {lang: precision_recall([s for s in scored if s["language"] == lang], threshold)
                          for lang in languages},
            "misses": [s for s in scored if (s["score"] >= threshold) != s["political"]]}


def main(argv: list[str] | None = None) -> int:
    from pipeline import Settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--titles", type=Path, default=DEFAULT_TITLES)
    parser.add_argument("--threshold", type=float, default=Settings().relevance_threshold)
    parser.add_argument("--json", type=Path, help="write the report here")
    args = parser.parse_args(argv)
    started = time.monotonic()
    scored = score_titles(load_titles(args.titles))
    result = report(scored, args.threshold)
    result["seconds"] = round(time.monotonic() - started, 1)
    print(f"{'lang':6} {'precision':>9} {'recall':>7}   tp fp fn  lowest political  highest other"
          f"   (threshold {args.threshold:.2f})")
    for lang, pr in result["languages"].items():
        print(f"{lang:6} {pr['precision']:9.3f} {pr['recall']:7.3f}   {pr['tp']:2} {pr['fp']:2} {pr['fn']:2}"
              f"  {pr['lowest_political']:16.2f}  {pr['highest_other']:13.2f}")
    pr = result["overall"]
    print(f"{'all':6} {pr['precision']:9.3f} {pr['recall']:7.3f}   {pr['tp']:2} {pr['fp']:2} {pr['fn']:2}"
          f"  {pr['lowest_political']:16.2f}  {pr['highest_other']:13.2f}")
    print(f"suggested threshold (precision >= {MIN_PRECISION}): {result['suggested_threshold']:.2f}; "
          f"{result['n']} titles in {result['seconds']} s")
    for miss in result["misses"]:
        kind = "missed" if miss["political"] else "false alarm"
        print(f"  {kind}: [{miss['language']}] {miss['title']!r} {miss['score']:.2f} {miss['reason']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
