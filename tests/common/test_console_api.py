"""The console's HTTP surface on the real Elasticsearch, with a real `vigil console` process (this environment's:
the console runs on either side): health, login and its throttling, bearer tokens and their revocation, roles on the
API as on the pages, CSRF on forms, the queue's order and paging, range requests for the media, escaping."""
from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from support.console import PASSWORDS, ROOT, console_running, csrf_of, env_for, login

from support.stack import remove_test_objects, settings_for
from pipeline import make_es_client
from pipeline._elasticsearch import apply_templates
from pipeline.console import Accounts

pytestmark = [pytest.mark.elasticsearch]


def _video(uid: str, score: float | None, vph: float | None = None, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"video_uid": uid, "platform": uid.split(":")[0], "title": f"video {uid}",
                           "status": "scored", "fused": {"score": score, "verdict": "suspicious"}}
    if vph is not None:
        doc["spread"] = {"views_per_hour": vph}
    doc.update(extra)
    return doc


@pytest.fixture(scope="module")
def console(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("console-api")
    settings = settings_for(stack_env, tmp, console_login_max_failures=3, console_page_size=3)
    es = make_es_client(settings)
    apply_templates(es, settings)
    media = Path(settings.media_store)
    payload = bytes(range(256)) * 40  # 10,240 bytes standing in for an MP4
    sha = "ab" * 32
    (media / sha[:2]).mkdir(parents=True)
    (media / sha[:2] / f"{sha}.mp4").write_bytes(payload)
    docs = [
        _video("youtube:fast", 0.5, 1000.0),  # risk 500
        _video("youtube:hot", 0.9, 100.0),  # risk 90
        _video("youtube:judged", 0.05, 200.0, analyst={"verdict": "manipulated", "analyst": "ana"}),  # risk 200
        _video("youtube:cleared", 0.99, 5000.0, analyst={"verdict": "authentic", "analyst": "ana"}),  # last
        _video("file:submitted", 0.7, media={"sha256": sha}),  # growth unknown, after the ranked ones
        _video("file:low", 0.2, title="<img src=x onerror=alert(1)>"),
        _video("tiktok:unscored", None, 50.0, status="queued"),
    ]
    # face crops beside the media (as the worker stores them), a spread history and a re-upload cluster
    faces = media / sha[:2] / f"{sha}.evidence" / "suite-1" / "faces"
    faces.mkdir(parents=True)
    (faces / "1500.jpg").write_bytes(b"\xff\xd8\xff\xe0 a face crop")
    docs[4].update(detection_id="det-1", cluster={"id": "c-1", "size": 2, "original": True},
                   url={"full": "javascript:alert(1)"})
    docs[5].update(cluster={"id": "c-1", "size": 2, "original": False}, url={"full": "https://example.org/v/low"})
    es.index(index=settings.index("detections"), id="det-1", document={
        "video_uid": "file:submitted", "media_sha256": sha, "suite_version": "suite-1", "duration_s": 8.0,
        "fused": {"score": 0.7, "verdict": "suspicious", "timeline": [{"start_s": 0, "end_s": 4, "score": 0.2},
                                                                      {"start_s": 4, "end_s": 8, "score": 0.8}]},
        "segments": [{"start_s": 4, "end_s": 8, "score": 0.8, "detectors": ["lipsync"], "reasons": ["out of sync"]}],
        "detectors": {"lipsync": {"version": "1", "applicable": True, "score": 0.8, "evidence": {"offset_ms": 300},
                                  "timeline": [{"start_s": 4, "end_s": 8, "score": 0.8}]}},
        "evidence_uris": [faces.joinpath("1500.jpg").as_uri(), (media / sha[:2] / f"{sha}.mp4").as_uri()]})
    for hours, views in ((3, 100), (2, 900), (1, 4000)):
        es.index(index=settings.index("spread"), document={
            "video_uid": "file:submitted", "views": views, "views_per_hour": views / 2,
            "@timestamp": (datetime.now(UTC) - timedelta(hours=hours)).isoformat()})
    for doc in docs:
        es.index(index=settings.index("videos"), id=doc["video_uid"], document=doc)
    es.indices.refresh(index=[settings.index("videos"), settings.index("detections"), settings.index("spread")])
    try:
        with console_running(settings, tmp / "console.log") as base:
            yield {"settings": settings, "es": es, "base": base, "payload": payload}
    finally:
        es.close()
        remove_test_objects(settings)


def _token(console: dict[str, Any], name: str = "ana") -> str:
    return Accounts(console["es"], console["settings"]).new_token(name)[0]


def test_health_needs_no_login_and_tells_nothing_secret(console: dict[str, Any]) -> None:
    response = requests.get(f"{console['base']}/healthz", timeout=10)
    assert response.status_code == 200 and response.json() == {"status": "ok", "elasticsearch": "ok"}
    password = console["settings"].es_password.get_secret_value()
    for path in ("/healthz", "/login"):
        assert password not in requests.get(f"{console['base']}{path}", timeout=10).text


def test_queue_order_tiers_and_paging(console: dict[str, Any]) -> None:
    auth = {"Authorization": f"Bearer {_token(console)}"}
    pages = [requests.get(f"{console['base']}/api/queue", params={"page": n}, headers=auth, timeout=10).json()
             for n in (1, 2, 3)]
    order = [v["video_uid"] for p in pages for v in p["items"]]
    # ranked by score × views/hour (an analyst's manipulated = 1), then growth unknown by score, then authentic
    assert order == ["youtube:fast", "youtube:judged", "youtube:hot", "tiktok:unscored", "file:submitted", "file:low",
                     "youtube:cleared"], order
    assert pages[0]["total"] == 7 and pages[0]["pages"] == 3 and pages[0]["tiers"] == {
        "growing": 4, "growth_unknown": 2, "judged_authentic": 1}  # unscored but growing: risk 0, still ranked
    assert [v["video_uid"] for v in requests.get(f"{console['base']}/api/queue", params={"platform": "file"},
                                                  headers=auth, timeout=10).json()["items"]] == [
        "file:submitted", "file:low"]
    none = requests.get(f"{console['base']}/api/queue", params={"analyst": "none", "size": 50}, headers=auth,
                        timeout=10).json()
    assert {v["video_uid"] for v in none["items"]} == {"youtube:fast", "youtube:hot", "tiktok:unscored",
                                                        "file:submitted", "file:low"}


def test_tokens_roles_and_revocation(console: dict[str, Any]) -> None:
    base, settings = console["base"], console["settings"]
    assert requests.get(f"{base}/api/queue", timeout=10).status_code == 401
    assert requests.get(f"{base}/api/queue", headers={"Authorization": "Bearer vgl_nonsense"},
                        timeout=10).status_code == 401
    # the CLI prints a token that works, and revokes it
    env = env_for(settings)
    made = subprocess.run([sys.executable, "-m", "pipeline", "console", "token", "ana"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    auth = {"Authorization": f"Bearer {token}"}
    assert requests.get(f"{base}/api/queue", headers=auth, timeout=10).status_code == 200
    assert requests.get(f"{base}/api/admin/users", headers=auth, timeout=10).status_code == 403  # analyst
    admin = {"Authorization": f"Bearer {_token(console, 'root')}"}
    users = requests.get(f"{base}/api/admin/users", headers=admin, timeout=10).json()["users"]
    assert {"name": "ana", "role": "analyst"} in users and all("password" not in str(u) for u in users)
    revoked = subprocess.run([sys.executable, "-m", "pipeline", "console", "token", "ana", "--revoke", "all"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert revoked.returncode == 0 and "revoked" in revoked.stdout, revoked.stderr
    import time

    time.sleep(5.5)  # the console keeps a token's answer for up to 5 s
    assert requests.get(f"{base}/api/queue", headers=auth, timeout=10).status_code == 401
    unknown = subprocess.run([sys.executable, "-m", "pipeline", "console", "token", "nobody"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
    assert unknown.returncode == 1 and "no console user" in unknown.stderr


def test_adduser_reads_the_password_from_stdin(console: dict[str, Any]) -> None:
    env = env_for(console["settings"])
    done = subprocess.run([sys.executable, "-m", "pipeline", "console", "adduser", "Eve", "--role", "admin",
                           "--password-stdin"], input="a-long-password\n", cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and "saved console user eve (admin)" in done.stdout, done.stderr
    assert Accounts(console["es"], console["settings"]).authenticate("eve", "a-long-password").role == "admin"
    bad = subprocess.run([sys.executable, "-m", "pipeline", "console", "adduser", "x", "--role", "boss",
                          "--password-stdin"], input="a-long-password\n", cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 1 and "role must be one of" in bad.stderr


def test_login_is_throttled(console: dict[str, Any]) -> None:
    base = console["base"]
    session = requests.Session()
    statuses = []
    for _ in range(4):
        token = csrf_of(session.get(f"{base}/login", timeout=10).text)
        statuses.append(session.post(f"{base}/login", data={"csrf_token": token, "username": "root",
                                                            "password": "wrong-password"}, timeout=10).status_code)
    assert statuses == [401, 401, 401, 429]
    token = csrf_of(session.get(f"{base}/login", timeout=10).text)
    right = session.post(f"{base}/login", data={"csrf_token": token, "username": "root",
                                                "password": PASSWORDS["root"]}, allow_redirects=False, timeout=10)
    assert right.status_code == 429 and int(right.headers["Retry-After"]) > 0  # even the right password waits


def test_session_cookie_forms_and_csrf(console: dict[str, Any]) -> None:
    base = console["base"]
    session = login(base, "ana")
    cookie = next(c for c in session.cookies if c.name == "vigil_session")
    assert cookie.has_nonstandard_attr("HttpOnly") or "httponly" in str(cookie._rest).lower()
    page = session.get(f"{base}/videos/file:low", timeout=10)
    assert page.status_code == 200
    assert "&lt;img src=x onerror=alert(1)&gt;" in page.text and "<img src=x" not in page.text
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    refused = session.post(f"{base}/verdicts", data={"video_uid": "file:low", "verdict": "authentic"}, timeout=10)
    assert refused.status_code == 403 and "CSRF" in refused.text
    api = session.post(f"{base}/api/verdicts", json={"video_uid": "file:low", "verdict": "authentic"}, timeout=10)
    assert api.status_code == 403  # a session on the API needs the token in X-CSRF-Token
    ok = session.post(f"{base}/api/verdicts", json={"video_uid": "file:low", "verdict": "cannot_tell", "note": "n"},
                      headers={"X-CSRF-Token": csrf_of(page.text)}, timeout=10)
    assert ok.status_code == 201 and ok.json()["analyst"] == "ana"
    bad = session.post(f"{base}/api/verdicts", json={"video_uid": "file:low", "verdict": "fake"},
                       headers={"X-CSRF-Token": csrf_of(page.text)}, timeout=10)
    assert bad.status_code == 400
    assert session.get(f"{base}/admin", timeout=10).status_code == 403
    assert session.get(f"{base}/videos/youtube:none", timeout=10).status_code == 404


def test_media_range_requests(console: dict[str, Any]) -> None:
    base, payload = console["base"], console["payload"]
    auth = {"Authorization": f"Bearer {_token(console)}"}
    assert requests.get(f"{base}/media/file:submitted", timeout=10).status_code == 401
    whole = requests.get(f"{base}/media/file:submitted", headers=auth, timeout=10)
    assert whole.status_code == 200 and whole.content == payload and whole.headers["Accept-Ranges"] == "bytes"
    part = requests.get(f"{base}/media/file:submitted", headers={**auth, "Range": "bytes=100-299"}, timeout=10)
    assert part.status_code == 206 and part.content == payload[100:300]
    assert part.headers["Content-Range"] == f"bytes 100-299/{len(payload)}"
    tail = requests.get(f"{base}/media/file:submitted", headers={**auth, "Range": "bytes=-10"}, timeout=10)
    assert tail.status_code == 206 and tail.content == payload[-10:]
    beyond = requests.get(f"{base}/media/file:submitted", headers={**auth, "Range": f"bytes={len(payload)}-"},
                          timeout=10)
    assert beyond.status_code == 416 and beyond.headers["Content-Range"] == f"bytes */{len(payload)}"
    assert requests.get(f"{base}/media/file:low", headers=auth, timeout=10).status_code == 404  # no file stored


def test_video_page_shows_evidence_spread_and_cluster(console: dict[str, Any]) -> None:
    base = console["base"]
    session = login(base, "ana")
    page = session.get(f"{base}/videos/file:submitted", timeout=10).text
    assert 'class="timeline"' in page and 'class="flagged"' in page and 'class="segment"' in page
    assert 'class="mark" data-seek="4' in page  # the segment on the player's timeline
    assert 'src="/evidence/det-1/0"' in page and "1.5 s" in page  # the face crop at 1500 ms
    assert 'class="spread"' in page and "3 snapshots" in page
    assert 'href="/videos/file%3Alow"' in page and 'href="https://example.org/v/low"' in page  # the cluster
    assert "javascript:alert" not in page  # a platform URL that is not http(s) is never a link
    crop = session.get(f"{base}/evidence/det-1/0", timeout=10)
    assert crop.status_code == 200 and crop.content.startswith(b"\xff\xd8") and crop.headers["content-type"] == \
        "image/jpeg"
    assert session.get(f"{base}/evidence/det-1/1", timeout=10).status_code == 404  # listed, but not a face crop
    assert session.get(f"{base}/evidence/det-1/7", timeout=10).status_code == 404
    api = session.get(f"{base}/api/videos/file:submitted", timeout=10).json()
    assert api["face_crops"] == [{"index": 0, "t_s": 1.5}] and len(api["spread_history"]) == 3
    assert [m["video_uid"] for m in api["cluster"]] == ["file:low", "file:submitted"] or len(api["cluster"]) == 2
    assert api["detectors"][0]["offsets"] == {"offset_ms": 300} and api["detectors"][0]["flagged"] == [[4.0, 8.0]]


def test_without_elasticsearch_health_says_so_and_pages_fail_plainly(stack_env: dict[str, str],
                                                                      tmp_path: Path, unused_port: int) -> None:
    settings = settings_for(stack_env, tmp_path, es_url=f"https://127.0.0.1:{unused_port}",
                            console_secret_key="a-key-for-this-test", es_request_timeout_s=2)
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "console", "--port", str(port := _free())],
                            cwd=ROOT, env=env_for(settings), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        health = None
        for _ in range(100):
            try:
                health = requests.get(f"{base}/healthz", timeout=10)
                break
            except requests.ConnectionError:
                import time

                time.sleep(0.3)
        assert health is not None and health.status_code == 503
        assert health.json() == {"status": "degraded", "elasticsearch": "unreachable"}
        api = requests.get(f"{base}/api/queue", headers={"Authorization": "Bearer vgl_x"}, timeout=30)
        assert api.status_code in (401, 503)
        page = requests.get(f"{base}/login", timeout=30)
        assert page.status_code == 200  # the login form needs no Elasticsearch
        password = settings.es_password.get_secret_value() if settings.es_password else "absent"
        assert password not in page.text and str(unused_port) not in api.text
    finally:
        proc.terminate()
        proc.wait(30)


def _free() -> int:
    from support.console import free_port

    return free_port()
