"""A submission's webhook (#23): when the sink writes the scored result of a video submitted with one, it POSTs
``{video_uid, verdict, score, url}`` to it through the crawler's URL policy, with a timeout, never blocking or failing
the sink. A local HTTP server is the receiver (127.0.0.0/8 allowed by VIGIL_ALLOWED_PRIVATE_NETWORKS, as in every
test on the local platform)."""
from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from webhook_support import Receiver
from support.worker import produce, spawn, stop, wait_for

from support.stack import remove_test_objects, settings_for
from pipeline import FusedScore, ResultMessage, Settings, encode, make_es_client, run_setup
from pipeline.sink._webhook import SubmissionWebhooks, webhook_payload


def _video(uid: str = "generic:tip", verdict: str = "likely_manipulated", score: float = 0.83) -> dict[str, Any]:
    return {"video_uid": uid, "fused": {"verdict": verdict, "score": score}}


def test_payload_names_the_video_its_verdict_and_its_console_page() -> None:
    settings = Settings(console_public_url="https://vigil.example.org/")
    assert webhook_payload(_video("file:ab12"), settings) == {
        "video_uid": "file:ab12", "verdict": "likely_manipulated", "score": 0.83,
        "url": "https://vigil.example.org/videos/file:ab12"}
    assert webhook_payload(_video(), Settings(console_host="10.0.0.5", console_port=8443))["url"] == (
        "http://10.0.0.5:8443/videos/generic:tip")


def test_posts_in_the_background_through_the_url_policy() -> None:
    with Receiver(delay_s=3.0) as receiver:
        hooks = SubmissionWebhooks(Settings(allowed_private_networks=["127.0.0.0/8"],
                                            submission_webhook_timeout_s=0.5))
        try:
            started = time.monotonic()
            hooks.notify(receiver.url("/hook?token=s3cret"), _video())
            hooks.notify(receiver.url("/slow"), _video("file:slow"))  # answers after the timeout
            hooks.notify(receiver.url("/broken"), _video("file:broken"))
            assert time.monotonic() - started < 0.2  # notify never waits for a receiver
            assert hooks.join(timeout=10)
        finally:
            hooks.close()
        assert (hooks.posted, hooks.failed, hooks.dropped) == (1, 2, 0)
        path, body, headers = next(r for r in receiver.received if r[0].startswith("/hook"))
        assert path == "/hook?token=s3cret" and headers["Content-Type"] == "application/json"
        assert body == {"video_uid": "generic:tip", "verdict": "likely_manipulated", "score": 0.83,
                        "url": "http://127.0.0.1:8080/videos/generic:tip"}

        # without 127.0.0.0/8 allowed, loopback is refused before anything is sent (as the crawler refuses it)
        before = len(receiver.received)
        strict = SubmissionWebhooks(Settings())
        try:
            for url in (receiver.url("/hook"), receiver.url("/hook", host="localhost"),
                        receiver.url("/hook", host="2130706433"), "file:///etc/passwd",
                        f"http://user:pw@127.0.0.1:{receiver.server.server_address[1]}/hook"):
                strict.notify(url, _video())
            assert strict.join(timeout=10)
        finally:
            strict.close()
        assert (strict.posted, strict.failed) == (0, 5)
        assert len(receiver.received) == before


def test_a_full_queue_drops_instead_of_blocking(caplog: pytest.LogCaptureFixture) -> None:
    with Receiver(delay_s=1.0) as receiver:
        hooks = SubmissionWebhooks(Settings(allowed_private_networks=["127.0.0.0/8"]), max_workers=1, max_pending=2)
        try:
            for i in range(5):
                hooks.notify(receiver.url("/slow/s3cret-path"), _video(f"file:{i}"))
            assert hooks.dropped == 3
            assert hooks.join(timeout=10)
        finally:
            hooks.close()
        assert hooks.posted == 2
    assert "s3cret" not in caplog.text  # only the receiver's host is logged: a webhook URL may carry a token


# ---------------------------------------------------------------- with a real sink on the stack

