"""Evidence plots: rendered from a result, stored beside the media, linked from the detection document."""
from __future__ import annotations

from pathlib import Path

from pipeline._evidence import attach_evidence, evidence_dir, render_scores, render_timeline
from pipeline._media_store import MediaStore
from pipeline._messages import DetectorOutput, FusedScore, ResultMessage, TimelineWindow

PNG = b"\x89PNG\r\n\x1a\n"


def result(sha: str, **detectors: DetectorOutput) -> ResultMessage:
    return ResultMessage(video_uid="youtube:abc", media_sha256=sha, suite_version="suite 1/2", duration_s=6.0,
                         fused=FusedScore(score=0.83, verdict="likely_manipulated", reasons=["mouth lags"]),
                         detectors=detectors)


def test_plots_are_stored_beside_the_media_and_linked(tmp_path: Path) -> None:
    store = MediaStore(str(tmp_path / "media"))
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not really a video, but content-addressed all the same")
    media_uri = store.put(clip)
    sha = media_uri.rsplit("/", 1)[-1].split(".")[0]
    message = result(sha,
                     lipsync=DetectorOutput(version="1", applicable=True, score=0.91, timeline=[
                         TimelineWindow(start_s=0, end_s=2, score=0.7), TimelineWindow(start_s=2, end_s=6, score=0.95)]),
                     face_forgery=DetectorOutput(version="1", applicable=False, evidence={"reason": "no face"}))
    with_plots = attach_evidence(message, store)
    assert len(with_plots.evidence_uris) == 2
    media_dir = media_uri.rsplit("/", 1)[0]
    for uri in with_plots.evidence_uris:
        assert uri.startswith(media_dir + f"/{sha}.evidence/suite_1_2/")
        assert Path(uri.removeprefix("file://")).read_bytes().startswith(PNG)
    assert attach_evidence(message, store).evidence_uris == with_plots.evidence_uris  # idempotent paths
    assert evidence_dir(store, message).endswith(f"{sha}.evidence/suite_1_2")

    from pipeline.sink import detection_doc

    assert detection_doc(with_plots)["evidence_uris"] == with_plots.evidence_uris


def test_no_timeline_means_no_timeline_plot_and_a_broken_store_costs_no_score(tmp_path: Path) -> None:
    message = result("b" * 64, spectral=DetectorOutput(version="1", applicable=True, score=0.2))
    assert render_timeline(message) is None
    assert render_scores(message).startswith(PNG)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the store's directory should be")
    same = attach_evidence(message, MediaStore(str(blocked)))
    assert same.evidence_uris == []


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
