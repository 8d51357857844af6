"""Pure logic of the crawl: watchlists, network safety, ranking, relevance, the media store, error translation."""
from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.crawl import ROOT

from pipeline import Settings
from pipeline._exceptions import DownloadFailed, DownloadRefused, UnsafeURL, WatchlistError
from pipeline._media_store import MediaStore, sha256_file
from pipeline.crawl import (
    Candidate,
    RelevanceScorer,
    UrlPolicy,
    apply_relevance,
    check_declared_caps,
    load_watchlist,
    parse_watchlist,
    rank_candidates,
    video_uid,
)
from pipeline.crawl._cycle import _reason_kind
from pipeline.crawl._ytdlp import translate_ytdlp_error

# ------------------------------------------------------------------ watchlists


def test_example_watchlist_is_valid() -> None:
    watchlist = load_watchlist(ROOT / "infra" / "watchlists" / "example.yaml")
    assert watchlist.name == "elections-2026"
    kinds = {e.kind for e in watchlist.entries}
    assert {"search", "feed", "page"} <= kinds
    search = watchlist.entries[0]
    assert search.kind == "page" and search.effective_limit(50) == 30 and "sp=CAI%253D" in search.target


def test_watchlist_fields_and_defaults() -> None:
    watchlist = parse_watchlist("entries:\n"
                                "  - kind: search\n    target: 'ytsearch20:  vote count '\n    tags: [a, ' ']\n"
                                "  - kind: url\n    target: https://example.org/v/1\n    language: pt-BR\n",
                                name="mine")
    first, second = watchlist.entries
    assert watchlist.name == "mine"
    assert first.effective_limit(50) == 20 and first.search_query(5) == "ytsearch5:vote count"
    assert first.tags == ["a"] and first.line == 2
    assert second.effective_limit(50) == 1 and second.language == "pt-BR" and second.line == 5


@pytest.mark.parametrize(("text", "message"), [
    ("entries:\n  - kind: search\n    target: election fraud\n",
     "entry 1 (line 2) 'election fraud': entry: a search target is a yt-dlp search key"),
    ("entries:\n  - kind: feed\n    target: https://ok.example/feed\n  - kind: feed\n    target: file:///etc/passwd\n",
     "entry 2 (line 4) 'file:///etc/passwd': entry: a feed target must be an http(s) URL"),
    ("entries:\n  - kind: channel\n    target: https://x.example/\n",
     "entry 1 (line 2) 'https://x.example/': kind: Input should be 'search', 'feed', 'page' or 'url'"),
    ("entries:\n  - kind: url\n    target: https://x.example/\n    limit: 0\n",
     "entry 1 (line 2) 'https://x.example/': limit: Input should be greater than or equal to 1"),
    ("entries:\n  - kind: url\n    target: https://x.example/\n    langauge: en\n",
     "langauge: Extra inputs are not permitted"),
    ("entries:\n  - kind: url\n    target: https://x.example/\n    language: English\n",
     "language: language must be an ISO 639 code"),
    ("entries:\n  - https://x.example/\n", "entry 1: expected a mapping with kind and target"),
    ("entries: []\n", "'entries' must be a non-empty list"),
    ("videos:\n  - kind: url\n", "expected a mapping with an 'entries:' list"),
    ("entries:\n  - kind: url\n    target: [unclosed\n", "not valid YAML at line"),
    ("entries:\n  - kind: url\n    target: https://x.example/\nextra: 1\n", "unknown top-level key(s): extra"),
])
def test_watchlist_errors_name_the_entry_and_line(text: str, message: str) -> None:
    with pytest.raises(WatchlistError) as info:
        parse_watchlist(text, source="w.yaml")
    assert message in str(info.value)
    assert str(info.value).startswith("w.yaml: ")


def test_watchlist_lists_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("entries:\n  - kind: feed\n    target: ftp://a.example/\n  - kind: search\n    target: nope\n")
    with pytest.raises(WatchlistError) as info:
        load_watchlist(path)
    assert "entry 1 (line 2)" in str(info.value) and "entry 2 (line 4)" in str(info.value)
    assert info.value.line == 2 and info.value.path == str(path)
    with pytest.raises(WatchlistError, match="cannot read watchlist"):
        load_watchlist(tmp_path / "missing.yaml")


