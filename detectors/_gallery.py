"""The persons gallery: enrolled people of interest (candidates, officials, journalists) with face and voice reference
embeddings, kept in the media store so that every worker on every host reads the same one.

    <store>/persons/gallery.json   {"schema": "vigil.persons/1", "persons": {NAME: {role, notes, references: […]}}}

Enrolment decodes each reference file (a video, a photo or a voice recording) with the shared decoder, takes the
one dominant face (a clip with several faces of similar size is ambiguous and its face is not used) and the speech
in it, and stores one face descriptor and one voice embedding per reference with the file's sha256 and the model
versions. Enrolling a name again adds its new references (a file already enrolled replaces its old entry).
The gallery's ``version`` (a hash of names, roles and reference embeddings) enters the identity detector's version,
and so the suite version: a changed gallery gives new detection documents.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline import VigilError

from ._clip import AUDIO_RATE, Clip
from ._exceptions import MediaError, NotAVideo
from ._vad import clip_speech

if TYPE_CHECKING:
    from pipeline.contracts import MediaStore

    from ._face_embed import FaceEmbedder
    from ._faces import FaceTracker
    from ._speaker import SpeakerEncoder

__all__ = ["Gallery", "Person", "Reference", "GalleryError", "EnrolmentError", "EnrolmentReport", "enroll",
           "load_reference", "speech_audio", "speech_spans", "GALLERY_FILE", "SCHEMA"]

logger = logging.getLogger(__name__)

SCHEMA = "vigil.persons/1"
GALLERY_FILE = "persons/gallery.json"
ROLES = ("candidate", "official", "journalist", "other")
#: a second face this close in prominence to the first makes a reference clip ambiguous
AMBIGUOUS_RATIO = 0.6


class GalleryError(VigilError):
    """The gallery cannot be read or written, or holds something invalid."""


class EnrolmentError(GalleryError):
    """Nothing usable could be enrolled from the given references."""


@dataclass
class Reference:
    """One enrolled file: its hash and what was taken from it."""

    sha256: str
    source: str
    face: list[float] | None = None  # dlib descriptor (128)
    voice: list[float] | None = None  # GE2E embedding (256), L2-normalised
    face_model: str | None = None
    voice_model: str | None = None
    speech_s: float = 0.0
    face_crops: int = 0
    enrolled_at: str = ""


@dataclass
class Person:
    """An enrolled person of interest."""

    name: str
    role: str = "other"
    notes: str = ""
    references: list[Reference] = field(default_factory=list)

    def faces(self, model: str) -> np.ndarray:
        """(n, 128) face descriptors made with ``model``."""
        rows = [r.face for r in self.references if r.face is not None and r.face_model == model]
        return np.asarray(rows, dtype=np.float32).reshape(-1, 128)

    def voice(self, model: str) -> np.ndarray | None:
        """The enrolled voice: the L2-normalised mean of the references' voice embeddings made with ``model``."""
        rows = [r.voice for r in self.references if r.voice is not None and r.voice_model == model]
        if not rows:
            return None
        mean = np.mean(np.asarray(rows, dtype=np.float64), axis=0)
        norm = float(np.linalg.norm(mean))
        return (mean / norm).astype(np.float32) if norm > 0 else None


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class Gallery:
    """Enrolled persons, read from and written to ``<store>/persons/gallery.json``."""

    def __init__(self, persons: dict[str, Person] | None = None) -> None:
        self.persons: dict[str, Person] = dict(persons or {})

    def __len__(self) -> int:
        return len(self.persons)

    def __repr__(self) -> str:
        return f"Gallery({len(self)} persons, version={self.version!r})"

    @property
    def version(self) -> str:
        """``gallery-<hash>`` of names, roles and reference embeddings (``gallery-empty`` without persons)."""
        if not self.persons:
            return "gallery-empty"
        content = {name: {"role": p.role, "refs": sorted(
            (r.sha256, r.face_model or "", r.voice_model or "",
             hashlib.sha256(json.dumps([r.face, r.voice]).encode()).hexdigest()) for r in p.references)}
            for name, p in sorted(self.persons.items())}
        return "gallery-" + hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:12]

    # -- storage
    @staticmethod
    def _path(store: MediaStore) -> str:
        return f"{store.root}/{GALLERY_FILE}"

    @classmethod
    def load(cls, store: MediaStore) -> Gallery:
        """The gallery in ``store`` (an empty one when none was saved yet)."""
        path = cls._path(store)
        try:
            if not store.fs.exists(path):
                return cls()
            with store.fs.open(path, "rb") as handle:
                data = json.loads(handle.read().decode("utf-8"))
        except (OSError, ValueError) as exc:
            raise GalleryError(f"cannot read the persons gallery {store.fs.unstrip_protocol(path)}: {exc}") from exc
        return cls.from_dict(data, where=store.fs.unstrip_protocol(path))

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "gallery") -> Gallery:
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise GalleryError(f"{where} is not a {SCHEMA} file")
        persons = {}
        try:
            for name, entry in (data.get("persons") or {}).items():
                refs = [Reference(**ref) for ref in entry.get("references", [])]
                persons[name] = Person(name=name, role=entry.get("role", "other"), notes=entry.get("notes", ""),
                                       references=refs)
        except (TypeError, AttributeError) as exc:
            raise GalleryError(f"{where} is invalid: {exc}") from exc
        return cls(persons)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "version": self.version,
                "persons": {name: {"role": p.role, "notes": p.notes,
                                   "references": [asdict(r) for r in p.references]}
                            for name, p in sorted(self.persons.items())}}

    def save(self, store: MediaStore) -> str:
        """Write the gallery (whole file, replaced at once); returns its URI."""
        path = self._path(store)
        parent = path.rsplit("/", 1)[0]
        partial = f"{parent}/.gallery.{uuid.uuid4().hex[:8]}.partial"
        try:
            store.fs.makedirs(parent, exist_ok=True)
            with store.fs.open(partial, "wb") as handle:
                handle.write(json.dumps(self.to_dict(), indent=1).encode("utf-8"))
            store.fs.mv(partial, path)
        except OSError as exc:
            raise GalleryError(f"cannot write the persons gallery to {store.location}: {exc}") from exc
        return store.fs.unstrip_protocol(path)

    # -- changes
    def add(self, name: str, references: list[Reference], *, role: str | None = None,
            notes: str | None = None) -> Person:
        """Add (or update) ``name`` with ``references``; a reference with a known sha256 replaces the old one."""
        name = name.strip()
        if not name:
            raise GalleryError("a person needs a name")
        person = self.persons.get(name) or Person(name=name)
        if role is not None:
            person.role = role
        if notes is not None:
            person.notes = notes
        new = {r.sha256 for r in references}
        person.references = [r for r in person.references if r.sha256 not in new] + list(references)
        self.persons[name] = person
        return person

    def remove(self, name: str) -> Person:
        try:
            return self.persons.pop(name)
        except KeyError:
            raise GalleryError(f"no person named {name!r} is enrolled") from None


