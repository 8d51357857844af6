"""infra/media/fetch reading a source from a local mirror of a git repository (registry "git"): media at the named
commit into the corpus with its source and licence; without the mirror the source is skipped as optional."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
FETCH = ROOT / "infra" / "media" / "fetch"


def _wav(seconds: float = 1.0, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        t = np.arange(int(seconds * rate)) / rate
        out.writeframes((3000 * np.sin(2 * np.pi * 220 * t)).astype("<i2").tobytes())
    return buffer.getvalue()


def _git(*args: str, cwd: Path) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.org"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def mirror(tmp_path: Path) -> tuple[Path, str]:
    """A repository with two recordings, a large file outside the media folder and a licence, mirrored bare under
    ``<mirrors>/owner+name``; returns (mirrors, commit)."""
    work = tmp_path / "work"
    (work / "examples" / "voices").mkdir(parents=True)
    (work / "examples" / "voices" / "a.wav").write_bytes(_wav(1.0))
    (work / "examples" / "voices" / "b.wav").write_bytes(_wav(1.5))
    (work / "docs").mkdir()
    (work / "docs" / "big.bin").write_bytes(b"\0" * 1000)
    (work / "LICENSE").write_text("Apache License 2.0 (test)\n")
    _git("init", "-q", cwd=work)
    _git("add", ".", cwd=work)
    _git("commit", "-q", "-m", "media", cwd=work)
    commit = _git("rev-parse", "HEAD", cwd=work)
    mirrors = tmp_path / "mirrors"
    mirrors.mkdir()
    _git("clone", "-q", "--mirror", str(work), str(mirrors / "owner+name"), cwd=tmp_path)
    return mirrors, commit


def _run(tmp_path: Path, mirrors: Path, commit: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    sources = tmp_path / "sources.json"
    sources.write_text(json.dumps({"sources": [{
        "name": "gitsrc", "registry": "git", "package": "owner/name", "version": commit, "licence": "Apache-2.0",
        "licence_file": "LICENSE",
        "items": [{"base": "examples/voices", "glob": "*.wav", "kind": "speech", "shows": "a test tone {stem}"}]}]}))
    corpus = tmp_path / "corpus"
    env = {**os.environ, "VIGIL_MEDIA_CORPUS": str(corpus), "VIGIL_MEDIA_MIRRORS": str(mirrors)}
    result = subprocess.run([sys.executable, str(FETCH), "--sources", str(sources)], env=env, capture_output=True,
                            text=True, timeout=120)
    return result, corpus


def test_a_git_source_is_read_from_its_local_mirror_at_the_named_commit(tmp_path: Path,
                                                                       mirror: tuple[Path, str]) -> None:
    mirrors, commit = mirror
    result, corpus = _run(tmp_path, mirrors, commit)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((corpus / "manifest.json").read_text())
    entries = {e["id"]: e for e in manifest["entries"]}
    assert set(entries) == {"gitsrc/a", "gitsrc/b"}
    a = entries["gitsrc/a"]
    assert a["source"] == {"registry": "git", "package": "owner/name", "version": commit,
                           "path": "examples/voices/a.wav"}
    assert a["licence"] == "Apache-2.0" and a["duration_s"] == pytest.approx(1.0, abs=0.01)
    assert {e["split"] for e in entries.values()} == {"tune", "check"}
    assert (corpus / "gitsrc" / "LICENCE-source.txt").read_text().startswith("Apache License")
    assert not (corpus / "gitsrc" / "docs").exists()  # only the items' folders are read


def test_without_its_mirror_a_git_source_is_skipped_as_optional(tmp_path: Path, mirror: tuple[Path, str]) -> None:
    _, commit = mirror
    result, corpus = _run(tmp_path, tmp_path / "no-mirrors", commit)
    assert "gitsrc: skipped (optional): no local mirror of owner/name" in result.stderr
    assert "FAILED" not in result.stderr
    assert result.returncode == 1  # the corpus is empty: nothing else was asked for
    assert json.loads((corpus / "manifest.json").read_text())["entries"] == []


def test_a_commit_the_mirror_lacks_is_a_clear_failure(tmp_path: Path, mirror: tuple[Path, str]) -> None:
    mirrors, _ = mirror
    result, _ = _run(tmp_path, mirrors, "0" * 40)
    assert "gitsrc: FAILED" in result.stderr and "git archive failed" in result.stderr