# ------------------------------------------------------------------ network safety

def _resolver(table: dict[str, list[str]]):  # noqa: ANN202
    def resolve(host: str) -> list[str]:
        if host not in table:
            raise OSError("Name or service not known")
        return table[host]
    return resolve


POLICY = UrlPolicy(resolver=_resolver({
    "public.example": ["93.184.216.34"], "internal.example": ["10.0.0.5"], "both.example": ["93.184.216.34",
                                                                                          "192.168.1.1"],
    "v6.example": ["2606:4700::1111"], "v6local.example": ["fd00::1"], "localhost": ["127.0.0.1", "::1"]}))


@pytest.mark.parametrize(("url", "reason"), [
    ("file:///etc/passwd", "scheme file:// is not allowed (only http and https)"),
    ("ftp://public.example/x", "scheme ftp:// is not allowed"),
    ("gopher://public.example/", "scheme gopher:// is not allowed"),
    ("javascript:alert(1)", "scheme javascript:// is not allowed"),
    ("//public.example/x", "scheme (none) is not allowed"),
    ("http:///nohost", "URL has no host"),
    ("http://127.0.0.1:8080/", "host resolves to a loopback address"),
    ("http://localhost/", "host resolves to a loopback address"),
    ("http://2130706433/", "host resolves to a loopback address"),  # 127.0.0.1 as an integer
    ("http://0x7f.1/", "host resolves to a loopback address"),
    ("http://10.1/", "host resolves to a private address"),
    ("http://10.1.2.3/", "host resolves to a private address"),
    ("http://internal.example/", "host resolves to a private address"),
    ("http://both.example/", "host resolves to a private address"),  # any private answer refuses
    ("http://169.254.169.254/latest/meta-data/", "host resolves to a link-local address"),
    ("http://100.64.0.1/", "host resolves to a shared (carrier-grade NAT) address"),
    ("http://0.0.0.0/", "host resolves to an unspecified address"),
    ("http://224.0.0.1/", "host resolves to a multicast address"),
    ("http://[::1]/", "host resolves to a loopback address"),
    ("http://[fe80::1]/", "host resolves to a link-local address"),
    ("http://[fd00::1]/", "host resolves to a private address"),
    ("http://v6local.example/", "host resolves to a private address"),
    ("http://[::ffff:192.168.0.1]/", "host resolves to a private address"),  # IPv4-mapped IPv6
    ("http://nowhere.example/", "host nowhere.example does not resolve"),
    ("http://user:secret@public.example/", "URL carries credentials"),
    ("http://public.example:99999/", "malformed URL"),
])
def test_unsafe_urls_are_refused_with_a_reason(url: str, reason: str) -> None:
    with pytest.raises(UnsafeURL) as info:
        POLICY.check(url)
    assert str(info.value).startswith(reason)
    assert info.value.url == url


@pytest.mark.parametrize("url", ["https://public.example/watch?v=1", "http://PUBLIC.example./x",
                                 "https://[2606:4700::1111]/", "http://v6.example/"])
def test_public_urls_pass(url: str) -> None:
    POLICY.check(url)


def test_allowed_private_networks_and_domain_allowlist() -> None:
    settings = Settings(allowed_private_networks=["127.0.0.0/8", "fd00::/8"], domain_allowlist=["example", "news.org"])
    policy = UrlPolicy.from_settings(settings, resolver=_resolver({"a.example": ["127.0.0.2"],
                                                                   "b.news.org": ["fd00::7"],
                                                                   "c.example": ["10.0.0.1"]}))
    assert policy.check("http://a.example/") == "a.example"
    assert policy.check("http://b.news.org/") == "b.news.org"
    with pytest.raises(UnsafeURL, match="private address"):
        policy.check("http://c.example/")  # 10/8 is not in the allowed networks
    with pytest.raises(UnsafeURL, match="host evil.com is not in the domain allowlist"):
        policy.check("https://evil.com/")
    with pytest.raises(UnsafeURL, match="not in the domain allowlist"):
        policy.check("https://notnews.org/")  # a suffix, not a subdomain
    assert policy.is_allowed("http://a.example/") and not policy.is_allowed("file:///x")
    # with 127.0.0.0/8 allowed, an IPv4-mapped loopback is allowed too, but ::1 (IPv6 loopback) is not
    loopback = UrlPolicy.from_settings(Settings(allowed_private_networks=["127.0.0.0/8"]))
    loopback.check("http://[::ffff:127.0.0.1]/")
    with pytest.raises(UnsafeURL, match="loopback"):
        loopback.check("http://[::1]/")