# ---------------------------------------------------------------------------------------------------------------
# reference media


def _decode_audio(path: Path) -> np.ndarray:
    import av

    resampler = av.AudioResampler(format="s16", layout="mono", rate=AUDIO_RATE)
    chunks: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise NotAVideo("no audio stream", source=str(path))
            for frame in container.decode(container.streams.audio[0]):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except av.error.FFmpegError as exc:
        raise MediaError(f"cannot decode the audio ({exc})", source=str(path)) from exc
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    return (np.concatenate(chunks).astype(np.float32) / 32768.0)


def _decode_image(path: Path, max_side: int) -> np.ndarray:
    import av

    try:
        with av.open(str(path)) as container:
            frame = next(container.decode(video=0))
            image = frame.to_ndarray(format="rgb24")
    except (av.error.FFmpegError, StopIteration) as exc:
        raise MediaError(f"cannot decode the image ({exc})", source=str(path)) from exc
    scale = max_side / max(image.shape[:2])
    if scale < 1:
        import cv2

        image = cv2.resize(image, (int(image.shape[1] * scale), int(image.shape[0] * scale)),
                           interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image)


def load_reference(path: str | Path, *, fps: float = 5.0, max_side: int = 640,
                   max_duration_s: float | None = None) -> Clip:
    """A reference file as a Clip: a video through the shared decoder, a photo as one frame, a voice recording as
    audio without frames. Raises MediaError for anything else."""
    from ._decode import decode_clip

    path = Path(path)
    try:
        return decode_clip(path, fps=fps, max_side=max_side, max_duration_s=max_duration_s)
    except NotAVideo as exc:
        if "audio only" in str(exc):
            audio = _decode_audio(path)
            return Clip(source=str(path), duration_s=audio.size / AUDIO_RATE, fps=fps,
                        frames=np.zeros((0, 1, 1, 3), dtype=np.uint8), timestamps=np.zeros(0), audio=audio)
        if "still image" not in str(exc):
            raise
    image = _decode_image(path, max_side)
    return Clip(source=str(path), duration_s=0.0, fps=fps, frames=image[None], timestamps=np.zeros(1),
                audio=None, width=image.shape[1], height=image.shape[0])


