"""Persons of interest on generated media: enrolment through `vigil persons` (a face photo and an espeak voice, a file
and a URL served on 127.0.0.1), then the identity detector on new clips: the same face and voice not flagged, the
same face with another voice flagged with reasons, a face not enrolled not applicable, two enrolled persons told
apart, nobody speaking not applicable; the gallery's version in the suite version; failures named."""
from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from detectors import Clip, Gallery, Identity, ModelError, Suite, registered
from detectors import synthetic as S
from pipeline import Settings, get_settings
from pipeline._media_store import MediaStore
from pipeline.cli import app
from pipeline.worker.scan import persons_on_screen

pytestmark = pytest.mark.slow  # espeak, video encoding, face mesh and two models (~1 min for the module)

ASTRO, HOPPER = "Eileen Collins", "Grace Hopper"
ASTRO_VOICE = {"voice": "en-us"}
HOPPER_VOICE = {"voice": "en+Andrea"}
OTHER_VOICE = {"voice": "en-us+f3"}


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("persons")
    files = {"astro_photo": d / "astro.png", "two_faces": d / "two.png",
             "astro_voice": d / "astro_voice.m4a"}
    S.write_photo(files["astro_photo"], S.person_photo("astronaut"))
    S.write_photo(files["two_faces"], np.hstack([S.person_photo("astronaut"), _hopper_like_astronaut()]))
    enrol_text = S.SENTENCES[0] + " " + S.SENTENCES[1]
    S.write_audio_only(files["astro_voice"], S.speak(enrol_text, **ASTRO_VOICE))
    files["hopper_reference"] = d / "hopper_reference.mp4"  # one reference video: her face and her voice
    S.make_person_clip(files["hopper_reference"], "grace_hopper", enrol_text, **HOPPER_VOICE)
    clips = {  # new sentences, never enrolled
        "astro_same": ("astronaut", S.HELDOUT_SENTENCES[0], ASTRO_VOICE),
        "astro_other_voice": ("astronaut", S.HELDOUT_SENTENCES[0], OTHER_VOICE),
        "astro_hopper_voice": ("astronaut", S.HELDOUT_SENTENCES[1], HOPPER_VOICE),
        "hopper_same": ("grace_hopper", S.HELDOUT_SENTENCES[2], HOPPER_VOICE),
    }
    for name, (person, text, voice) in clips.items():
        files[name] = d / f"{name}.mp4"
        S.make_person_clip(files[name], person, text, **voice)
    files["duo"] = d / "duo.mp4"  # the astronaut speaks in her voice beside a silent Grace Hopper
    _write_duo(files["duo"], S.HELDOUT_SENTENCES[4])
    files["astro_silent"] = d / "astro_silent.mp4"
    S.make_talking_clip(files["astro_silent"], S.HELDOUT_SENTENCES[3], kind="silent")
    return files


def _hopper_like_astronaut() -> np.ndarray:
    """Grace Hopper's photo scaled so that her face is as large as the astronaut's in its crop."""
    import cv2
    import matplotlib.cbook
    import matplotlib.image

    image = matplotlib.image.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    return cv2.resize(np.ascontiguousarray(image[40:552, :512, :3]), (256, 256), interpolation=cv2.INTER_AREA)


def _write_duo(path: Path, text: str) -> None:
    speech = S.speak(text, **ASTRO_VOICE)
    lead = int(0.5 * S.AUDIO_RATE)
    audio = np.zeros(lead + speech.size + lead, dtype=np.float32)
    audio[lead:lead + speech.size] = speech
    times = np.arange(int(audio.size / S.AUDIO_RATE * S.VIDEO_FPS)) / S.VIDEO_FPS
    talking = S.render_talking_head(S.mouth_opening_from_speech(audio, times))
    still = S.render_talking_head(np.zeros(len(times), dtype=np.float32), background=_hopper_like_astronaut())
    S.write_mp4(path, np.concatenate([talking, still], axis=2), S.VIDEO_FPS, audio, sample_rate=S.AUDIO_RATE)


@pytest.fixture(scope="module")
def server(media: dict[str, Path]) -> Iterator[str]:
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(media["astro_photo"].parent))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("store")


