"""Issue #24 on the real stack with a real `vigil console` process: sessions that end (logout, a new password, a new
role, "revoke all"), the console's index that the pipeline's credentials cannot read, the password policy,
throttling that one address cannot turn on every account, the Origin check, no 500 for page and Range values,
``Cache-Control: no-store`` on /api/* and the security headers on error answers."""
from __future__ import annotations

import http.client
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import elasticsearch
import pytest
import requests
from support.console import PASSWORDS, ROOT, console_running, csrf_of, env_for, login

from support.stack import remove_test_objects, settings_for
from pipeline import Settings, make_es_client
from pipeline._elasticsearch import apply_templates
from pipeline.console import AccountError, Accounts, accounts_index, check_password

from support.stack import STACK  # noqa: E402

pytestmark = [pytest.mark.elasticsearch]

HEADERS = ("Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy")


def _stack_users() -> dict[str, str]:
    out = subprocess.run([str(STACK), "users"], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.fail(f"infra/local/stack users: {out.stderr}")
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def console(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("console-security")
    users = _stack_users()
    settings = settings_for(stack_env, tmp, console_login_max_failures=3, console_es_user="vigil-console",
                            console_es_password=users["vigil-console"])
    es = make_es_client(settings)  # the local stack's superuser: templates and the fixture's documents
    apply_templates(es, settings)
    media = Path(settings.media_store) / "cd"
    media.mkdir(parents=True)
    (media / f"{'cd' * 32}.mp4").write_bytes(b"\0" * 2048)
    es.index(index=settings.index("videos"), id="youtube:one", refresh=True, document={
        "video_uid": "youtube:one", "platform": "youtube", "title": "one", "status": "scored",
        "fused": {"score": 0.5, "verdict": "suspicious"}, "media": {"sha256": "cd" * 32}})
    try:
        with console_running(settings, tmp / "console.log") as base:
            yield {"settings": settings, "es": es, "base": base, "users": users}
    finally:
        remove_test_objects(settings)
        es.close()


def _cookie(session: requests.Session) -> str:
    return next(c.value for c in session.cookies if c.name == "vigil_session")


def _replay(base: str, cookie: str) -> int:
    """GET /api/admin/users with nothing but a copied session cookie."""
    return requests.get(f"{base}/api/admin/users", cookies={"vigil_session": cookie}, timeout=10).status_code


def _cli(settings: Settings, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], input=stdin, capture_output=True, text=True,
                          cwd=ROOT, env=env_for(settings), timeout=120)


def test_a_copied_cookie_is_refused_after_logout(console: dict[str, Any]) -> None:
    base = console["base"]
    session = login(base, "root")
    cookie = _cookie(session)
    assert _replay(base, cookie) == 200
    page = session.get(f"{base}/", timeout=10)
    out = session.post(f"{base}/logout", data={"csrf_token": csrf_of(page.text)}, allow_redirects=False, timeout=10)
    assert out.status_code == 303
    assert _replay(base, cookie) == 401
    # a forged cookie (an id that was never signed by the console) is no better
    assert _replay(base, "x" * 43 + ".forged") == 401


def test_a_new_password_a_new_role_and_revoke_all_end_sessions(console: dict[str, Any]) -> None:
    base, settings = console["base"], console["settings"]
    cookie = _cookie(login(base, "root"))
    done = _cli(settings, "console", "adduser", "root", "--role", "admin", "--password-stdin",
                stdin=PASSWORDS["root"] + "\n")  # the same password again still counts as a password change
    assert done.returncode == 0, done.stderr
    assert _replay(base, cookie) == 401

    analyst = login(base, "ana")
    assert analyst.get(f"{base}/api/queue", timeout=10).status_code == 200
    admin = login(base, "root")
    page = admin.get(f"{base}/admin", timeout=10)
    changed = admin.post(f"{base}/admin/users", data={"csrf_token": csrf_of(page.text), "username": "ana",
                                                      "role": "admin", "password": PASSWORDS["ana"]},
                         allow_redirects=False, timeout=10)
    assert changed.status_code == 303
    assert analyst.get(f"{base}/api/queue", timeout=10).status_code == 401  # a role change ends the session too
    Accounts(make_es_client(settings), settings).add_user("ana", "analyst", PASSWORDS["ana"])

    analyst = login(base, "ana")
    done = _cli(settings, "console", "token", "ana", "--revoke", "all")
    assert done.returncode == 0, done.stderr
    assert analyst.get(f"{base}/api/queue", timeout=10).status_code == 401


def test_the_pipeline_credentials_get_403_on_the_console_index(console: dict[str, Any]) -> None:
    settings, users = console["settings"], console["users"]
    index = accounts_index(settings)
    assert console["es"].count(index=index)["count"] >= 3  # users, sessions and the session key are in it
    pipeline = make_es_client(settings, basic_auth=("vigil-pipeline", users["vigil-pipeline"]), max_retries=0)
    with pytest.raises(elasticsearch.AuthorizationException) as caught:
        pipeline.get(index=index, id="secret:session")
    assert caught.value.meta.status == 403
    with pytest.raises(elasticsearch.AuthorizationException):
        pipeline.search(index=index)
    assert pipeline.search(index=settings.index("videos"))["hits"]["total"]["value"] == 1  # its own data: fine
    own = make_es_client(settings, basic_auth=("vigil-console", users["vigil-console"]), max_retries=0)
    assert own.get(index=index, id="secret:session")["found"]
    with pytest.raises(elasticsearch.AuthorizationException):
        own.search(index=settings.index("videos"))


def test_the_secret_key_from_a_file(console: dict[str, Any], tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("k" * 48 + "\n")
    settings = console["settings"].model_copy(update={"console_secret_key_file": key})
    assert Accounts(make_es_client(settings), settings).session_secret() == "k" * 48


def test_password_policy(console: dict[str, Any]) -> None:
    for weak in ("password", "short-pw-1", "password1234", "Qwerty123456!", "correcthorsebatterystaple", "aaaaaaaaaaaaaa",
                 "root-root-root-1"):
        with pytest.raises(AccountError):
            check_password(weak, name="root")
    check_password("violet-ferry-at-noon", name="root")
    done = _cli(console["settings"], "console", "adduser", "weak", "--password-stdin", stdin="password\n")
    assert done.returncode != 0 and "at least 12" in done.stdout + done.stderr
    assert Accounts(make_es_client(console["settings"]), console["settings"]).user("weak") is None


def _post_login(base: str, name: str, password: str, source: str) -> int:
    """POST /login from the loopback address ``source`` (the form's token fetched from there too)."""
    parts = urlsplit(base)

    def request(method: str, path: str, body: str | None = None, cookie: str = "") -> http.client.HTTPResponse:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10, source_address=(source, 0))
        headers = {"Cookie": cookie} if cookie else {}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=headers)
        return conn.getresponse()

    form = request("GET", "/login")
    cookie = form.getheader("Set-Cookie").split(";", 1)[0]
    token = csrf_of(form.read().decode())
    answer = request("POST", "/login", urlencode({"csrf_token": token, "username": name, "password": password}),
                     cookie)
    return answer.status