def speech_spans(clip: Clip, start_s: float = 0.0, end_s: float | None = None) -> list[tuple[float, float]]:
    """(start, end) seconds of the speech in ``clip`` between ``start_s`` and ``end_s`` (energy VAD)."""
    if not clip.has_audio:
        return []
    assert clip.audio is not None
    end_s = clip.audio.size / clip.sample_rate if end_s is None else end_s
    spans = []
    for segment in clip_speech(clip):
        lo, hi = max(segment.start_s, start_s), min(segment.end_s, end_s)
        if hi - lo > 0.1:
            spans.append((lo, hi))
    return spans


def speech_audio(clip: Clip, start_s: float = 0.0, end_s: float | None = None) -> tuple[np.ndarray, float]:
    """The speech of ``clip`` between ``start_s`` and ``end_s``, silences cut out: (audio, seconds of speech)."""
    spans = speech_spans(clip, start_s, end_s)
    if not spans:
        return np.zeros(0, dtype=np.float32), 0.0
    assert clip.audio is not None
    rate = clip.sample_rate
    speech = np.concatenate([clip.audio[int(lo * rate):int(hi * rate)] for lo, hi in spans]).astype(np.float32)
    return speech, speech.size / rate


@dataclass
class EnrolmentReport:
    """What enrolment took from each reference, in words, and the resulting person."""

    person: Person
    gallery_version: str
    notes: list[str] = field(default_factory=list)


def enroll(name: str, files: list[tuple[Path, str]], *, gallery: Gallery, tracker: FaceTracker,
           faces: FaceEmbedder, speaker: SpeakerEncoder, role: str | None = None, notes: str | None = None,
           min_speech_s: float = 1.0, crops: int = 9, fps: float = 5.0, max_side: int = 640,
           max_duration_s: float | None = None) -> EnrolmentReport:
    """Take face and voice references of ``name`` from ``files`` ((local path, source label) pairs) into
    ``gallery`` (not saved here). Raises EnrolmentError when no file gave a face or a voice."""
    from pipeline.contracts import sha256_file

    references: list[Reference] = []
    said: list[str] = []
    for path, label in files:
        try:
            clip = load_reference(path, fps=fps, max_side=max_side, max_duration_s=max_duration_s)
        except MediaError as exc:
            said.append(f"{label}: not used ({exc})")
            continue
        if len(clip.frames):
            tracker(clip)
        ref = Reference(sha256=sha256_file(path), source=label, enrolled_at=_now())
        track = clip.faces[0] if clip.faces else None
        ambiguous = len(clip.faces) > 1 and clip.faces[1].score >= AMBIGUOUS_RATIO * clip.faces[0].score
        if ambiguous:
            said.append(f"{label}: ambiguous, {len(clip.faces)} faces of similar prominence; neither its face nor "
                        f"its voice is used (give a clip with one dominant face)")
            continue
        if track is not None:
            descriptors = faces.embed(faces.track_chips(clip, track, limit=crops))
            if len(descriptors):
                ref.face = [round(float(v), 6) for v in descriptors.mean(axis=0)]
                ref.face_model, ref.face_crops = faces.version, int(len(descriptors))
        if track is not None and len(clip.timestamps):
            span = (float(clip.timestamps[track.frame_index[0]]),
                    float(clip.timestamps[track.frame_index[-1]]) + 1.0 / clip.fps)
            speech, seconds = speech_audio(clip, *span) if len(clip.frames) > 1 else speech_audio(clip)
        else:
            speech, seconds = speech_audio(clip)
        if seconds >= min_speech_s:
            ref.voice = [round(float(v), 6) for v in speaker.embed(speech)]
            ref.voice_model, ref.speech_s = speaker.version, round(seconds, 2)
        elif seconds > 0:
            said.append(f"{label}: only {seconds:.1f} s of speech (needs {min_speech_s:g} s); voice not used")
        if ref.face is None and ref.voice is None:
            said.append(f"{label}: no face and no speech found; not used")
            continue
        took = [part for part, ok in (("face", ref.face is not None), (f"voice ({ref.speech_s:.1f} s of speech)",
                                                                          ref.voice is not None)) if ok]
        said.append(f"{label}: {' and '.join(took)}")
        references.append(ref)
    if not references:
        raise EnrolmentError(f"nothing enrolled for {name!r}: " + "; ".join(said))
    person = gallery.add(name, references, role=role, notes=notes)
    return EnrolmentReport(person=person, gallery_version=gallery.version, notes=said)
