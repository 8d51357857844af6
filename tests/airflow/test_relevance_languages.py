"""Relevance in 16 languages and 7 scripts, on the labelled titles of tests/airflow/data/relevance_titles.yaml, scored
as the crawl scores them; prints the per-language precision/recall report of bench/relevance_calibration.py."""
from __future__ import annotations

import importlib.util
from typing import Any

import pytest
from support.crawl import ROOT

from pipeline import Settings
from pipeline.crawl import RelevanceScorer

_spec = importlib.util.spec_from_file_location("relevance_calibration", ROOT / "bench" / "relevance_calibration.py")
assert _spec is not None and _spec.loader is not None
calibration: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(calibration)


@pytest.fixture(scope="module")
def scored() -> list[dict[str, Any]]:
    return calibration.score_titles(calibration.load_titles(calibration.DEFAULT_TITLES))


def test_the_labelled_set_covers_twelve_languages_and_four_scripts() -> None:
    import unicodedata

    rows = calibration.load_titles(calibration.DEFAULT_TITLES)
    languages = {lang for lang, _, _ in rows}
    scripts = {unicodedata.name(c).split()[0] for _, title, _ in rows for c in title if c.isalpha()}
    assert len(languages) >= 12 and {"LATIN", "CYRILLIC", "ARABIC", "DEVANAGARI", "CJK", "HANGUL"} <= scripts


@pytest.mark.slow
def test_precision_and_recall_per_language(scored: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    threshold = Settings().relevance_threshold
    report = calibration.report(scored, threshold)
    with capsys.disabled():
        print(f"\nrelevance at threshold {threshold}: " + ", ".join(
            f"{lang} P={pr['precision']:.2f} R={pr['recall']:.2f}" for lang, pr in report["languages"].items()))
    assert report["overall"]["precision"] >= 0.95 and report["overall"]["recall"] >= 0.95, report["misses"]
    for lang, pr in report["languages"].items():
        assert pr["precision"] >= 0.8 and pr["recall"] >= 0.8, (lang, pr, report["misses"])
    # the lexicon is matched in the detected language: an English title never counts as German
    assert all(s["detected"] == s["language"] for s in scored if s["political"]), [
        (s["title"], s["detected"]) for s in scored if s["political"] and s["detected"] != s["language"]]


@pytest.mark.slow
def test_lexicon_follows_the_detected_language() -> None:
    scorer = RelevanceScorer.shared(Settings())
    assert scorer.language("The opposition walks out of parliament") == "en"
    assert scorer.keyword("The opposition walks out of parliament") is None  # "opposition" is German only in German
    assert scorer.keyword("Die Opposition verlässt den Bundestag") == ("opposition", "de")
    assert scorer.keyword("Resumen del partido: gol en el último minuto") is None  # "partido": a match, too
    german, english = scorer.score(["Bundestagswahl: Kanzlerkandidat räumt Wahlniederlage ein",
                                    "Quick and easy chocolate cake"])
    assert german.score >= Settings().relevance_threshold and english.score < Settings().relevance_threshold