def test_one_address_cannot_lock_out_the_accounts(console: dict[str, Any]) -> None:
    base = console["base"]
    # an attacker on 127.0.0.3 guesses at both accounts until its address is refused...
    statuses = [_post_login(base, name, "wrong-password-x", "127.0.0.3") for name in ("root", "ana") for _ in range(4)]
    assert statuses[:3] == [401] * 3 and statuses[3] == 429
    # ...and the owners, from their own address, log in as usual
    assert _post_login(base, "root", PASSWORDS["root"], "127.0.0.1") == 303
    assert _post_login(base, "ana", PASSWORDS["ana"], "127.0.0.2") == 303
    assert _post_login(base, "ana", PASSWORDS["ana"], "127.0.0.3") == 429  # the guessing address stays refused


def test_origin_check_on_state_changing_requests(console: dict[str, Any]) -> None:
    base = console["base"]
    session = login(base, "ana")
    token = csrf_of(session.get(f"{base}/", timeout=10).text)
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"},
                    {"Referer": "https://evil.example/page"}):
        refused = session.post(f"{base}/logout", data={"csrf_token": token}, headers=headers, allow_redirects=False,
                               timeout=10)
        assert refused.status_code == 403, headers
        assert all(h in refused.headers for h in HEADERS)
    ok = session.post(f"{base}/logout", data={"csrf_token": token}, headers={"Origin": base}, allow_redirects=False,
                      timeout=10)
    assert ok.status_code == 303


def test_page_and_range_values_never_answer_500(console: dict[str, Any]) -> None:
    base = console["base"]
    session = login(base, "ana")
    for path in ("/alerts?page=201", "/api/alerts?page=201", "/?page=99999999999999", "/api/queue?page=-1",
                 "/api/queue?size=1e9", "/api/queue?page=" + "9" * 5000):
        answer = session.get(f"{base}{path}", timeout=10)
        assert answer.status_code == 400, (path, answer.status_code)
        assert all(h in answer.headers for h in HEADERS), path
    assert session.get(f"{base}/alerts?page=200", timeout=10).status_code == 200
    media = session.get(f"{base}/media/youtube:one", headers={"Range": "bytes=" + "9" * 4301 + "-"}, timeout=10)
    assert media.status_code == 416 and all(h in media.headers for h in HEADERS)
    api = session.get(f"{base}/api/queue", timeout=10)
    assert api.status_code == 200 and api.headers["Cache-Control"] == "no-store"
    missing = session.get(f"{base}/api/videos/youtube:none", timeout=10)
    assert missing.status_code == 404 and missing.headers["Cache-Control"] == "no-store"
    assert all(h in missing.headers for h in HEADERS)