# ------------------------------------------------------------------ ranking

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _cand(uid: str, views: int | None, hours: float | None, channel: str | None = None) -> Candidate:
    published = NOW - timedelta(hours=hours) if hours is not None else None
    return Candidate(video_uid=uid, url=f"https://x.example/{uid}", views=views, published=published,
                     channel_id=channel)


def test_rank_by_views_per_hour() -> None:
    ranked = rank_candidates([_cand("a:slow", 10_000, 100), _cand("a:fast", 5_000, 1), _cand("a:mid", 2_000, 2),
                              _cand("a:noviews", None, 1), _cand("a:nodate", 1_000_000, None)], now=NOW)
    assert [c.video_uid for c in ranked] == ["a:fast", "a:mid", "a:slow", "a:noviews", "a:nodate"]
    assert ranked[0].views_per_hour == 5_000 and ranked[0].rank == 1 and ranked[0].rank_reason == "5,000 views/h"
    assert ranked[3].views_per_hour is None and ranked[3].rank_reason == "no view counter"
    assert ranked[4].rank_reason == "no view counter or upload time" and ranked[4].age_h is None


def test_rank_minutes_old_video_is_not_infinite() -> None:
    (video,) = rank_candidates([_cand("a:new", 100, 0.01)], now=NOW)
    assert video.views_per_hour == pytest.approx(400)  # age floored at 15 minutes


def test_rank_weighs_the_channels_usual_views() -> None:
    # a small channel's video at 10x its usual outranks a big channel's video at its usual rate
    small = _cand("a:small", 1_500, 1, channel="small")
    big = _cand("a:big", 3_000, 1, channel="big")
    known = {"small": [150.0, 150.0, 150.0], "big": [3_000.0, 3_000.0, 3_000.0]}
    ranked = rank_candidates([big, small], known_rates=known, now=NOW)
    assert [c.video_uid for c in ranked] == ["a:small", "a:big"]
    assert small.channel_ratio == pytest.approx(10) and big.channel_ratio == pytest.approx(1)
    assert "10.0x the channel's usual 150" in small.rank_reason
    # too few samples: no baseline, plain growth
    lone = rank_candidates([_cand("a:lone", 100, 1, channel="new")], known_rates={"new": [1.0]}, now=NOW)[0]
    assert lone.channel_ratio is None and lone.rank_score == 100


def test_rank_uses_the_channels_other_videos_in_the_run() -> None:
    videos = [_cand(f"a:{i}", 100, 1, channel="c") for i in range(3)] + [_cand("a:hot", 1_000, 1, channel="c")]
    ranked = rank_candidates(videos, now=NOW)
    assert ranked[0].video_uid == "a:hot" and ranked[0].channel_ratio == pytest.approx(10)


# ------------------------------------------------------------------ relevance

@pytest.fixture(scope="module")
def scorer() -> RelevanceScorer:
    return RelevanceScorer.shared(Settings())


@pytest.mark.slow
def test_relevance_separates_political_from_other_text(scorer: RelevanceScorer) -> None:
    political = ["Senator accuses the president of election fraud in a heated debate",
                 "Prime minister resigns after leaked audio scandal",
                 "Candidate caught on tape: shocking speech at campaign rally",
                 "Parliament votes on new immigration law"]
    other = ["Cute cat plays the piano", "Easy 10 minute pasta recipe", "Top 10 goals of the football season",
             "Unboxing the new smartphone", "Premier League highlights: all the goals"]
    threshold = Settings().relevance_threshold
    scores = scorer.score(political + other)
    assert all(s.score >= threshold for s in scores[:4]), scores[:4]
    assert all(s.score < threshold for s in scores[4:]), scores[4:]
    assert scores[0].reason.startswith("topic '")


