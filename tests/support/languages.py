"""A multilingual trending set for the fake platform: one political and one everyday video in each of 15 languages
(6 scripts), pages of every layout (JSON-LD only, JSON-LD beside a ``<video>`` tag, OpenGraph only, several videos on
one page, counters in each schema.org form) and a political video whose title is hostile text.

The titles are not those of the calibration set (tests/airflow/data/relevance_titles.yaml): held out.
"""
from __future__ import annotations

from typing import Any

from .fakeplatform import FakePlatform, FakeVideo, MediaFactory

__all__ = ["TITLES", "HOSTILE_TITLE", "HOSTILE_CHANNEL", "populate_languages", "expected_statuses"]

#: language -> (political title, everyday title)
TITLES: dict[str, tuple[str, str]] = {
    "en": ("Opposition leader demands a recount after the general election",
           "How to bake sourdough bread at home"),
    "de": ("Bundestagswahl: Kanzlerkandidat räumt Wahlniederlage ein", "Die besten Gitarrenriffs für Anfänger"),
    "fr": ("Le président dissout l'Assemblée nationale après les européennes",
           "Les plus belles plages de Bretagne en été"),
    "es": ("El presidente del gobierno convoca elecciones anticipadas", "Cómo cuidar tus plantas de interior"),
    "pt": ("Presidente veta projeto aprovado pelo Congresso", "Receita de pão de queijo mineiro"),
    "it": ("La premier annuncia la riforma della legge elettorale", "Come allenarsi per la prima maratona"),
    "pl": ("Wybory parlamentarne: exit poll i reakcje liderów partii", "Jak upiec sernik na zimno"),
    "ru": ("Госдума приняла закон о выборах в одном чтении", "Лучшие места для рыбалки на Волге"),
    "uk": ("Верховна Рада призначила нового прем'єр-міністра", "Як приготувати український борщ"),
    "tr": ("Seçim kampanyası başladı: muhalefet adayı miting yaptı", "Kış için sıcak çorba tarifleri"),
    "ar": ("رئيس الوزراء يعلن موعد الانتخابات البرلمانية", "أفضل تمارين الصباح للمبتدئين"),
    "hi": ("विधानसभा चुनाव: मुख्यमंत्री ने हार स्वीकार की", "गाजर का हलवा बनाने की आसान विधि"),
    "zh": ("总理在国会就选举改革发表讲话", "如何在家做手工饺子"),
    "ja": ("首相が衆議院の解散を表明、総選挙へ", "初心者でもできる観葉植物の育て方"),
    "ko": ("국회, 선거법 개정안 본회의 통과", "초보자를 위한 기타 코드 연습"),
}
#: rich markup, an ANSI escape, a carriage return and a right-to-left override: stored intact, shown harmless
HOSTILE_TITLE = ("[/bold][red]Senator[/red] admits \x1b[2Jelection fraud\ron leaked tape \u202eevil\u202c \\[x] "
                 "<!channel> & co")
HOSTILE_CHANNEL = "[bold]News[/bold] \x1b]0;pwned\x07 \u2066Channel\u2069"
HOSTILE_DESCRIPTION = "The senator's ballot scandal [link=file:///etc/passwd]x[/link]"

# page layouts and counter forms, spread over the languages (every form appears on political and other videos)
_LAYOUTS = ("jsonld", "video-tag", "video-tag", "jsonld")
_COUNTERS = ("url", "type", "text", "url")


def populate_languages(platform: FakePlatform, media: MediaFactory) -> dict[str, FakeVideo]:
    """Add the set to ``platform``; returns {video_id: video}. Video ids are ``<lang>-pol`` / ``<lang>-other``."""
    clip = media.clip(1)
    videos: dict[str, FakeVideo] = {}
    for n, (lang, (political, other)) in enumerate(TITLES.items()):
        layout, form = _LAYOUTS[n % len(_LAYOUTS)], _COUNTERS[n % len(_COUNTERS)]
        videos[f"{lang}-pol"] = FakeVideo(f"{lang}-pol", political, f"{lang} news", media=clip,
                                          views=10_000 + n, likes=500 + n, comments=50 + n,
                                          author=f"News {lang}", layout=layout, counters_form=form)
        videos[f"{lang}-other"] = FakeVideo(f"{lang}-other", other, "", media=clip, views=20_000 + n,
                                            likes=700 + n, comments=70 + n, author=f"Life {lang}",
                                            layout=layout, counters_form=form)
    videos["og-pol"] = FakeVideo("og-pol", "Wahlkampf: Kanzlerin stellt sich den Fragen der Wähler", media=clip,
                                 layout="opengraph")
    videos["legacy-pol"] = FakeVideo("legacy-pol", "Senate votes to impeach the governor", media=clip,
                                     views=4_321, layout="video-tag", counters_form="legacy")
    videos["hostile"] = FakeVideo("hostile", HOSTILE_TITLE, HOSTILE_DESCRIPTION, media=clip, views=99_000,
                                  author=HOSTILE_CHANNEL, layout="video-tag")
    # a news page carrying two videos (one JSON-LD VideoObject and one <video> tag each)
    videos["multi-a"] = FakeVideo("multi-a", "Election night: the prime minister speaks", media=media.clip(1.5),
                                  views=3_000, in_feed=False)
    videos["multi-b"] = FakeVideo("multi-b", "Strawberry cake in ten minutes", media=clip, views=2_000,
                                  in_feed=False)
    for video in videos.values():
        platform.add(video)
    platform.multi_pages["news-page"] = ["multi-a", "multi-b"]
    return videos


def expected_statuses() -> dict[str, str]:
    """{video_id: "queued" | "skipped"} of the set."""
    out = {f"{lang}-pol": "queued" for lang in TITLES} | {f"{lang}-other": "skipped" for lang in TITLES}
    return out | {"og-pol": "queued", "legacy-pol": "queued", "hostile": "queued", "multi-a": "queued",
                  "multi-b": "skipped"}


def by_title(docs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d.get("title"): d for d in docs.values()}