@pytest.fixture
def env(store: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.delenv("VIGIL_CONFIG", raising=False)
    monkeypatch.setenv("VIGIL_MEDIA_STORE", str(store))
    monkeypatch.setenv("VIGIL_DEVICE", "cpu")
    monkeypatch.setenv("VIGIL_ALLOWED_PRIVATE_NETWORKS", "127.0.0.0/8")
    monkeypatch.setenv("VIGIL_YTDLP_EXTRACTORS", "generic")
    monkeypatch.setenv("COLUMNS", "240")  # rich tables unwrapped
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def prepared(media: dict[str, Path]) -> dict[str, Clip]:
    suite = Suite([])
    return {name: suite.prepare(path)[0] for name, path in media.items()
            if path.suffix == ".mp4" and name != "hopper_reference"}


def cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return " ".join(result.output.split())


def test_registered_under_its_contract_name() -> None:
    assert registered()["identity"] is Identity


def test_enrol_from_a_face_photo_and_an_espeak_voice(env: Settings, media: dict[str, Path], store: Path) -> None:
    out = cli("persons", "enroll", ASTRO, str(media["astro_photo"]), str(media["astro_voice"]), "--role", "candidate",
              "--notes", "test person")
    assert "astro.png: face" in out and "astro_voice.m4a: voice" in out
    assert f"enrolled {ASTRO} (candidate): 1 face and 1 voice references" in out
    saved = json.loads((store / "persons" / "gallery.json").read_text())
    refs = saved["persons"][ASTRO]["references"]
    assert {r["source"] for r in refs} == {"astro.png", "astro_voice.m4a"}
    assert all(len(r["sha256"]) == 64 for r in refs)
    assert next(r for r in refs if r["face"])["face_model"].startswith("dlib-")
    assert next(r for r in refs if r["voice"])["voice_model"].startswith("resemblyzer-0.1.4-ge2e-")
    listed = cli("persons", "list")
    assert ASTRO in listed and "candidate" in listed and "test person" in listed


def test_same_face_and_voice_is_not_flagged(env: Settings, prepared: dict[str, Clip]) -> None:
    result = Identity.from_settings(env)(prepared["astro_same"])
    assert result.applicable and not result.flagged and result.score < 0.2, result.evidence
    assert result.evidence["person"] == ASTRO
    assert result.evidence["voice_similarity"] >= env.identity.voice_threshold
    assert result.evidence["face_similarity"] >= env.identity.face_threshold
    assert result.evidence["windows"] and result.timeline
    # windows in the clip's time: the speech starts after the 0.5 s lead and ends before the clip does
    assert 0.3 <= result.timeline[0].start_s and result.timeline[-1].end_s <= prepared["astro_same"].duration_s
    assert result.annotations["persons"] == [{"name": ASTRO, "role": "candidate",
                                              "face_similarity": result.evidence["face_similarity"],
                                              "voice_similarity": result.evidence["voice_similarity"],
                                              "voice_match": True}]


def test_same_face_with_another_voice_is_flagged_with_reasons(env: Settings, prepared: dict[str, Clip]) -> None:
    result = Identity.from_settings(env)(prepared["astro_other_voice"])
    assert result.applicable and result.flagged and result.score > 0.8, result.evidence
    reason = result.evidence["reasons"][0]
    assert reason.startswith(f"face matches {ASTRO} (")
    assert f"the voice does not match {ASTRO}'s enrolled voice" in reason and "threshold 0.80" in reason
    assert result.annotations["persons"][0]["voice_match"] is False


def test_a_face_not_enrolled_is_not_applicable(env: Settings, prepared: dict[str, Clip]) -> None:
    result = Identity.from_settings(env)(prepared["hopper_same"])
    assert not result.applicable and result.evidence["reason"] == "no enrolled person on screen"
    assert result.evidence["best_face_similarity"] < env.identity.face_threshold
    assert result.annotations == {}


def test_nobody_speaking_is_not_applicable(env: Settings, prepared: dict[str, Clip]) -> None:
    result = Identity.from_settings(env)(prepared["astro_silent"])
    assert not result.applicable and "nobody speaks" in result.evidence["reason"]
    assert result.annotations["persons"][0]["name"] == ASTRO  # seen, though not judged


def test_two_enrolled_persons_are_told_apart(env: Settings, media: dict[str, Path], server: str,
                                             prepared: dict[str, Clip]) -> None:
    before = Identity.from_settings(env).version
    out = cli("persons", "enroll", HOPPER, f"{server}/hopper_reference.mp4", "--role", "official")
    assert f"enrolled {HOPPER} (official): 1 face and 1 voice references" in out
    assert "hopper_reference.mp4: face and voice" in out
    detector = Identity.from_settings(env)
    assert detector.version != before  # the gallery's version is part of the detector's (and the suite's)
    assert Suite([detector]).version != Suite([Identity(env.identity, device=env.device, gallery=Gallery())]).version
    names = ["astro_same", "hopper_same", "astro_hopper_voice"]
    results = dict(zip(names, detector([prepared[n] for n in names]), strict=True))  # one batch
    assert results["astro_same"].evidence["person"] == ASTRO and not results["astro_same"].flagged
    hopper = results["hopper_same"]
    assert hopper.applicable and hopper.evidence["person"] == HOPPER and not hopper.flagged, hopper.evidence
    assert hopper.annotations["persons"][0]["role"] == "official"
    crossed = results["astro_hopper_voice"]
    assert crossed.flagged and crossed.evidence["person"] == ASTRO
    assert crossed.evidence["closest_other_voice"]["name"] == HOPPER
    assert f"the voice matches {HOPPER}'s enrolled voice" in crossed.evidence["reasons"][0]


def test_with_two_faces_the_speech_is_the_moving_mouths(env: Settings, prepared: dict[str, Clip]) -> None:
    clip = prepared["duo"]
    assert len(clip.faces) == 2
    result = Identity.from_settings(env)(clip)
    assert result.applicable and not result.flagged, result.evidence  # Hopper is not judged by Collins' voice
    assert result.evidence["person"] == ASTRO and len(result.evidence["reasons"]) == 1
    speaking = {p["name"]: p["speaking"] for p in result.evidence["persons"]}
    assert speaking == {ASTRO: True, HOPPER: False}
    assert {p["name"] for p in result.annotations["persons"]} == {ASTRO, HOPPER}


def test_suite_result_carries_persons_and_scan_prints_them(env: Settings, media: dict[str, Path]) -> None:
    suite = Suite([Identity.from_settings(env)])
    result = suite.scan(media["astro_other_voice"])
    message = result.to_message(video_uid="file:x", suite_version=suite.version)
    assert message.annotations["persons"][0]["name"] == ASTRO
    assert message.fused.verdict in ("likely_manipulated", "suspicious")
    assert message.fused.reasons[0].startswith(f"identity: face matches {ASTRO}")
    line = persons_on_screen(message)
    assert line.startswith(f"{ASTRO} (candidate): face 0.") and "does not match the enrolled voice" in line


def test_an_ambiguous_reference_is_refused_with_the_reason(env: Settings, media: dict[str, Path]) -> None:
    result = CliRunner().invoke(app, ["persons", "enroll", "Two People", str(media["two_faces"])])
    assert result.exit_code == 1
    assert "ambiguous, 2 faces of similar prominence" in " ".join(result.output.split())
    assert "Two People" not in cli("persons", "list")


def test_enrolment_failures_are_named(env: Settings, tmp_path: Path) -> None:
    missing = CliRunner().invoke(app, ["persons", "enroll", "X", str(tmp_path / "nope.mp4")])
    assert missing.exit_code == 1 and "neither a file nor an http(s) URL" in missing.output
    text = tmp_path / "notes.txt"
    text.write_text("not media")
    refused = CliRunner().invoke(app, ["persons", "enroll", "X", str(text)])
    assert refused.exit_code == 1 and "nothing enrolled for 'X'" in " ".join(refused.output.split())
    unknown = CliRunner().invoke(app, ["persons", "remove", "Nobody"])
    assert unknown.exit_code == 1 and "no person named 'Nobody'" in unknown.output


def test_remove_updates_the_gallery(env: Settings) -> None:
    before = Gallery.load(MediaStore.from_settings(env)).version
    cli("persons", "remove", HOPPER)
    after = Gallery.load(MediaStore.from_settings(env))
    assert HOPPER not in after.persons and ASTRO in after.persons and after.version != before


def test_an_unreadable_gallery_is_a_model_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "persons").mkdir()
    (tmp_path / "persons" / "gallery.json").write_text("{broken")
    with pytest.raises(ModelError, match="persons gallery .*gallery.json"):
        Identity.from_settings(Settings(media_store=str(tmp_path), device="cpu"))


def test_empty_gallery_is_not_applicable_without_loading_models(tmp_path: Path, prepared: dict[str, Clip]) -> None:
    detector = Identity.from_settings(Settings(media_store=str(tmp_path), device="cpu"))
    assert detector.faces is None and "gallery-empty" in detector.version
    result = detector(prepared["astro_same"])
    assert not result.applicable and "no persons enrolled" in result.evidence["reason"]


def test_vigil_scan_prints_who_is_on_screen(env: Settings, media: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    monkeypatch.setenv("VIGIL_DETECTORS", "identity,provenance")
    get_settings.cache_clear()
    out = tmp_path / "result.json"
    text = cli("scan", str(media["astro_other_voice"]), "--json", str(out))
    assert "on screen" in text and f"{ASTRO} (candidate): face 0." in text
    assert "does not match the enrolled voice" in text
    saved = json.loads(out.read_text())
    assert saved["annotations"]["persons"][0]["name"] == ASTRO
    assert saved["detectors"]["provenance"]["applicable"] is False
