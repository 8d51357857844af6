"""Detector ``identity``: is the enrolled person shown really speaking with their own voice?

    probe        (``Suite.prepare``, the CPU thread pool) per face track (speaker first): a few aligned face chips
                 (dlib 5-point), the sharpest, most frontal of each stretch of the track, through dlib's ResNet
                 (CPU-only, so it stays off the device thread); the clip's speech found (VAD, kept for the
                 other detectors that ask)
    preprocess   per face track: its descriptors from the probe (or its chips, when no probe ran) and the speech
                 heard while the track is on screen; with several faces on screen during speech, the speech is the
                 face's whose mouth moves most
    _forward     the chips no probe embedded, of every clip, through dlib's ResNet in one call; every speaking
                 track's speech of every clip through the GE2E speaker encoder in one call (sliding 1.6 s windows,
                 hop 0.8 s, for the timeline; their mean is the utterance embedding)
    postprocess  best-matching enrolled person per track (face similarity ≥ threshold, or none); for the matched
                 speaker, voice similarity to that person's enrolled voice and to every other enrolled voice

Score: probability-like "the person shown does not sound like themselves", ``sigmoid((threshold - voice) / 0.04)``,
and at least 0.9 when the voice matches another enrolled person better than the one shown. Not applicable when no
enrolled person is on screen, when the matched person has no enrolled voice, or when nobody speaks.

A low score says the voice matches the enrolled one; it is an identity check, not proof of authenticity: a
good voice clone of the person matches too, so it pairs with ``voice_synthetic`` (anti-spoofing).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from pipeline.contracts import MediaStore

from ._base import Detector, DetectorResult, NotApplicable, Window
from ._clip import Clip
from ._exceptions import ModelError
from ._gallery import Gallery, Person, speech_audio, speech_spans
from ._registry import register
from .configs import IdentityConfig

if TYPE_CHECKING:
    from typing import Self

    from pipeline.contracts import Settings

__all__ = ["Identity"]

logger = logging.getLogger(__name__)

#: sharpness of the voice-mismatch score around the threshold (similarity units)
_SCORE_SCALE = 0.04
#: a voice matching another enrolled person this much better than the shown person's is a strong mismatch
_OTHER_MARGIN = 0.02
#: the probe's descriptors in ``Clip.probes``
PROBE_KEY = "identity_faces"
_WINDOW_S, _HOP_S = 1.6, 0.8


@dataclass
class _Track:
    track_id: int
    start_s: float
    end_s: float
    chips: list[np.ndarray]  # aligned chips still to embed (none when the probe gave ``descriptors``)
    speech: np.ndarray
    speech_s: float
    spans: list[tuple[float, float]] = field(default_factory=list)  # where the concatenated speech came from
    mouth_activity: float = 0.0  # spread of the mouth opening while speech is heard
    prominence: float = 1.0  # the tracker's score: size x centrality x duration
    speaker: bool = True  # the speech heard is taken to be this face's
    descriptors: np.ndarray | None = None  # (n, 128) from the probe

    def clip_time(self, t: float) -> float:
        """A time within the concatenated speech as a time in the clip."""
        at = 0.0
        for lo, hi in self.spans:
            if t <= at + (hi - lo):
                return lo + (t - at)
            at += hi - lo
        return self.spans[-1][1] if self.spans else self.start_s + t


@dataclass
class _Inputs:
    tracks: list[_Track] = field(default_factory=list)


def _mouth_activity(clip: Clip, track: Any, spans: list[tuple[float, float]]) -> float:
    """Standard deviation of the track's mouth opening at frames where speech is heard (0 when unmeasured)."""
    if not spans:
        return 0.0
    times = clip.timestamps[track.frame_index.astype(int)]
    during = np.zeros(len(times), dtype=bool)
    for lo, hi in spans:
        during |= (times >= lo) & (times <= hi)
    mouth = np.asarray(track.mouth_open, dtype=np.float64)[during]
    mouth = mouth[np.isfinite(mouth)]
    return float(np.std(mouth)) if mouth.size >= 3 else 0.0