@pytest.fixture
def stack(stack_env: dict[str, str], tmp_path: Path) -> Iterator[Settings]:
    settings = settings_for(stack_env, tmp_path, allowed_private_networks=["127.0.0.0/8"],
                            sink_flush_interval_s=0.2, console_public_url="http://console.test:8080",
                            submission_webhook_timeout_s=1.0)
    run_setup(settings)
    yield settings
    remove_test_objects(settings)


def _result(uid: str, sha: str, score: float, verdict: str) -> ResultMessage:
    return ResultMessage(video_uid=uid, media_sha256=sha, suite_version="suite-1", duration_s=3.0,
                         fused=FusedScore(score=score, verdict=verdict, reasons=["test"]), detectors={},
                         timings_ms={}, produced_at=datetime.now(UTC))


@pytest.mark.kafka
@pytest.mark.elasticsearch
@pytest.mark.slow
def test_the_sink_calls_the_submission_webhook_once_scored(stack: Settings, tmp_path: Path) -> None:
    settings = stack
    es = make_es_client(settings)
    with Receiver(delay_s=30.0) as receiver:
        hooked = {"tip": receiver.url("/hook/tip"), "hang": receiver.url("/slow/hang"),
                  "private": "http://10.255.255.1:9/hook"}  # not allowed: refused, never tried
        for name, url in hooked.items():
            es.index(index=settings.index("videos"), id=f"generic:{name}", refresh=True, document={
                "video_uid": f"generic:{name}", "platform": "generic", "status": "queued",
                "submission": {"by": "ana", "webhook": url, "channel": "console-submission"}})
        es.index(index=settings.index("videos"), id="generic:plain", refresh=True, document={
            "video_uid": "generic:plain", "platform": "generic", "status": "queued"})
        results = [_result("generic:hang", "c" * 64, 0.2, "no_signal"),
                   _result("generic:tip", "a" * 64, 0.83, "likely_manipulated"),
                   _result("generic:private", "d" * 64, 0.5, "suspicious"),
                   _result("generic:plain", "b" * 64, 0.1, "no_signal")]
        produce(settings, settings.topic_results, [(r.video_uid.encode(), encode(r)) for r in results])
        sink = spawn("sink", settings, tmp_path / "sink.log")
        try:
            def scored() -> bool:
                es.indices.refresh(index=settings.index("videos"))
                docs = es.mget(index=settings.index("videos"), ids=[r.video_uid for r in results])["docs"]
                return all(d["_source"].get("status") == "scored" for d in docs)

            # the hanging receiver does not hold the sink up: everything is written meanwhile
            assert wait_for(scored, timeout_s=60), (tmp_path / "sink.log").read_text()[-3000:]
            assert wait_for(lambda: any(p == "/hook/tip" for p, _, _ in receiver.received), timeout_s=20), (
                tmp_path / "sink.log").read_text()[-3000:]
            assert wait_for(lambda: "for generic:hang failed" in (tmp_path / "sink.log").read_text(), timeout_s=20)
            assert wait_for(lambda: "for generic:private failed" in (tmp_path / "sink.log").read_text(), timeout_s=20)
            # the same result again (a redelivery) changes nothing and posts nothing more
            produce(settings, settings.topic_results, [(b"generic:tip", encode(results[1]))])
            time.sleep(3)
            assert sink.poll() is None, (tmp_path / "sink.log").read_text()[-3000:]
        finally:
            assert stop(sink) == 0, (tmp_path / "sink.log").read_text()[-3000:]
            es.close()
        log = (tmp_path / "sink.log").read_text()
        tips = [body for path, body, _ in receiver.received if path == "/hook/tip"]
        assert tips == [{"video_uid": "generic:tip", "verdict": "likely_manipulated", "score": 0.83,
                         "url": "http://console.test:8080/videos/generic:tip"}]
        assert {p for p, _, _ in receiver.received} == {"/hook/tip", "/slow/hang"}  # never the private address
        assert "TimeoutError" in log or "timed out" in log
        assert "host resolves to a private address" in log
