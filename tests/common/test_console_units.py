"""The console's pure pieces: byte ranges, flagged windows, login throttling, redirects, the queue's score, SVG
escaping, verdict documents."""
from __future__ import annotations

import pytest

from pipeline.console import ConsoleError, effective_score, flagged_windows, spread_svg, timeline_svg, verdict_document
from pipeline.console._app import _local, _safe_url, face_crops
from pipeline.console._media import parse_range
from pipeline.console._security import LoginThrottle
from pipeline.console import LoginThrottled


@pytest.mark.parametrize("header,expected", [
    (None, None), ("bytes=0-99", (0, 99)), ("bytes=100-", (100, 999)), ("bytes=-10", (990, 999)),
    ("bytes=900-5000", (900, 999)), ("bytes=1000-", False), ("bytes=5-2", False), ("bytes=-", False),
    ("items=0-1", False), ("bytes=0-1,5-9", False),
])
def test_parse_range(header: str | None, expected: object) -> None:
    assert parse_range(header, 1000) == expected


def test_flagged_windows_merge_overlaps_and_ignore_low_scores() -> None:
    windows = [{"start_s": 0, "end_s": 4, "score": 0.7}, {"start_s": 3, "end_s": 7, "score": 0.6},
               {"start_s": 8, "end_s": 9, "score": 0.2}, {"start_s": 10, "end_s": 12, "score": 0.5}]
    assert flagged_windows(windows) == [(0.0, 7.0), (10.0, 12.0)]


def test_login_throttle_slides() -> None:
    now = [0.0]
    throttle = LoginThrottle(2, 60, clock=lambda: now[0])
    throttle.failed("ana")
    throttle.check("ana")
    throttle.failed("ana")
    with pytest.raises(LoginThrottled) as caught:
        throttle.check("ana")
    assert 0 < caught.value.retry_after_s <= 60
    throttle.check("root")  # other keys are not affected
    now[0] = 61
    throttle.check("ana")  # the window slid past both failures


@pytest.mark.parametrize("target,expected", [("/videos/x", "/videos/x"), ("//evil.example", "/"),
                                             ("https://evil.example/", "/"), ("javascript:alert(1)", "/"),
                                             ("videos", "/")])
def test_redirects_stay_inside_the_console(target: str, expected: str) -> None:
    assert _local(target) == expected


def test_only_http_links() -> None:
    assert _safe_url("https://example.org/v") == "https://example.org/v"
    assert _safe_url("javascript:alert(1)") is None and _safe_url("data:text/html,x") is None and _safe_url(None) is None


def test_the_analyst_outranks_the_model() -> None:
    assert effective_score({"fused": {"score": 0.1}, "analyst": {"verdict": "manipulated"}}) == 1.0
    assert effective_score({"fused": {"score": 0.9}, "analyst": {"verdict": "authentic"}}) == 0.0
    assert effective_score({"fused": {"score": 0.4}, "analyst": {"verdict": "cannot_tell"}}) == 0.4
    assert effective_score({}) is None


def test_svg_escapes_labels_and_titles() -> None:
    svg = timeline_svg([("<script>", [{"start_s": 0, "end_s": 2, "score": 0.9}])], 2.0,
                       [{"start_s": 0, "end_s": 2, "score": 0.9, "reasons": ["</title><script>x</script>"]}])
    assert "<script>" not in svg and "&lt;script&gt;" in svg and 'class="flagged"' in svg
    assert spread_svg([]) is None
    assert 'class="views"' in spread_svg([{"@timestamp": "2026-12-01T00:00:00Z", "views": 10, "views_per_hour": 1},
                                          {"@timestamp": "2026-12-01T01:00:00Z", "views": 50, "views_per_hour": 40}])


def test_face_crops_are_found_by_their_path() -> None:
    doc = {"evidence_uris": ["file:///s/ab.evidence/v1/faces/2500.jpg", "file:///s/ab.evidence/v1/timeline.png",
                             "s3://b/ab.evidence/v1/faces/500.jpg"]}
    assert face_crops(doc) == [{"index": 2, "t_s": 0.5}, {"index": 0, "t_s": 2.5}]


def test_verdict_document_keeps_what_the_analyst_saw() -> None:
    video = {"video_uid": "youtube:x", "detection_id": "d", "media": {"sha256": "a" * 64}, "suite_version": "s1"}
    detection = {"media_sha256": "a" * 64, "suite_version": "s1", "fused": {"score": 0.8, "verdict": "suspicious"},
                 "detectors": {"lipsync": {"score": 0.9, "applicable": True, "version": "1"}}}
    doc = verdict_document(video, detection, verdict="manipulated", note="n" * 5000, analyst="ana")
    assert doc["scores"] == {"fused": 0.8, "fused_verdict": "suspicious",
                             "detectors": {"lipsync": {"score": 0.9, "applicable": True, "version": "1"}}}
    assert len(doc["note"]) == 4000 and doc["media_sha256"] == "a" * 64 and doc["suite_version"] == "s1"
    with pytest.raises(ConsoleError):
        verdict_document(video, detection, verdict="fake", note="", analyst="ana")
