"""Evidence plots for reports: rendered from a result or from the detection document stored from it."""
from __future__ import annotations

from pathlib import Path

from pipeline._evidence import render_scores, render_timeline
from pipeline._messages import DetectorOutput, FusedScore, ResultMessage, TimelineWindow

PNG = b"\x89PNG\r\n\x1a\n"


def result(sha: str, **detectors: DetectorOutput) -> ResultMessage:
    return ResultMessage(video_uid="youtube:abc", media_sha256=sha, suite_version="suite 1/2", duration_s=6.0,
                         fused=FusedScore(score=0.83, verdict="likely_manipulated", reasons=["mouth lags"]),
                         detectors=detectors)


def test_no_timeline_means_no_timeline_plot(tmp_path: Path) -> None:
    from pipeline._evidence import write_report

    message = result("b" * 64, spectral=DetectorOutput(version="1", applicable=True, score=0.2),
                     face_forgery=DetectorOutput(version="1", applicable=False, evidence={"reason": "no face"}))
    assert render_timeline(message) is None
    assert render_scores(message).startswith(PNG)
    assert [f.name for f in write_report(message, tmp_path)] == ["scores.png"]


def test_report_plots_come_from_a_stored_detection_document(tmp_path: Path) -> None:
    """The same PNGs from the document the sink stored (index fields and all) as from the result."""
    from pipeline._evidence import write_report
    from pipeline._messages import Segment
    from pipeline.sink import detection_doc

    message = result("ab" * 32, lipsync=DetectorOutput(version="1", applicable=True, score=0.91, timeline=[
        TimelineWindow(start_s=0, end_s=3, score=0.2), TimelineWindow(start_s=3, end_s=6, score=0.95)]))
    message = message.model_copy(update={"segments": [Segment(start_s=3, end_s=6, score=0.95,
                                                              detectors=["lipsync"])]})
    files = write_report(detection_doc(message), tmp_path / "report")
    assert sorted(f.name for f in files) == ["scores.png", "timeline.png"]
    assert all(f.read_bytes()[:8] == PNG for f in files)
    assert render_timeline(detection_doc(message)) == render_timeline(message)
