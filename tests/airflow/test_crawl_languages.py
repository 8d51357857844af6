"""The crawl in 15 languages on the real stack, as `vigil crawl` and as the real DAG under `dag.test()`, with every
yt-dlp extractor allowed (so yt-dlp's html5 extractor claims the ``<video>``-tag pages, as on news sites): political
videos queued, the others skipped, titles exactly as the pages declare them, counters kept, hostile text stored
intact and printed harmless."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.crawl import ROOT, consume_jobs, settings_env
from support.languages import HOSTILE_CHANNEL, HOSTILE_TITLE, TITLES, expected_statuses, populate_languages
from support.spread import documents
from typer.testing import CliRunner

from pipeline import Settings
from pipeline._settings import get_settings
from pipeline.cli import app

pytestmark = [pytest.mark.kafka, pytest.mark.elasticsearch, pytest.mark.slow]

LANGUAGE_SETTINGS = dict(ytdlp_extractors=[], crawl_max_downloads=40, crawl_fetch_subtitles=False)


def _watchlist(tmp_path: Path, platform: Any) -> Path:
    path = tmp_path / "languages.yaml"
    path.write_text(f"name: languages\nentries:\n  - kind: feed\n    target: {platform.feed_url}\n    limit: 60\n")
    return path


def check_documents(settings: Settings, videos: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every video's document: status as expected, title exact, counters as the page declared them."""
    docs = documents(settings)
    by_title = {d.get("title"): d for d in docs.values()}
    expected = expected_statuses()
    for video_id, status in expected.items():
        video = videos[video_id]
        doc = by_title.get(video.title)
        assert doc is not None, f"{video_id}: no document titled {video.title!r}; titles {sorted(map(str, by_title))}"
        assert doc["status"] == status, (video_id, doc["status_reason"], doc.get("relevance"))
        assert not doc["title"].endswith(")") or video.title.endswith(")")  # no " (1)" from the html5 extractor
        if video.layout != "opengraph":
            spread = doc["spread"]
            views = video.views
            assert spread["views"] == views, (video_id, spread)
            if video.counters_form != "legacy":
                assert (spread["likes"], spread["comments"]) == (video.likes, video.comments), (video_id, spread)
            assert doc["channel"]["name"] == video.author, (video_id, doc["channel"])
        assert doc["published"] is not None, video_id
    assert len([d for d in docs.values() if d["status"] == "queued"]) == sum(
        1 for s in expected.values() if s == "queued")
    # the language is the title's, detected
    for lang in TITLES:
        assert by_title[videos[f"{lang}-pol"].title]["language"] == lang
    return docs


def test_vigil_crawl_in_fifteen_languages(make_crawl_settings: Any, platform: Any, media: Any, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    settings = make_crawl_settings(**LANGUAGE_SETTINGS)
    videos = populate_languages(platform, media)
    for key, value in settings_env(settings).items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    out = tmp_path / "summary.json"
    result = CliRunner().invoke(app, ["crawl", "--watchlist", str(_watchlist(tmp_path, platform)), "--json",
                                      str(out)], env={"COLUMNS": "250"})
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    docs = check_documents(settings, videos)

    summary = json.loads(out.read_text(encoding="utf-8"))
    queued = [v for v in summary["videos"] if v["status"] == "queued"]
    assert len(queued) == sum(1 for s in expected_statuses().values() if s == "queued")
    assert HOSTILE_TITLE in {v["title"] for v in summary["videos"]}  # the JSON keeps it whole
    hostile = next(d for d in docs.values() if d["title"] == HOSTILE_TITLE)  # and so does Elasticsearch
    assert hostile["channel"]["name"] == HOSTILE_CHANNEL
    # what the terminal got: no control characters, no bidi overrides
    assert "\x1b" not in result.output and "\u202e" not in result.output and "\x07" not in result.output
    jobs = consume_jobs(settings, expect=len(queued))
    assert sorted(j.video_uid for j in jobs) == sorted(v["video_uid"] for v in queued)
    assert HOSTILE_TITLE in {j.source.title for j in jobs}  # the job for the detectors keeps it whole too


def test_crawl_dag_in_fifteen_languages(airflow_home: Path, make_crawl_settings: Any, platform: Any, media: Any,
                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.dag_processing.dagbag import DagBag

    settings = make_crawl_settings(**LANGUAGE_SETTINGS)
    videos = populate_languages(platform, media)
    for key, value in settings_env(settings).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("VIGIL_WATCHLIST", str(_watchlist(tmp_path, platform)))
    bag = DagBag(str(ROOT / "dags"))
    assert not bag.import_errors, bag.import_errors
    run = bag.get_dag("crawl_trending").test()
    assert run.state == "success"
    check_documents(settings, videos)
    instances = {(ti.task_id, ti.map_index): ti for ti in run.get_task_instances()}
    # mapped tasks carry readable names: the entry, the video's title (printable)
    discover = [ti for (task_id, _), ti in instances.items() if task_id == "discover_other"]
    assert discover and all(ti.rendered_map_index == f"feed {platform.feed_url}" for ti in discover)
    downloads = [ti for (task_id, _), ti in instances.items() if task_id == "download_other"]
    names = {ti.rendered_map_index for ti in downloads}
    assert TITLES["ja"][0] in names and all(name and "\x1b" not in name for name in names)
