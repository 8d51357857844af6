"""Which face crops identity embeds (detectors/_face_embed.py ``choose_observations``), on a generated talking head run
through the face mesh: blurred frames are passed over, a face turned half away scores lower than a frontal one, the
chosen crops are spread over the track, a face seen for a moment gives one crop; and the detector's probe (the
suite's prepare) embeds them once, so ``preprocess`` reuses them."""
from __future__ import annotations

import copy

import cv2
import numpy as np
import pytest

from detector_media import prepared, talking  # noqa: F401  (session fixtures)
from detectors import Clip, FaceTracker, FaceTrack, Gallery
from detectors import synthetic as S
from detectors._face_embed import _frontality, choose_observations, get_face_embedder, observation_quality
from detectors._gallery import Person, Reference
from detectors.identity import PROBE_KEY, Identity


def _blurred(clip: Clip, frames: list[int]) -> Clip:
    out = copy.copy(clip)
    out.frames = clip.frames.copy()
    for i in frames:
        out.frames[i] = cv2.GaussianBlur(out.frames[i], (0, 0), 3.0)
    return out


def test_blurred_frames_are_passed_over(prepared: dict[str, Clip]) -> None:
    clip = prepared["sync"]
    track = clip.speaker
    assert track is not None and len(track) >= 12
    sharp = observation_quality(clip, track)
    # blur the sharpest observation of each third: the choice moves to another frame of the same third
    thirds = np.array_split(np.arange(len(track)), 3)
    best = [int(part[np.argmax(sharp[part])]) for part in thirds]
    assert choose_observations(clip, track, 3) == best
    blurred = _blurred(clip, [int(track.frame_index[i]) for i in best])
    quality = observation_quality(blurred, track)
    assert all(quality[i] < 0.5 * sharp[i] for i in best)
    chosen = choose_observations(blurred, track, 3)
    assert not set(chosen) & set(best)
    assert [next(k for k, part in enumerate(thirds) if i in part) for i in chosen] == [0, 1, 2]


def _half_turned(photo: np.ndarray) -> np.ndarray:
    """The face's left half (as seen) squeezed to 45 %: the nose nearer one side of the face than the other, as in a
    head turned part way."""
    h, w = photo.shape[:2]
    centre = w // 2
    left = cv2.resize(photo[:, :centre], (int(centre * 0.45), h), interpolation=cv2.INTER_AREA)
    canvas = np.full_like(photo, int(photo[0, 0].mean()))
    canvas[:, centre - left.shape[1]:centre] = left
    canvas[:, centre:] = photo[:, centre:]
    return canvas


def test_a_face_turned_away_is_less_frontal_than_a_frontal_one() -> None:
    photo = S.person_photo("astronaut")
    found = FaceTracker().detect(np.stack([photo, _half_turned(photo)]))
    assert len(found[0]) == 1 and len(found[1]) == 1
    frontal, turned = _frontality(found[0][0]), _frontality(found[1][0])
    assert frontal > 0.75 and turned < 0.8 * frontal, (frontal, turned)
    assert _frontality(None) == 1.0


def test_crops_are_spread_in_time_and_a_short_track_gives_one(prepared: dict[str, Clip]) -> None:
    clip = prepared["sync"]
    track = clip.speaker
    assert track is not None
    n = len(track)
    chosen = choose_observations(clip, track, 4)
    assert len(chosen) == 4 and chosen == sorted(chosen)
    assert [int(i * 4 // n) for i in chosen] == [0, 1, 2, 3]  # one in each quarter
    # a face seen for 0.6 s (3 frames at 5 fps): one crop, whatever the limit, when crops are per 8 s of track
    short = FaceTrack(track_id=9, frame_index=track.frame_index[:3], boxes=track.boxes[:3],
                      landmarks=None if track.landmarks is None else track.landmarks[:3],
                      mouth_open=track.mouth_open[:3])
    assert len(choose_observations(clip, short, 3, every_s=8.0)) == 1
    assert len(choose_observations(clip, short, 3)) == 3
    seconds = float(clip.timestamps[track.frame_index[-1]] - clip.timestamps[track.frame_index[0]]) + 1 / clip.fps
    assert len(choose_observations(clip, track, 3, every_s=seconds / 2)) == 2
    assert len(choose_observations(clip, track, 3, every_s=0.0)) == 3


def test_the_probe_embeds_the_crops_once_and_preprocess_reuses_them(prepared: dict[str, Clip]) -> None:
    faces = get_face_embedder()
    clip = copy.copy(prepared["sync"])
    clip.probes = {}
    reference = faces.embed(faces.track_chips(clip, clip.speaker, limit=1))[0]
    gallery = Gallery({"Eileen Collins": Person("Eileen Collins", references=[
        Reference(sha256="0" * 64, source="frame", face=[float(v) for v in reference], face_model=faces.version)])})
    detector = Identity(device="cpu", gallery=gallery)
    detector.probe(clip, clip.source)
    kept = clip.probes[PROBE_KEY]["tracks"][clip.speaker.track_id]
    wanted = choose_observations(clip, clip.speaker, detector.faces_per_track, every_s=detector.face_every_s)
    assert kept.shape == (len(wanted), 128) and len(wanted) == 1  # 7.4 s of face: one crop per started 8 s
    inputs = detector.preprocess(clip)
    assert inputs.tracks[0].chips == [] and inputs.tracks[0].descriptors is kept
    probed = detector(clip)
    clip.probes = {}  # without the probe: the chips are cut and embedded in forward, to the same result
    direct = detector(clip)
    assert probed.evidence == direct.evidence and probed.score == direct.score
    assert direct.evidence["reason"] == "Eileen Collins on screen, but no voice of theirs is enrolled"
    assert direct.evidence["persons"][0]["face_similarity"] > 0.9


@pytest.mark.parametrize("limit", [1, 5])
def test_limit_is_respected(prepared: dict[str, Clip], limit: int) -> None:
    clip = prepared["sync"]
    assert len(get_face_embedder().track_chips(clip, clip.speaker, limit=limit)) == limit