def _attribute_speech(tracks: list[_Track], min_speech_s: float) -> None:
    """Where several prominent faces are on screen while speech is heard, the speech is the face's whose mouth moves
    most (ties: the tracker's main speaker, listed first); the others are not compared with a voice that is not
    theirs. A face less than half as prominent (a small face in the background, a false detection) takes no
    speech from a larger one."""
    hearing = [t for t in tracks if t.speech_s >= min_speech_s]
    for i, track in enumerate(hearing):
        for j, other in enumerate(hearing):
            overlap = min(track.end_s, other.end_s) - max(track.start_s, other.start_s)
            if j == i or overlap < min_speech_s or other.prominence < 0.5 * track.prominence:
                continue  # one face's track split in two, faces shown one after another, a minor face
            if other.mouth_activity > track.mouth_activity or (other.mouth_activity == track.mouth_activity and j < i):
                track.speaker = False


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


@register
class Identity(Detector[_Inputs, list[dict[str, Any]]]):
    """Face identity against the persons gallery, then the speech against the matched person's enrolled voice."""

    name = "identity"
    version = "1.1"  # 1.1: a few chosen crops per track (sharp, frontal, spread in time) instead of five largest

    config_type = IdentityConfig

    def __init__(self, config: IdentityConfig | None = None, *, gallery: Gallery | None = None,
                 media_store: MediaStore | None = None, device: str | torch.device = "auto", batch_size: int = 8,
                 max_tracks: int = 4, load: bool = True) -> None:
        """``gallery``: the enrolled persons; else read from ``media_store`` at ``load``; with neither, nobody is
        enrolled and every clip is not applicable."""
        super().__init__(device=device, batch_size=batch_size)
        self.config = config if config is not None else IdentityConfig()
        self._gallery = gallery
        self._media_store = media_store
        self.max_tracks = max_tracks
        self.face_threshold = self.config.face_threshold
        self.voice_threshold = self.config.voice_threshold
        self.min_speech_s = self.config.min_speech_s
        self.faces_per_track = self.config.faces_per_track
        self.face_every_s = self.config.face_every_s
        self.gallery: Gallery = Gallery()
        self._gallery_version = self.gallery.version
        self.faces: Any = None
        self.speaker: Any = None
        self.version = f"{type(self).version}+unloaded"
        if load:
            self.load()

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls(settings.detector_config(IdentityConfig), media_store=MediaStore.from_settings(settings),
                   device=settings.device)

    def load(self) -> None:
        """Read the gallery (from the media store unless one was given) and, when it holds anyone, the models."""
        if self._gallery is not None:
            self.gallery = self._gallery
        elif self._media_store is not None:
            try:
                self.gallery = Gallery.load(self._media_store)
            except Exception as exc:  # noqa: BLE001 - an unreadable gallery is the configuration's fault
                raise ModelError(f"identity: {exc}") from exc
        self._gallery_version = self.gallery.version  # a hash over every reference: read once, not per clip
        parts = [type(self).version, self._gallery_version,
                 f"f{self.face_threshold:g}v{self.voice_threshold:g}s{self.min_speech_s:g}"
                 f"c{self.faces_per_track}e{self.face_every_s:g}"]
        if len(self.gallery):
            from ._face_embed import get_face_embedder
            from ._speaker import get_speaker_encoder

            self.faces = get_face_embedder()
            self.speaker = get_speaker_encoder(self.device)
            parts[1:1] = [self.faces.version, self.speaker.version]
        self.version = "+".join(parts)
        logger.info("identity: %d enrolled person(s), version %s", len(self.gallery), self.version)

    # -- hooks
    def probe(self, clip: Clip, path: str) -> None:
        """CPU work done while the clip is prepared (the suite's thread pool): each track's chips through dlib's
        ResNet (one call for the clip), kept in ``clip.probes[PROBE_KEY]``; the clip's speech found (kept in the
        clip's probes for ``preprocess`` and the other detectors: ``_vad.clip_speech``). Nothing without an enrolled
        person."""
        if not len(self.gallery) or not clip.faces:
            return
        if self.faces is None:
            self.load()
        chips = {track.track_id: self._chips(clip, track)
                 for track in clip.faces[: self.max_tracks]}
        descriptors = self.faces.embed([chip for found in chips.values() for chip in found])
        tracks, at = {}, 0
        for track_id, found in chips.items():
            tracks[track_id] = descriptors[at:at + len(found)]
            at += len(found)
        clip.probes[PROBE_KEY] = {"model": self.faces.version, "chips": (self.faces_per_track, self.face_every_s),
                                  "tracks": tracks}
        speech_spans(clip)

    def _chips(self, clip: Clip, track: Any) -> list[np.ndarray]:
        return self.faces.track_chips(clip, track, limit=self.faces_per_track, every_s=self.face_every_s or None)

    def _probed(self, clip: Clip) -> dict[int, np.ndarray]:
        found = clip.probes.get(PROBE_KEY)
        if (not isinstance(found, dict) or found.get("model") != self.faces.version
                or found.get("chips") != (self.faces_per_track, self.face_every_s)):
            return {}
        return dict(found["tracks"])

    def preprocess(self, clip: Clip) -> _Inputs | NotApplicable:
        if not len(self.gallery):
            return NotApplicable("no persons enrolled (vigil persons enroll)")
        if self.faces is None:
            self.load()
        if not clip.faces:
            return NotApplicable("no face on screen")
        inputs = _Inputs()
        probed = self._probed(clip)
        for track in clip.faces[: self.max_tracks]:
            descriptors = probed.get(track.track_id)
            chips = [] if descriptors is not None else self._chips(clip, track)
            if not chips and (descriptors is None or not len(descriptors)):
                continue
            start = float(clip.timestamps[int(track.frame_index[0])])
            end = float(clip.timestamps[int(track.frame_index[-1])]) + 1.0 / max(clip.fps, 1e-6)
            speech, seconds = speech_audio(clip, start, end)
            spans = speech_spans(clip, start, end)
            inputs.tracks.append(_Track(track.track_id, start, end, chips, speech, seconds, spans,
                                        _mouth_activity(clip, track, spans), float(track.score),
                                        descriptors=descriptors))
        if not inputs.tracks:
            return NotApplicable("no face large enough to identify")
        _attribute_speech(inputs.tracks, self.min_speech_s)
        return inputs

    def _forward(self, batch: list[_Inputs]) -> list[list[dict[str, Any]]]:
        tracks = [track for item in batch for track in item.tracks]
        chips = self.faces.embed([chip for track in tracks for chip in track.chips])  # tracks no probe embedded
        speaking = [t for t in tracks if t.speech_s >= self.min_speech_s and t.speaker]
        # the utterance embedding is the normalised mean of its window embeddings (as GE2E averages partials), so
        # the LSTM runs once per window and not twice; the windows of every track of the batch go in one call
        voices = dict(zip((id(t) for t in speaking),
                          self.speaker.embed_windows_many([t.speech for t in speaking], window_s=_WINDOW_S,
                                                          hop_s=_HOP_S), strict=True))
        out: list[list[dict[str, Any]]] = []
        at = 0
        for item in batch:
            raws = []
            for track in item.tracks:
                if track.descriptors is not None:
                    face = track.descriptors
                else:
                    face = chips[at:at + len(track.chips)]
                    at += len(track.chips)
                raw: dict[str, Any] = {"track": track, "face": face.mean(axis=0)}
                if id(track) in voices:
                    spans, windows = voices[id(track)]
                    mean = windows.mean(axis=0)
                    raw["voice"] = mean / max(float(np.linalg.norm(mean)), 1e-12)
                    raw["spans"], raw["windows"] = spans, windows
                raws.append(raw)
            out.append(raws)
        return out

    def _best_face(self, descriptor: np.ndarray) -> tuple[Person | None, float, list[tuple[str, float]]]:
        from ._face_embed import face_similarity

        scored = []
        for person in self.gallery.persons.values():
            refs = person.faces(self.faces.version)
            if len(refs):
                scored.append((person.name, float(np.max(face_similarity(refs, descriptor[None])))))
        scored.sort(key=lambda x: x[1], reverse=True)
        if scored and scored[0][1] >= self.face_threshold:
            return self.gallery.persons[scored[0][0]], scored[0][1], scored
        return None, scored[0][1] if scored else 0.0, scored

    def postprocess(self, raw: list[dict[str, Any]], clip: Clip) -> DetectorResult:
        seen: dict[str, dict[str, Any]] = {}
        judged: list[dict[str, Any]] = []
        best_unmatched = 0.0
        for item in raw:
            person, similarity, _ = self._best_face(np.asarray(item["face"]))
            if person is None:
                best_unmatched = max(best_unmatched, similarity)
                continue
            entry = {"name": person.name, "role": person.role, "face_similarity": round(similarity, 4),
                     "voice_similarity": None, "voice_match": None}
            track: _Track = item["track"]
            voice = person.voice(self.speaker.version)
            if voice is not None and "voice" in item:
                judged.append(self._judge_voice(person, similarity, voice, item, entry))
            if person.name not in seen or (seen[person.name]["face_similarity"] or 0) < similarity:
                seen[person.name] = {**entry, "track_id": track.track_id, "start_s": round(track.start_s, 2),
                                     "end_s": round(track.end_s, 2), "speech_s": round(track.speech_s, 2),
                                     "speaking": track.speaker}
        persons = [{k: v for k, v in p.items() if k in ("name", "role", "face_similarity", "voice_similarity",
                                                             "voice_match")} for p in seen.values()]
        annotations = {"persons": persons} if persons else {}
        if not seen:
            return DetectorResult.not_applicable(
                self.name, self.version, "no enrolled person on screen",
                best_face_similarity=round(best_unmatched, 4), face_threshold=self.face_threshold,
                gallery=self._gallery_version)
        if not judged:
            names = ", ".join(seen)
            without_voice = [n for n in seen if self.gallery.persons[n].voice(self.speaker.version) is None]
            if len(without_voice) == len(seen):
                why = f"{names} on screen, but no voice of theirs is enrolled"
            elif any(not item["track"].speaker for item in raw):
                why = f"{names} on screen, but the speech heard is another face's (its mouth moves more)"
            else:
                why = (f"{names} on screen, but nobody speaks while they are shown "
                       f"(needs {self.min_speech_s:g} s of speech)")
            result = DetectorResult.not_applicable(self.name, self.version, why, persons=list(seen.values()),
                                                   gallery=self._gallery_version)
            result.annotations = annotations
            return result
        worst = max(judged, key=lambda j: j["score"])
        evidence = {**worst["evidence"], "persons": list(seen.values()), "gallery": self._gallery_version,
                    "face_threshold": self.face_threshold, "voice_threshold": self.voice_threshold,
                    "reasons": [j["reason"] for j in sorted(judged, key=lambda j: j["score"], reverse=True)]}
        return self.result(applicable=True, score=float(worst["score"]), timeline=worst["timeline"],
                           evidence=evidence, annotations=annotations)

    def _judge_voice(self, person: Person, face_sim: float, voice: np.ndarray, item: dict[str, Any],
                     entry: dict[str, Any]) -> dict[str, Any]:
        track: _Track = item["track"]
        own = float(np.dot(item["voice"], voice))
        others = []
        for other in self.gallery.persons.values():
            if other.name == person.name:
                continue
            other_voice = other.voice(self.speaker.version)
            if other_voice is not None:
                others.append((other.name, float(np.dot(item["voice"], other_voice))))
        others.sort(key=lambda x: x[1], reverse=True)
        score = _sigmoid((self.voice_threshold - own) / _SCORE_SCALE)
        match = own >= self.voice_threshold
        if match:
            reason = (f"face matches {person.name} ({face_sim:.2f}) and the voice matches the enrolled voice "
                      f"({own:.2f}, threshold {self.voice_threshold:.2f})")
        else:
            reason = (f"face matches {person.name} ({face_sim:.2f}); the voice does not match {person.name}'s enrolled "
                      f"voice ({own:.2f}, threshold {self.voice_threshold:.2f})")
        if others and others[0][1] >= self.voice_threshold and others[0][1] > own + _OTHER_MARGIN:
            score = max(score, 0.9)
            match = False
            reason = (f"face matches {person.name} ({face_sim:.2f}) but the voice matches {others[0][0]}'s enrolled "
                      f"voice ({others[0][1]:.2f}) better than {person.name}'s ({own:.2f})")
        entry["voice_similarity"], entry["voice_match"] = round(own, 4), bool(match)
        spans, windows = item.get("spans"), item.get("windows")
        timeline: list[Window] = []
        compared = []
        if spans is not None and len(spans):
            # window times are within the track's concatenated speech: map them back to the clip's time
            sims = np.asarray(windows) @ voice
            for (s, e), sim in zip(spans, sims, strict=True):
                start, end = track.clip_time(float(s)), track.clip_time(float(e))
                timeline.append(Window(start, end, _sigmoid((self.voice_threshold - float(sim)) / _SCORE_SCALE)))
                compared.append({"start_s": round(start, 2), "end_s": round(end, 2),
                                 "voice_similarity": round(float(sim), 4)})
        evidence = {"person": person.name, "role": person.role, "face_similarity": round(face_sim, 4),
                    "voice_similarity": round(own, 4), "voice_match": bool(match), "track_id": track.track_id,
                    "speech_s": round(track.speech_s, 2), "windows": compared,
                    "closest_other_voice": ({"name": others[0][0], "voice_similarity": round(others[0][1], 4)}
                                            if others else None)}
        return {"score": score, "reason": reason, "timeline": timeline, "evidence": evidence}
