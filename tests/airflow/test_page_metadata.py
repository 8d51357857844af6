"""Metadata from the page itself whichever yt-dlp extractor claims it: JSON-LD VideoObject beside a <video> tag (the
html5 extractor), OpenGraph-only pages, pages with several videos, counters in each schema.org form; no " (1)"."""
from __future__ import annotations

from typing import Any

import pytest

from support.fakeplatform import FakeVideo
from pipeline import Settings
from pipeline.crawl import WatchlistEntry, discover_entry

pytestmark = pytest.mark.slow

ALL_EXTRACTORS = Settings(allowed_private_networks=["127.0.0.0/8"], crawl_retry_wait_s=0.05,
                          crawl_fetch_subtitles=False)


def _discover(platform: Any, video_id: str) -> list[Any]:
    result = discover_entry(WatchlistEntry(kind="url", target=platform.page_url(video_id)), ALL_EXTRACTORS)
    assert result.error is None
    return result.candidates


@pytest.mark.parametrize("form", ["url", "type", "text"])
def test_video_tag_page_keeps_json_ld_metadata(platform: Any, media: Any, form: str) -> None:
    video = platform.add(FakeVideo("v", "Minister resigns (live) – full statement", "What she said.",
                                   media=media.clip(1), views=12_345, likes=678, comments=9, layout="video-tag",
                                   counters_form=form, author="Capital TV"))
    (c,) = _discover(platform, "v")
    assert c.platform == "html5mediaembed"  # yt-dlp's html5 extractor claimed the page...
    assert c.title == video.title and c.description == "What she said."  # ...the page named the video
    assert (c.views, c.likes, c.comments) == (12_345, 678, 9)
    assert c.channel == "Capital TV" and c.channel_id.endswith("/channel/Capital-TV")
    assert c.published is not None and abs((c.published - video.uploaded).total_seconds()) < 1
    assert c.media_urls == [platform.media_url("v")] and c.status is None


def test_legacy_interaction_count_and_withheld_counters(platform: Any, media: Any) -> None:
    platform.add(FakeVideo("old", "Old style page", media=media.clip(1), views=4_321, layout="video-tag",
                           counters_form="legacy"))
    platform.add(FakeVideo("none", "Counters withheld", media=media.clip(1), views=None, likes=None, comments=None,
                           layout="video-tag"))
    (old,) = _discover(platform, "old")
    assert old.views == 4_321 and old.likes is None and old.title == "Old style page"
    (none,) = _discover(platform, "none")
    assert (none.views, none.likes, none.comments) == (None, None, None)  # unknown, never 0


def test_opengraph_only_page(platform: Any, media: Any) -> None:
    video = platform.add(FakeVideo("og", "Debate night: the candidates face off", "Two hours of debate.",
                                   media=media.clip(1), layout="opengraph"))
    (c,) = _discover(platform, "og")
    assert c.title == video.title and c.description == "Two hours of debate."
    assert c.channel == "Fake Platform" and c.published is not None
    assert c.views is None  # OpenGraph declares no counters


def test_page_with_several_videos(platform: Any, media: Any) -> None:
    platform.add(FakeVideo("a", "Election night: first results", media=media.clip(1), views=111, in_feed=False))
    platform.add(FakeVideo("b", "Cooking with the family", media=media.clip(1.5), views=222, author="Kitchen",
                           in_feed=False))
    platform.multi_pages["page"] = ["a", "b"]
    first, second = _discover(platform, "page")
    assert (first.title, first.views, first.media_urls) == ("Election night: first results", 111,
                                                            [platform.media_url("a")])
    assert (second.title, second.views, second.channel) == ("Cooking with the family", 222, "Kitchen")
    assert first.video_uid != second.video_uid


def test_page_without_declared_metadata_loses_only_the_suffix(platform: Any, media: Any) -> None:
    """A bare <video> tag: the title is the page's, without the entry number yt-dlp appends."""
    video = platform.add(FakeVideo("bare", "Bare page", media=media.clip(1), layout="video-tag"))
    platform.render_page = lambda v: (  # type: ignore[method-assign]
        f"<html><head><title>{v.title}</title></head><body>{platform._video_tag(v)}</body></html>").encode()
    (c,) = _discover(platform, "bare")
    assert c.title == video.title and c.views is None