@pytest.mark.slow
def test_relevance_keyword_lexicon_for_other_languages(scorer: RelevanceScorer) -> None:
    german, russian, chinese, empty = scorer.score(["Wahlbetrug bei der Bundestagswahl? Kanzler unter Druck",
                                                    "Выборы президента: итоги голосования", "总统选举结果公布", ""])
    assert german.score == 0.8 and german.reason == "keyword 'wahlbetrug' (de)"
    assert russian.reason.startswith("keyword 'выборы'") and chinese.reason.startswith("keyword ")
    assert empty.score == 0.0 and empty.reason == "no title or description"


@pytest.mark.slow
def test_apply_relevance_skips_with_the_reason(scorer: RelevanceScorer) -> None:
    cat = Candidate(video_uid="a:1", url="https://x.example/1", title="Cute cat plays the piano")
    vote = Candidate(video_uid="a:2", url="https://x.example/2", title="Election night: the votes are counted",
                     subtitles="the governor conceded the race")
    done = Candidate(video_uid="a:3", url="https://x.example/3").decide("failed", "page not found (HTTP 404)")
    apply_relevance([cat, vote, done], scorer, 0.3)
    assert cat.status == "skipped" and cat.status_reason == f"skipped: not political ({cat.relevance_score:.2f} < 0.30)"
    assert vote.status is None and vote.relevance_score >= 0.3
    assert done.relevance_score is None and done.status_reason == "failed: page not found (HTTP 404)"


def test_relevance_settings_topics_and_keywords_file(tmp_path: Path) -> None:
    keywords = tmp_path / "kw.yaml"
    keywords.write_text("sw: [uchaguzi]\n")
    settings = Settings(relevance_topics=["farming subsidies"], relevance_keywords_file=keywords)
    scorer = RelevanceScorer.from_settings(settings)
    assert scorer.topics == ("farming subsidies",)
    assert scorer.keyword("Matokeo ya Uchaguzi mkuu") == ("uchaguzi", "sw")
    assert scorer.keyword("Premier League") is None
    keywords.write_text("- not a mapping\n")
    from pipeline._exceptions import ConfigError
    with pytest.raises(ConfigError, match="expected"):
        RelevanceScorer.from_settings(settings)


# ------------------------------------------------------------------ store, caps, ids, errors

