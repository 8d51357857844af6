"""Hostile platform text (rich markup, terminal control characters, bidi overrides, Slack control sequences) through
`vigil spread`, `vigil alerts`, the alert webhook and the Kibana saved searches, on the real stack: stored intact,
shown harmless. (`vigil crawl` with the same title: test_crawl_languages.py.)"""
from __future__ import annotations

import json
from typing import Any

import pytest
from support.crawl import settings_env
from support.languages import HOSTILE_CHANNEL, HOSTILE_TITLE
from support.spread import WebhookReceiver, documents, flag, make_due, seed_videos
from typer.testing import CliRunner

from support.fakeplatform import FakeVideo
from pipeline import make_es_client
from pipeline._settings import get_settings
from pipeline._text import markup_escape, plain, printable, slack_escape
from pipeline.alerts import slack_payload
from pipeline.cli import app
from pipeline.kibana import saved_objects

CONTROLS = ("\x1b", "\x07", "\r", "\u202e", "\u202c", "\u2066", "\u2069")


def test_printable_makes_controls_and_bidi_visible() -> None:
    shown = printable(HOSTILE_TITLE)
    assert not any(c in shown for c in CONTROLS)
    assert "\\x1b[2J" in shown and "\\u202eevil\\u202c" in shown and "[/bold][red]Senator[/red]" in shown
    assert printable("a\nb\tc") == "a b c" and printable(None) == ""
    assert printable(shown) == shown  # idempotent
    assert plain(HOSTILE_TITLE).plain == shown  # a rich Text: never parsed as markup
    from rich.console import Console

    console = Console(record=True, width=300, color_system=None)
    console.print(markup_escape(HOSTILE_TITLE))  # would raise MarkupError unescaped
    console.print(plain(HOSTILE_TITLE))
    out = console.export_text()
    assert out.count("[/bold][red]Senator[/red]") == 2 and not any(c in out for c in CONTROLS)
    assert slack_escape("<!channel> & <http://x|y>") == "&lt;!channel&gt; &amp; &lt;http://x|y&gt;"


def test_webhook_text_escapes_hostile_titles_and_links() -> None:
    alert = {"rule": {"id": "risky", "name": "Risky", "severity": "high"}, "title": HOSTILE_TITLE,
             "video_uid": "generic:hostile", "alert_id": "a1", "reasons": ["channel " + HOSTILE_CHANNEL],
             "url": {"full": "https://example.org/watch?v=1&t=2|<!here>"}}
    payload = slack_payload(alert)
    blob = json.dumps(payload, ensure_ascii=False)
    assert not any(c in blob for c in CONTROLS)
    section = payload["blocks"][1]["text"]["text"]
    # Slack parses `text` and mrkdwn fields (mentions, links): escaped there; the header is plain_text (shown as is)
    for parsed in (payload["text"], section, payload["blocks"][2]["elements"][0]["text"]):
        assert "<!channel>" not in parsed and "<!here>" not in parsed
    assert "&lt;!channel&gt;" in payload["text"] and "&lt;!channel&gt;" in section
    assert "<https://" not in section  # a URL that would break out of <url|label> is not made a link
    assert alert["title"] == HOSTILE_TITLE  # the alert itself is untouched


@pytest.mark.kafka
@pytest.mark.elasticsearch
@pytest.mark.slow
def test_hostile_title_through_spread_alerts_and_kibana(make_crawl_settings: Any, platform: Any, media: Any,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    with WebhookReceiver().running() as receiver:
        settings = make_crawl_settings(alert_webhooks=[receiver.url], spread_min_interval_s=0.0,
                                       crawl_fetch_subtitles=False)
        platform.add(FakeVideo("hostile", HOSTILE_TITLE, media=media.clip(1), views=99_000, author=HOSTILE_CHANNEL,
                               layout="video-tag"))
        uid = seed_videos(platform, settings, ["hostile"])["hostile"]
        flag(settings, uid, 0.95)
        make_due(settings)  # `vigil spread` reads at the real time: as if the video's next checkpoint had come
        for key, value in settings_env(settings).items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()
        runner = CliRunner()
        spread = runner.invoke(app, ["spread"], env={"COLUMNS": "300"})
        assert spread.exit_code == 0, spread.output
        assert "[/bold][red]Senator[/red]" in spread.output  # shown as written, not eaten as markup
        assert not any(c in spread.output for c in CONTROLS)

        alerts = runner.invoke(app, ["alerts"], env={"COLUMNS": "300"})
        get_settings.cache_clear()
        assert alerts.exit_code == 0, alerts.output
        assert not any(c in alerts.output for c in CONTROLS)
        assert receiver.received, alerts.output
        for body in (r["body"] for r in receiver.received):
            blob = json.dumps(body, ensure_ascii=False)
            assert not any(c in blob for c in CONTROLS)
            assert "<!channel>" not in body["text"] and "&lt;!channel&gt; &amp; co" in body["text"]

    doc = documents(settings)[uid]
    assert doc["title"] == HOSTILE_TITLE and doc["channel"]["name"] == HOSTILE_CHANNEL  # stored intact
    es = make_es_client(settings)
    try:
        es.indices.refresh(index=settings.index("alerts"))
        stored = es.search(index=settings.index("alerts"), query={"term": {"video_uid": uid}})["hits"]["hits"]
        assert stored and all(h["_source"]["title"] == HOSTILE_TITLE for h in stored)
        # the Kibana saved searches, run as Kibana runs them: the title comes back whole
        objects = saved_objects(settings)
        views = {o["id"]: o["attributes"]["title"] for o in objects if o["type"] == "index-pattern"}
        titles: dict[str, list[str]] = {}
        for obj in (o for o in objects if o["type"] == "search"):
            source = json.loads(obj["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
            refs = {r["name"]: r["id"] for r in obj["references"]}
            index = views[refs[source["indexRefName"]]]
            query = {"bool": {"filter": [f["query"] for f in source["filter"]]}}
            hits = es.search(index=index, query=query, size=100)["hits"]["hits"]
            titles[obj["attributes"]["title"]] = [h["_source"].get("title") for h in hits
                                                  if h["_source"].get("video_uid") == uid]
    finally:
        es.close()
    flagged = "Vigil: flagged videos by risk"
    assert titles[flagged] == [HOSTILE_TITLE], titles
    assert any(HOSTILE_TITLE in found for name, found in titles.items() if name != flagged), titles
