"""The real DAG (dags/crawl_trending.py) run with `dag.test()` against the real stack and the fake platform."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import fsspec
import pytest
from support.crawl import ROOT, consume_jobs, populate, settings_env

from pipeline import Settings, make_es_client

pytestmark = [pytest.mark.kafka, pytest.mark.elasticsearch, pytest.mark.slow]


def _documents(settings: Settings) -> dict[str, dict[str, Any]]:
    es = make_es_client(settings)
    try:
        es.indices.refresh(index=settings.index("videos"))
        hits = es.search(index=settings.index("videos"), size=100, query={"match_all": {}})["hits"]["hits"]
        return {hit["_id"]: hit["_source"] for hit in hits}
    finally:
        es.close()


def _snapshots(settings: Settings) -> list[dict[str, Any]]:
    es = make_es_client(settings)
    try:
        es.indices.refresh(index=settings.index("spread"))
        hits = es.search(index=settings.index("spread"), size=100, query={"match_all": {}})["hits"]["hits"]
        return [hit["_source"] for hit in hits]
    finally:
        es.close()


def _by_platform_id(docs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for doc in docs.values():
        key = doc.get("platform_id") or doc["url"]["full"].rsplit("/", 1)[-1]
        out[key] = doc
    return out


def _run_dag(airflow_home: Path) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(ROOT / "dags"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag("crawl_trending")
    return dag.test()


def test_crawl_dag_on_the_stack(airflow_home: Path, crawl_settings: Settings, platform: Any, media: Any,
                                tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = populate(platform, media)
    watchlist = tmp_path / "watchlist.yaml"
    watchlist.write_text(f"name: local-trending\nentries:\n  - kind: feed\n    target: {platform.feed_url}\n"
                         f"    language: en\n    tags: [test, trending]\n")
    for key, value in settings_env(crawl_settings).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("VIGIL_WATCHLIST", str(watchlist))

    run = _run_dag(airflow_home)
    assert run.state == "success"

    docs = _documents(crawl_settings)
    by_id = _by_platform_id(docs)
    for video_id, outcome in expected.items():
        doc = by_id.get(video_id)
        assert doc is not None, f"no document for {video_id}: {sorted(by_id)}"
        if outcome == "queued":
            assert doc["status"] == "queued", (video_id, doc["status_reason"])
        else:
            assert doc["status_reason"].startswith(outcome), (video_id, doc["status_reason"])
    hostile = [d for d in docs.values() if d["url"]["full"] in ("file:///etc/passwd", "http://[::1]:9/watch/x")]
    assert sorted(d["status_reason"] for d in hostile) == [
        "refused: host resolves to a loopback address", "refused: scheme file:// is not allowed (only http and https)"]

    # downloaded: media in the store with the right hash, counters as the page said, jobs queued
    queued = {k: by_id[k] for k in ("senate", "minister", "wahl")}
    for video_id, doc in queued.items():
        assert doc["video_uid"] == f"generic:{video_id}"
        assert doc["platform"] == "generic"
        with fsspec.open(doc["media"]["uri"], "rb") as handle:
            data = handle.read()
        assert hashlib.sha256(data).hexdigest() == doc["media"]["sha256"]
        assert data == platform.videos[video_id].media.read_bytes()
        assert doc["media"]["uri"].endswith(f"/{doc['media']['sha256'][:2]}/{doc['media']['sha256']}.mp4")
        assert doc["relevance"]["score"] >= crawl_settings.relevance_threshold
        assert doc["watchlist"]["name"] == "local-trending" and doc["tags"] == ["test", "trending"]
        assert doc["channel"]["name"] == platform.videos[video_id].author
        assert doc["published"] is not None
    assert queued["senate"]["spread"]["views"] == 90_000
    assert queued["minister"]["spread"]["likes"] is None  # withheld by the page: null, never 0
    assert queued["minister"]["spread"]["comments"] == 10
    assert queued["wahl"]["relevance"]["reason"].startswith("keyword ")
    assert by_id["pasta"]["spread"]["views"] is None
    assert by_id["cat"]["relevance"]["score"] < crawl_settings.relevance_threshold
    assert by_id["cat"]["status_reason"].startswith("skipped: not political (0.")
    ranks = {k: by_id[k]["rank"]["position"] for k in ("senate", "minister", "wahl")}
    assert ranks["senate"] < ranks["minister"] < ranks["wahl"]  # fastest-spreading first

    jobs = consume_jobs(crawl_settings, expect=3)
    assert sorted(j.video_uid for j in jobs) == ["generic:minister", "generic:senate", "generic:wahl"]
    for job in jobs:
        doc = docs[job.video_uid]
        assert job.media_sha256 == doc["media"]["sha256"] and job.media_uri == doc["media"]["uri"]
        assert job.source.platform == "generic" and job.source.url == doc["url"]["full"]
        assert job.source.watchlist == "local-trending"
    assert jobs[0].source.views is not None

    snapshots = _snapshots(crawl_settings)
    snap = {s["video_uid"]: s for s in snapshots}
    assert {"generic:senate", "generic:minister", "generic:wahl"} <= set(snap)
    assert snap["generic:minister"].get("likes") is None and "likes" in snap["generic:minister"]["counters_missing"]
    assert snap["generic:senate"]["views_per_hour"] > 0

    # a second run adds no documents, no jobs, no snapshots, and reads no known video page again
    pages_before = platform.page_requests("senate")
    media_before = platform.media_requests("senate")
    run = _run_dag(airflow_home)
    assert run.state == "success"
    assert set(_documents(crawl_settings)) == set(docs)
    assert len(consume_jobs(crawl_settings, expect=3, timeout_s=5)) == 3
    assert len(_snapshots(crawl_settings)) == len(snapshots)
    assert platform.page_requests("senate") == pages_before
    assert platform.media_requests("senate") == media_before


def test_crawl_dag_shape(airflow_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_CRAWL_SCHEDULE", "@hourly")
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(ROOT / "dags"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag("crawl_trending")
    assert dag.catchup is False and dag.start_date.tzinfo is not None and "crawl" in dag.tags
    assert dag.doc_md.lstrip().startswith("### Crawl trending political video")
    from pipeline._platforms import FAMILIES, pool_name

    per_family = {f"{step}_{family}" for step in ("entries", "discover", "chosen", "download") for family in FAMILIES}
    assert {t.task_id for t in dag.tasks} == {"load_entries", "triage", "chosen", "summarize"} | per_family
    for family in FAMILIES:  # one pool per platform family, shared with refresh_spread
        for step in ("discover", "download"):
            task = dag.get_task(f"{step}_{family}")
            assert task.is_mapped and task.pool == pool_name(family)
    assert "0 * * * *" in str(dag.timetable) or "hourly" in str(dag.timetable)


def test_crawl_dag_fails_fast_on_a_bad_watchlist(airflow_home: Path, crawl_settings: Settings, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("entries:\n  - kind: search\n    target: no prefix here\n")
    # the run reads the stored watchlists first (#23): on the stack, with none stored, the file is what it reads
    for key, value in settings_env(crawl_settings).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("VIGIL_WATCHLIST", str(bad))
    monkeypatch.setenv("VIGIL_CRAWL_TASK_RETRIES", "2")  # a configuration error is not retried anyway
    run = _run_dag(airflow_home)
    assert run.state == "failed"
    (ti,) = [t for t in run.get_task_instances() if t.task_id == "load_entries"]
    assert ti.state == "failed" and ti.try_number == 1


def test_a_watchlist_edited_in_the_console_is_what_the_next_run_reads(
        airflow_home: Path, crawl_settings: Settings, platform: Any, media: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Import, add, pause and edit in the real console (admin); analysts are refused; the real DAG then crawls the
    stored watchlist, not the VIGIL_WATCHLIST file, and each entry's run shows on the console's watchlist API."""
    from pipeline.crawl._health import entry_id
    from support.console import console_running, csrf_of, login

    populate(platform, media)
    with console_running(crawl_settings, tmp_path / "console.log") as base:
        root = login(base, "root")
        csrf = csrf_of(root.get(f"{base}/watchlists", timeout=10).text)
        senate, minister, wahl = (platform.page_url(v) for v in ("senate", "minister", "wahl"))
        imported = root.post(f"{base}/watchlists/import", timeout=30, data={
            "csrf_token": csrf, "text": f"name: console-list\nentries:\n  - kind: url\n    target: {senate}\n"
                                        f"  - kind: url\n    target: {minister}\n"})
        assert imported.status_code == 200 and "imported console-list (2 entries)" in imported.text
        added = root.post(f"{base}/watchlists/add", timeout=30, data={
            "csrf_token": csrf, "watchlist": "console-list", "kind": "url", "target": wahl, "tags": "added, de"})
        assert "added " in added.text, added.text[-2000:]
        refused = root.post(f"{base}/watchlists/add", timeout=30, data={
            "csrf_token": csrf, "watchlist": "console-list", "kind": "search", "target": "ytsearchdate5:vote"})
        assert refused.status_code == 400 and "has no search key &#39;ytsearchdate&#39;" in refused.text
        for action, target, extra in (("pause", minister, {}), ("save", senate, {"tags": "edited", "limit": "1"})):
            changed = root.post(f"{base}/watchlists/entry", timeout=30, data={
                "csrf_token": csrf, "watchlist": "console-list", "entry_id": entry_id("console-list", "url", target),
                "action": action, **extra})
            assert changed.status_code == 200 and "not changed" not in changed.text, changed.text[-2000:]
        exported = root.get(f"{base}/watchlists/export", params={"name": "console-list"}, timeout=10).text
        assert "paused: true" in exported and "- edited" in exported

        analyst = login(base, "ana")
        assert analyst.get(f"{base}/watchlists", timeout=10).status_code == 403
        ana_csrf = csrf_of(analyst.get(f"{base}/", timeout=10).text)
        assert analyst.post(f"{base}/watchlists/add", timeout=10, data={
            "csrf_token": ana_csrf, "watchlist": "console-list", "kind": "url",
            "target": platform.page_url("cat")}).status_code == 403
        assert analyst.get(f"{base}/api/watchlists", timeout=10).status_code == 403

        # the file names the whole feed; the stored watchlist wins
        watchlist = tmp_path / "watchlist.yaml"
        watchlist.write_text(f"name: from-file\nentries:\n  - kind: feed\n    target: {platform.feed_url}\n")
        for key, value in settings_env(crawl_settings).items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("VIGIL_WATCHLIST", str(watchlist))
        run = _run_dag(airflow_home)
        assert run.state == "success"

        by_id = _by_platform_id(_documents(crawl_settings))
        assert set(by_id) == {"senate", "wahl"}, sorted(by_id)  # minister paused, the file's feed not read
        assert by_id["senate"]["status"] == "queued" and by_id["senate"]["tags"] == ["edited"]
        assert by_id["wahl"]["tags"] == ["added", "de"] and by_id["wahl"]["watchlist"]["name"] == "console-list"
        assert platform.page_requests("minister") == 0 and platform.page_requests("cat") == 0

        api = root.get(f"{base}/api/watchlists", timeout=10).json()["watchlists"]
        rows = {e["target"]: e for e in api[0]["entries"]}
        assert rows[senate]["runs"][0]["found"] == 1 and rows[senate]["runs"][0]["queued"] == 1
        assert rows[senate]["runs"][0]["extractor"] == "generic" and rows[senate]["last_worked"]
        assert rows[minister]["paused"] and rows[minister]["runs"] == []
        page = root.get(f"{base}/watchlists", timeout=10).text
        assert "not crawled yet" in page and "1 / 1 / 0 · generic" in page