def test_media_store_paths_and_idempotent_put(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not really a video, but bytes are bytes")
    sha = hashlib.sha256(clip.read_bytes()).hexdigest()
    store = MediaStore(str(tmp_path / "store"))
    assert MediaStore.relative_path(sha, "MP4") == f"{sha[:2]}/{sha}.mp4"
    uri = store.put(clip)
    assert uri == f"file://{tmp_path}/store/{sha[:2]}/{sha}.mp4"
    assert (tmp_path / "store" / sha[:2] / f"{sha}.mp4").read_bytes() == clip.read_bytes()
    assert store.put(clip, sha256=sha, ext="mp4") == uri and store.exists(sha, "mp4")
    assert sha256_file(clip) == sha
    assert not list((tmp_path / "store" / sha[:2]).glob(".*partial"))
    memory = MediaStore("memory://vigil-test/media")
    assert memory.put(clip) == f"memory:///vigil-test/media/{sha[:2]}/{sha}.mp4"
    with pytest.raises(ValueError, match="sha256"):
        MediaStore.relative_path("abc", "mp4")
    with pytest.raises(ValueError, match="extension"):
        MediaStore.relative_path(sha, "../x")


def test_declared_caps_refuse_before_download() -> None:
    settings = Settings(max_download_mb=200, max_duration_s=1800)
    ok = Candidate(video_uid="a:1", url="https://x.example/1", duration_s=60, filesize=10 * 2**20)
    check_declared_caps(ok, settings)
    with pytest.raises(DownloadRefused, match=r"^larger than 200 MB cap \(350.0 MB declared\)$"):
        check_declared_caps(ok.model_copy(update={"filesize": 350 * 2**20}), settings)
    with pytest.raises(DownloadRefused, match=r"^longer than 1800 s cap \(3,600 s\)$"):
        check_declared_caps(ok.model_copy(update={"duration_s": 3600}), settings)


def test_video_uid_and_reason_kinds() -> None:
    assert video_uid("Youtube", "abc123") == "youtube:abc123"
    assert video_uid("BiliBili", "BV1") == "bilibili:BV1"
    assert video_uid("Some-IE", "x") == "some_ie:x"
    assert _reason_kind("refused: larger than 200 MB cap (350.0 MB)") == "refused: larger than 200 MB cap"
    assert _reason_kind("failed: page not found (HTTP 404)") == "failed: page not found"
    assert _reason_kind("skipped: not political (0.12 < 0.30)") == "skipped: not political"


@pytest.mark.parametrize(("message", "reason", "transient"), [
    ("ERROR: [generic] x: Unable to download webpage: HTTP Error 404: Not Found", "page not found (HTTP 404)", False),
    ("ERROR: HTTP Error 503: Service Unavailable", "platform error (HTTP 503)", True),
    ("ERROR: HTTP Error 429: Too Many Requests", "rate limited by the platform (HTTP 429)", True),
    ("ERROR: [generic] x: Unable to download webpage: [Errno 111] Connection refused",
     "server unreachable (connection refused)", True),
    ("ERROR: Read timed out.", "network timeout", True),
    ("ERROR: Unsupported URL: https://x.example/", "no video found at this URL", False),
    ("ERROR: [youtube] x: Sign in to confirm you're not a bot", "platform requires a login", False),
])
def test_ytdlp_errors_are_translated(message: str, reason: str, transient: bool) -> None:
    error = translate_ytdlp_error(Exception(message), url="https://x.example/")
    assert isinstance(error, DownloadFailed) and str(error).startswith(reason) and error.transient is transient
    refusal = UnsafeURL("host resolves to a private address", url="http://10.0.0.1/")
    assert translate_ytdlp_error(Exception("wrapped"), url="u", refusals=[refusal]) is refusal


def test_subtitle_text_from_webvtt() -> None:
    from pipeline.crawl._discover import _vtt_to_text

    vtt = ("WEBVTT\nKind: captions\nLanguage: en\n\n1\n00:00:00.000 --> 00:00:02.000\n<c>The senator</c> said\n\n"
           "2\n00:00:02.000 --> 00:00:04.000\nThe senator said\nthe ballots were counted\n")
    assert _vtt_to_text(vtt) == "The senator said the ballots were counted"


def test_connection_time_check_uses_its_own_lookup() -> None:
    policy = UrlPolicy(resolver=_resolver({"flip.example": ["93.184.216.34"]}),
                       connect_resolver=_resolver({"flip.example": ["93.184.216.34", "10.0.0.1"],
                                                   "ok.example": ["2606:4700::1111", "93.184.216.34"]}))
    policy.check("http://flip.example/")  # looks public when the URL is checked
    with pytest.raises(UnsafeURL, match="host resolves to a private address") as info:
        policy.vet_connection("flip.example", 80)  # but not when the socket opens
    assert info.value.url == "flip.example:80"
    assert policy.vet_connection("ok.example", 443) == ["2606:4700::1111", "93.184.216.34"]  # resolver's order
    with pytest.raises(UnsafeURL, match="loopback"):
        policy.vet_connection("2130706433", 80)


# ------------------------------------------------------------------ the download budget


@pytest.mark.parametrize(("lag", "budget"), [(0, 20), (150, 20), (190, 10), (199, 2), (200, 2), (5000, 2),
                                             (None, 20)])
def test_the_budget_tops_the_workers_queue_up_to_its_target(lag: int | None, budget: int) -> None:
    from pipeline.crawl import download_budget

    settings = Settings(crawl_max_downloads=20, crawl_min_downloads=2, crawl_queue_target=200)
    assert download_budget(settings, lag) == budget


def test_without_a_queue_target_the_budget_is_constant() -> None:
    from pipeline.crawl import download_budget, queue_lag

    settings = Settings(crawl_max_downloads=7, crawl_queue_target=0)
    assert queue_lag(settings) is None  # Kafka is not even asked
    assert download_budget(settings, 10_000) == 7
    assert download_budget(Settings(crawl_max_downloads=1, crawl_min_downloads=5), 0) == 1  # the ceiling rules
