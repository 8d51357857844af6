"""`vigil models pull|verify|list|export` against a local hub endpoint with the real huggingface_hub client: a pinned
deployment keeps loading its commit after `main` moves, runs offline afterwards, and an export serves an air-gapped
node with the same detection identity."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.checkpoint_twins import twins
from hub_server import HubServer

VIGIL = str(Path(sys.executable).with_name("vigil"))
ROOT = Path(__file__).resolve().parents[2]
FACE = "prithivMLmods/Deepfake-Detection-Exp-02-21"
VOICE = "MelodyMachine/Deepfake-audio-detection-V2"



def vigil(*args: str, env: dict[str, str], ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([VIGIL, *args], env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    if ok:
        assert done.returncode == 0, f"vigil {' '.join(args)}: {done.stdout}\n{done.stderr}"
    return done


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VIGIL_", "HF_", "TRANSFORMERS_")) and k != "XDG_CACHE_HOME"}
    env.update({"PYTHONPATH": str(ROOT), "VIGIL_DEVICE": "cpu", "HF_HOME": str(tmp_path / "hf"),
                "HF_HUB_DISABLE_TELEMETRY": "1", "COLUMNS": "250", **extra})
    return env


def models_json(env: dict[str, str]) -> dict[str, dict]:
    return {e["detector"]: e for e in json.loads(vigil("models", "list", "--json", env=env).stdout)}


@pytest.mark.slow  # each command starts torch and transformers; verify also tracks faces
def test_pull_verify_pin_offline_and_export(tmp_path: Path) -> None:
    face, voice = twins()[FACE], twins()[VOICE]
    first = face.build(tmp_path / "face-v1", seed=0)
    relabelled = face.build(tmp_path / "face-v2", seed=1, id2label={0: "LABEL_0", 1: "LABEL_1"})
    with HubServer() as hub:
        commit = hub.publish(FACE, first)
        voice_commit = hub.publish(VOICE, voice.build(tmp_path / "voice"))
        env = base_env(tmp_path, HF_ENDPOINT=hub.url, VIGIL_FACE_FORGERY_CHECKPOINT=FACE,
                       VIGIL_FACE_FORGERY_REVISION=commit, VIGIL_VOICE_SYNTHETIC_CHECKPOINT=VOICE)

        pulled = vigil("models", "pull", env=env)
        assert commit in pulled.stdout and voice_commit in pulled.stdout
        snapshot = tmp_path / "hf" / "hub" / "models--prithivMLmods--Deepfake-Detection-Exp-02-21" / "snapshots" / commit
        assert sorted(p.name for p in snapshot.iterdir()) == ["config.json", "model.safetensors",
                                                               "preprocessor_config.json"]
        listed = models_json(env)
        assert listed["face_forgery"]["commit"] == commit and listed["face_forgery"]["meaning"] == {"0": "Deepfake"}
        assert listed["voice_synthetic"]["meaning"] == {"0": "fake"}
        assert "not pinned" in listed["voice_synthetic"]["note"]  # it follows main

        verified = vigil("models", "verify", env=env)
        assert f"1.1+{FACE}@{commit}" in verified.stdout and f"1.1+{VOICE}@{voice_commit}" in verified.stdout
        assert "Deepfake ◀" in verified.stdout and "fake ◀" in verified.stdout

        # upstream pushes a relabelled model to main: the pinned deployment still loads its commit …
        moved = hub.publish(FACE, relabelled)
        assert moved != commit
        assert f"{FACE}@{commit}" in vigil("models", "verify", "face_forgery", env=env).stdout
        # … an unpinned one follows main, and is refused with the setting that fixes the labels
        unpinned = {k: v for k, v in env.items() if k != "VIGIL_FACE_FORGERY_REVISION"}
        refused = vigil("models", "verify", "face_forgery", env=unpinned, ok=False)
        assert refused.returncode == 1 and "VIGIL_FACE_FORGERY_FAKE_LABEL" in refused.stdout

        # a revision that does not exist is an error naming the revision setting
        missing = vigil("models", "pull", "face_forgery", env={**env, "VIGIL_FACE_FORGERY_REVISION": "v9"}, ok=False)
        assert missing.returncode == 1 and "VIGIL_FACE_FORGERY_REVISION='v9'" in missing.stdout + missing.stderr

        # offline: no request reaches the hub, the pinned commit still verifies
        asked = len(hub.requests)
        offline = {**env, "HF_HUB_OFFLINE": "1"}
        assert f"{FACE}@{commit}" in vigil("models", "verify", env=offline).stdout
        assert len(hub.requests) == asked

        exported = tmp_path / "export"
        vigil("models", "export", str(exported), env=env)
        manifest = json.loads((exported / "vigil-models.json").read_text())
        assert {e["identity"] for e in manifest["checkpoints"]} == {f"{FACE}@{commit}", f"{VOICE}@{voice_commit}"}

    # an air-gapped node: a fresh HF_HOME, the export mounted as the hub cache, no server at all
    node = base_env(tmp_path / "node", HF_HUB_CACHE=str(exported), HF_HUB_OFFLINE="1",
                    VIGIL_FACE_FORGERY_CHECKPOINT=FACE, VIGIL_FACE_FORGERY_REVISION=commit,
                    VIGIL_VOICE_SYNTHETIC_CHECKPOINT=VOICE)
    verified = vigil("models", "verify", env=node)
    assert f"1.1+{FACE}@{commit}" in verified.stdout and f"1.1+{VOICE}@{voice_commit}" in verified.stdout
    assert not any(p.is_symlink() for p in exported.rglob("*"))


@pytest.mark.slow
def test_verify_fails_for_a_checkpoint_that_is_not_there(tmp_path: Path) -> None:
    env = base_env(tmp_path, HF_HUB_OFFLINE="1", VIGIL_NONVERBAL_CHECKPOINT="MIT/ast-finetuned-audioset-10-10-0.4593")
    done = vigil("models", "verify", env=env, ok=False)
    assert done.returncode == 1 and "VIGIL_NONVERBAL_CHECKPOINT" in done.stdout and "HF_HUB_OFFLINE" in done.stdout
    nothing = vigil("models", "verify", env=base_env(tmp_path), ok=False)
    assert nothing.returncode == 1 and "no model detector is configured" in nothing.stderr


def invoke(args: list[str], env: dict[str, str]):  # noqa: ANN201
    """The CLI in this process (typer's runner): the same commands, without a new interpreter per call."""
    from typer.testing import CliRunner

    from pipeline import cli
    from pipeline._settings import get_settings

    get_settings.cache_clear()
    try:
        return CliRunner().invoke(cli.app, args, env=env)
    finally:
        get_settings.cache_clear()


def test_list_reads_only_the_cache_and_pull_refuses_offline(tmp_path: Path) -> None:
    face = twins()[FACE]
    with HubServer() as hub:
        commit = hub.publish(FACE, face.build(tmp_path / "face"))
        env = {"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf"), "VIGIL_DEVICE": "cpu", "COLUMNS": "250",
               "VIGIL_FACE_FORGERY_CHECKPOINT": FACE, "VIGIL_FACE_FORGERY_REVISION": commit}
        listed = invoke(["models", "list", "--json"], env)
        assert listed.exit_code == 0, listed.output
        entry = next(e for e in json.loads(listed.stdout) if e["detector"] == "face_forgery")
        assert entry["commit"] is None and "vigil models pull" in entry["note"] and entry["revision"] == commit
        assert not hub.requests  # listing never downloads
        refused = invoke(["models", "pull"], {**env, "HF_HUB_OFFLINE": "1"})
        assert refused.exit_code == 1 and "HF_HUB_OFFLINE is set" in refused.output and not hub.requests
        pulled = invoke(["models", "pull", "face_forgery"], env)
        assert pulled.exit_code == 0 and commit in pulled.stdout, pulled.output
        table = invoke(["models", "list"], env)
        assert table.exit_code == 0 and "face_forgery" in table.stdout and "◀" in table.stdout
        entry = next(e for e in json.loads(invoke(["models", "list", "--json"], env).stdout)
                     if e["detector"] == "face_forgery")
        assert entry["commit"] == commit and entry["safetensors"] and entry["meaning"] == {"0": "Deepfake"}
        carried = invoke(["models", "pull", "face_forgery", "--to", str(tmp_path / "usb")], env)
        assert carried.exit_code == 0, carried.output
        assert (tmp_path / "usb" / "models--prithivMLmods--Deepfake-Detection-Exp-02-21" / "snapshots" / commit /
                "model.safetensors").is_file()
        nothing = invoke(["models", "export", str(tmp_path / "out"), "voice_synthetic"], env)
        assert nothing.exit_code == 1 and "nothing to export" in nothing.output
        unknown = invoke(["models", "list", "spectral"], env)
        assert unknown.exit_code == 1 and "not a model detector: spectral" in unknown.output
