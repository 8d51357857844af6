"""provenance on MP4s signed in the test (c2pa-python's Builder, a throwaway certificate chain made with
`cryptography`): an AI-generated manifest flagged, a camera-capture manifest not, a tampered signed file reporting a
failed validation, an unsigned file not applicable; container tags naming a generator or an editing tool; the file
read while it is at hand (a remote store's copy is gone before the detectors run)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from support.c2pa import make_signer, sign_mp4, tamper_mdat
from detectors import Provenance, Suite, registered
from detectors import synthetic as S


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import imageio_ffmpeg

    d = tmp_path_factory.mktemp("provenance")
    rng = np.random.default_rng(0)
    plain = d / "plain.mp4"
    S.write_mp4(plain, rng.integers(0, 255, (12, 64, 64, 3), dtype=np.uint8), 12.0,
                (0.01 * rng.standard_normal(16000)).astype(np.float32))
    signer = make_signer()
    out = {"plain": plain,
           "ai": sign_mp4(plain, d / "ai.mp4", signer, source_type="trainedAlgorithmicMedia",
                          generator="Example Video Model", software_agent="Example Video Model 2"),
           "camera": sign_mp4(plain, d / "camera.mp4", signer, source_type="digitalCapture",
                              generator="Example Camera App")}
    out["tampered"] = tamper_mdat(out["camera"], d / "tampered.mp4")
    for name, comment in (("tagged_ai", "Generated with Runway Gen-3 Alpha"), ("tagged_edit", "Edited in CapCut")):
        out[name] = d / f"{name}.mp4"
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(plain), "-c", "copy",
                        "-metadata", f"comment={comment}", str(out[name])], check=True)
    return out


def run(path: Path):  # noqa: ANN201 - a DetectorResult
    suite = Suite([Provenance()])
    return suite.scan(path).results["provenance"]


def test_registered_under_its_contract_name() -> None:
    assert registered()["provenance"] is Provenance
    assert Provenance().version.startswith("1.0+c2pa-python-0.38")


def test_ai_generated_manifest_is_flagged(files: dict[str, Path]) -> None:
    result = run(files["ai"])
    assert result.applicable and result.flagged and result.score >= 0.95
    summary = result.annotations["provenance"]
    assert summary == {"present": True, "ai_generated": True, "validation_state": "Valid",
                       "claim_generator": "Example Video Model", "signer": "Vigil Test Signer",
                       "issuer": "Vigil Tests", "digital_source_type": "trainedAlgorithmicMedia",
                       "actions": ["c2pa.created"], "container_tool": None}
    assert result.evidence["reasons"][0].startswith(
        "content credentials declare AI-generated media (trainedAlgorithmicMedia, by Example Video Model 2")
    assert "signingCredential.untrusted" in result.evidence["failures"]  # a test CA is on no trust list


def test_camera_capture_manifest_is_not_flagged(files: dict[str, Path]) -> None:
    result = run(files["camera"])
    assert result.applicable and not result.flagged and result.score <= 0.1
    assert result.annotations["provenance"]["digital_source_type"] == "digitalCapture"
    assert result.annotations["provenance"]["ai_generated"] is False
    assert "valid content credentials of a capture" in result.evidence["reasons"][0]


def test_tampered_signed_file_reports_failed_validation(files: dict[str, Path]) -> None:
    result = run(files["tampered"])
    assert result.annotations["provenance"]["validation_state"] == "Invalid"
    assert any("mismatch" in code for code in result.evidence["failures"]), result.evidence["failures"]
    assert result.flagged and "fail validation" in result.evidence["reasons"][0]


def test_unsigned_file_is_not_applicable(files: dict[str, Path]) -> None:
    result = run(files["plain"])
    assert not result.applicable and result.score is None
    assert result.evidence["reason"].startswith("no content credentials and no generator or editing tool")
    assert result.annotations == {}


def test_container_tags_naming_a_generator_or_an_editing_tool(files: dict[str, Path]) -> None:
    ai = run(files["tagged_ai"])
    assert ai.flagged and ai.annotations["provenance"]["container_tool"].lower() == "runway"
    assert ai.annotations["provenance"]["present"] is False and ai.annotations["provenance"]["ai_generated"]
    assert "Runway Gen-3 Alpha" in ai.evidence["reasons"][0]
    edited = run(files["tagged_edit"])
    assert edited.applicable and not edited.flagged and edited.annotations["provenance"]["container_tool"] == "CapCut"


def test_file_read_while_at_hand_then_gone(files: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "copy.mp4"
    copy.write_bytes(files["ai"].read_bytes())
    suite = Suite([Provenance()])
    clip, timings = suite.prepare(copy)
    copy.unlink()  # as fetch_media removes a remote store's copy after decoding
    assert "probe_provenance" in timings
    result = suite.analyse([clip])[0]
    assert result.results["provenance"].flagged
    assert result.annotations["provenance"]["ai_generated"] is True


def test_many_clips_in_one_batch(files: dict[str, Path]) -> None:
    suite = Suite([Provenance()])
    names = ["ai", "camera", "plain", "tampered"]
    clips = [suite.prepare(files[n])[0] for n in names]
    flagged = {n: r.results["provenance"].flagged for n, r in zip(names, suite.analyse(clips), strict=True)}
    assert flagged == {"ai": True, "camera": False, "plain": False, "tampered": True}


def test_a_damaged_file_is_not_applicable_with_the_reason(tmp_path: Path) -> None:
    from detectors import Clip

    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    clip = Clip(source=str(junk), duration_s=0.0, fps=5.0, frames=np.zeros((0, 1, 1, 3), np.uint8),
                timestamps=np.zeros(0), audio=None)
    result = Provenance()(clip)
    assert not result.applicable and "no content credentials" in result.evidence["reason"]


def test_vigil_eval_reports_provenance(files: dict[str, Path], tmp_path: Path) -> None:
    from detectors._evaluate import evaluate

    listing = tmp_path / "set.csv"
    rows = [("ai", "fake"), ("tagged_ai", "fake"), ("tampered", "fake"), ("camera", "real"), ("plain", "real"),
            ("tagged_edit", "real")]
    listing.write_text("path,label,group\n" + "".join(f"{files[n]},{label},\n" for n, label in rows))
    report = evaluate(listing, tmp_path / "out", suite=Suite([Provenance()]))
    assert report["n"] == 6
    provenance = report["detectors"]["provenance"]
    assert {k: provenance[k] for k in ("auc", "eer", "n_applicable")} == {"auc": 1.0, "eer": 0.0, "n_applicable": 5}
    assert (tmp_path / "out" / "report.json").is_file()
