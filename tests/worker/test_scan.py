"""`vigil scan`: a local file and a URL (a local HTTP server) through the whole suite, JSON and PNG report."""
from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from detector_media import talking  # noqa: F401  (session fixture)
from detectors.synthetic import TalkingClip
from pipeline import ResultMessage, Settings, decode, get_settings
from pipeline.cli import app
from pipeline.worker.scan import ScanError, run_scan

pytestmark = pytest.mark.slow  # each scan decodes, tracks and runs the detectors (~2 s)

REPORT = {"timeline.png", "scores.png", "lipsync_offset.png", "lipsync_correlation.png", "spectral_spectrum.png"}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("VIGIL_CONFIG", raising=False)
    monkeypatch.setenv("VIGIL_DEVICE", "cpu")
    monkeypatch.setenv("VIGIL_DETECTORS", "lipsync,spectral")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def server(talking: dict[str, TalkingClip]) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 serving the generated clips."""
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(talking["late_200"].path.parent))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _text(output: str) -> str:
    """Terminal output with rich's line wrapping undone."""
    return " ".join(output.split())


def _read(path: Path) -> ResultMessage:
    return decode(path.read_bytes(), ResultMessage)


def test_scan_a_local_file(env: None, talking: dict[str, TalkingClip], tmp_path: Path) -> None:
    out, report = tmp_path / "result.json", tmp_path / "report"
    result = CliRunner().invoke(app, ["scan", str(talking["early_200"].path), "--json", str(out),
                                      "--report", str(report)])
    assert result.exit_code == 0, result.output
    assert "likely_manipulated" in result.output and "mouth lags speech by" in _text(result.output)
    message = _read(out)
    assert message.video_uid.startswith("file:") and message.source.platform == "file"
    assert message.fused.verdict == "likely_manipulated"
    assert abs(message.detectors["lipsync"].evidence["offset_ms"] + 200) <= 40
    assert {"decode", "faces", "lipsync", "spectral"} <= set(message.timings_ms)
    assert {p.name for p in report.iterdir()} == REPORT
    assert all((report / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for name in REPORT)
    assert sorted(Path(u.removeprefix("file://")).name for u in message.evidence_uris) == sorted(REPORT)
    assert json.loads(out.read_text())["schema"] == "vigil.result/1"


def test_scan_a_url_from_a_private_address_when_allowed(env: None, server: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_ALLOWED_PRIVATE_NETWORKS", "127.0.0.0/8")
    out, report = tmp_path / "result.json", tmp_path / "report"
    result = CliRunner().invoke(app, ["scan", f"{server}/late_400.mp4", "--json", str(out), "--report", str(report)])
    assert result.exit_code == 0, result.output
    message = _read(out)
    assert message.video_uid.startswith("url:") and message.source.url == f"{server}/late_400.mp4"
    assert message.timings_ms["download"] > 0
    assert message.fused.verdict == "likely_manipulated"
    assert abs(message.detectors["lipsync"].evidence["offset_ms"] - 400) <= 40
    assert {p.name for p in report.iterdir()} == REPORT


def test_scan_refuses_a_private_address_by_default(env: None, server: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIGIL_ALLOWED_PRIVATE_NETWORKS", raising=False)
    out = tmp_path / "result.json"
    result = CliRunner().invoke(app, ["scan", f"{server}/sync.mp4", "--json", str(out)])
    assert result.exit_code == 1
    assert "scan failed" in result.output and "host resolves to a loopback address" in _text(result.output)
    assert not out.exists()


def test_scan_of_a_faceless_clip_reports_what_was_not_applicable(env: None, talking: dict[str, TalkingClip],
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    result = CliRunner().invoke(app, ["scan", str(talking["no_face"].path), "--json", str(out)])
    assert result.exit_code == 0, result.output
    message = _read(out)
    assert message.detectors["lipsync"].applicable is False
    assert message.detectors["lipsync"].evidence["reason"] == "no face"
    assert message.fused.verdict == "no_signal"


def test_scan_failures_exit_1_with_the_reason(env: None, tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 20)
    result = CliRunner().invoke(app, ["scan", str(text)])
    assert result.exit_code == 1 and "a text file, not media" in _text(result.output)
    result = CliRunner().invoke(app, ["scan", str(tmp_path / "missing.mp4")])
    assert result.exit_code == 1 and "neither a file nor an http(s) URL" in _text(result.output)
    with pytest.raises(ScanError, match="ftp"):
        run_scan("ftp://example.org/video.mp4", Settings(device="cpu", detectors=["lipsync"]))
