"""Accuracy of the lipsync and spectral detectors on generated media nothing was tuned on.

Lip-sync (whole clip): talking heads speaking HELDOUT_SENTENCES (the tests speak others), several espeak-ng voices
and speaking rates, audio offsets the tests do not use, every clip re-encoded at a low bitrate (H.264 150 kb/s, AAC 32 kb/s)
before decoding. Reports, at the suite's sampling rate:

- offset-detection rate: share of clips offset by >= 150 ms that are flagged (score >= 0.5) with the offset
  recovered within one sampled-frame interval (and within 40 ms, for the record);
- false-flag rate: share of clips within ±80 ms (in sync by broadcast standards) that are flagged;
- the mean absolute offset error; dubs (mouth says one sentence, audio another) flagged, for the record.

Splices (partial manipulations): long talking heads (~30 s: four HELDOUT_SENTENCES with pauses, HELDOUT_VOICES,
HELDOUT_FACES, seeds from 5000) with one stretch of 1-5 s at a random place replaced by another voice saying other
words (``voice``) or shifted by 200-450 ms (``shift``), and as many authentic long clips with pauses, head turns,
cutaways, music and an off-screen second speaker; re-encoded like the lip-sync set. The thresholds were tuned on
``make_long_clip`` defaults only (SENTENCES, TUNING_VOICES, TUNING_FACES, seeds below 1000). Reports, for the
lipsync + voice_change suite fused as the worker does (``detectors._segments.locate``):

- splice recall: share of spliced clips flagged (fused >= 0.5) with a segment overlapping the spliced stretch;
- localisation: IoU of the best overlapping segment with the truth (mean, and share >= 0.5);
- false flags on authentic long clips: share flagged, and share with any segment;
- the lipsync dub/shift call on the located splices, for the record.

Real material (``--real check``, the default; ``infra/media/fetch`` first): recordings made by people
(``detectors.realmedia``: franck's conversation in 8 s stretches, webcam, selfie, stock and phone footage) as they
are, the same faces dubbed with other real voices, real photos driven by real speech in sync and 300 ms late or with 2 s of
another real voice spliced into the reading (located: a lipsync stretch over the splice), and
platform-style copies of each (240p, 360p, 24 and 30 fps, vertical with a blurred fill, mirrored and cropped, a copy
of a copy, phone audio). Reports per kind the share flagged (fused >= 0.5) with a bootstrap 95 % interval, on
authentic material also the share with any detector at >= 0.5 (flagged = verdict suspicious or likely_manipulated;
photos made to talk count as manipulated: they are one-shot avatars), and the verdict stability of the copies against
their originals (offsets within 80 ms). Thresholds were chosen on ``--real tune``; ``check`` is what docs/research/accuracy.md shows.

Spectral: camera-like vs generator-upsampled frames from HELDOUT_PHOTOS (the model file was fitted on PHOTOS), as
generated and JPEG re-compressed at quality 75; reports the AUC.

    python bench/detector_accuracy.py                 # about 15-20 minutes on 2 CPU cores (splices: most of it)
    python bench/detector_accuracy.py --splices 0     # the whole-clip lip-sync and spectral figures only
    python bench/detector_accuracy.py --json bench/out/detector_accuracy.json
    python bench/detector_accuracy.py --only-real [--real tune] [--copies 0]   # the real material only
"""
from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

POSITIVE_OFFSETS = (-600.0, -320.0, -250.0, -180.0, 180.0, 250.0, 320.0, 600.0)
NEGATIVE_OFFSETS = (-80.0, -40.0, 0.0, 40.0, 80.0)
LONG_FPS = 12.5  # the long clips' video rate: above the 5 fps the suite samples, and 2x cheaper to make than 25
VOICES = (("en-us", 150, 50), ("en-gb", 170, 40), ("en-gb-scotland", 135, 60))


def reencode(src: Path, dst: Path) -> None:
    """A low-bitrate re-encode, as a re-upload to a platform would do."""
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-i", str(src),
                    "-c:v", "libx264", "-preset", "veryfast", "-b:v", "150k", "-maxrate", "200k", "-bufsize",
                    "300k", "-c:a", "aac", "-b:a", "32k", str(dst)], check=True, capture_output=True)


def _ci(flags: list[bool]) -> list[float] | None:
    """A bootstrap 95 % interval of a rate (``detectors._evaluate.rate_ci``), rounded for the report."""
    from detectors._evaluate import rate_ci

    interval = rate_ci(np.asarray(flags, dtype=bool)) if flags else None
    return [round(interval[0], 3), round(interval[1], 3)] if interval else None


def make_lipsync_set(directory: Path, per_offset: int) -> list[dict[str, object]]:
    from detectors.synthetic import HELDOUT_SENTENCES, make_talking_clip

    directory.mkdir(parents=True, exist_ok=True)
    items: list[dict[str, object]] = []
    combos = itertools.cycle(itertools.product(HELDOUT_SENTENCES, VOICES))
    specs = [("talking", o) for o in POSITIVE_OFFSETS + NEGATIVE_OFFSETS for _ in range(per_offset)]
    specs += [("mismatched", 0.0)] * per_offset * 2
    for i, (kind, offset) in enumerate(specs):
        text, (voice, wpm, pitch) = next(combos)
        raw = directory / f"raw{i:03d}.mp4"
        final = directory / f"clip{i:03d}_{kind}_{int(offset):+d}.mp4"
        if not final.exists():
            other = HELDOUT_SENTENCES[(HELDOUT_SENTENCES.index(text) + 2) % len(HELDOUT_SENTENCES)]
            make_talking_clip(raw, text, offset_ms=offset, kind=kind, seed=1000 + i, crf=28, other_text=other,
                              voice=voice, words_per_minute=wpm, pitch=pitch)
            reencode(raw, final)
            raw.unlink()
        items.append({"path": final, "kind": kind, "offset_ms": offset})
    return items


def lipsync_accuracy(items: list[dict[str, object]], fps: float) -> dict[str, object]:
    from detectors import FaceTracker, LipSync, decode_clip

    tracker, detector = FaceTracker(), LipSync(device="cpu")
    clips = [_tracked(item["path"], fps, tracker) for item in items]  # type: ignore[arg-type]
    results = detector(clips)
    frame_ms = 1000.0 / fps
    rows = []
    for item, result in zip(items, results, strict=True):
        rows.append({"kind": item["kind"], "truth_ms": item["offset_ms"], "applicable": result.applicable,
                     "score": result.score, "offset_ms": result.evidence.get("offset_ms"),
                     "flagged": result.flagged})
    pos = [r for r in rows if r["kind"] == "talking" and abs(r["truth_ms"]) >= 150]
    neg = [r for r in rows if r["kind"] == "talking" and abs(r["truth_ms"]) <= 80]
    dubs = [r for r in rows if r["kind"] == "mismatched"]
    talking = [r for r in rows if r["kind"] == "talking" and r["applicable"]]
    errors = [abs(r["offset_ms"] - r["truth_ms"]) for r in talking]

    def hit(r: dict[str, object], tol: float) -> bool:
        return bool(r["flagged"]) and abs(r["offset_ms"] - r["truth_ms"]) <= tol  # type: ignore[operator]

    return {
        "fps": fps, "n": len(rows), "n_offset": len(pos), "n_in_sync": len(neg), "n_dubs": len(dubs),
        "not_applicable": sum(not r["applicable"] for r in rows),
        "offset_detection_rate": float(np.mean([hit(r, frame_ms) for r in pos])),
        "offset_detection_rate_40ms": float(np.mean([hit(r, 40.0) for r in pos])),
        "false_flag_rate": float(np.mean([r["flagged"] for r in neg])),
        "false_flag_rate_ci": _ci([r["flagged"] for r in neg]),
        "offset_detection_rate_ci": _ci([hit(r, frame_ms) for r in pos]),
        "mean_abs_offset_error_ms": float(np.mean(errors)) if errors else None,
        "max_abs_offset_error_ms": float(np.max(errors)) if errors else None,
        "dub_flag_rate": float(np.mean([r["flagged"] for r in dubs])) if dubs else None,
        "rows": rows,
    }


def make_splice_set(directory: Path, n_splices: int, n_authentic: int, seed: int = 5000) -> list[dict[str, object]]:
    """Held-out long clips: ``n_splices`` with one splice (kinds alternating) and ``n_authentic`` without."""
    from detectors.synthetic import HELDOUT_FACES, HELDOUT_SENTENCES, HELDOUT_VOICES, make_long_clip

    directory.mkdir(parents=True, exist_ok=True)
    seed0 = seed
    spliced = [("voice", "shift")[i % 2] for i in range(n_splices)]
    kinds = [k for pair in itertools.zip_longest(spliced, ["authentic"] * n_authentic) for k in pair if k]
    items: list[dict[str, object]] = []
    for i, kind in enumerate(kinds):
        seed = seed0 + i
        final = directory / f"long{i:03d}_{kind}.mp4"
        meta = final.with_suffix(".json")
        if not (final.exists() and meta.exists()):
            raw = directory / f"long{i:03d}_raw.mp4"
            made = make_long_clip(raw, kind=kind, seed=seed, sentences=HELDOUT_SENTENCES, voices=HELDOUT_VOICES,
                                  faces=HELDOUT_FACES, crf=28, fps=LONG_FPS)
            reencode(raw, final)
            raw.unlink()
            meta.write_text(json.dumps({"kind": kind, "splice": made.splice, "shift_ms": made.shift_ms,
                                        "face": made.face, "voice": made.voice, "events": made.events,
                                        "duration_s": made.duration_s, "seed": seed}))
        items.append({"path": final, **json.loads(meta.read_text())})
    return items


def _iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def _tracked(path: Path, fps: float, tracker: object) -> object:
    """The clip decoded and face-tracked (cached beside the media: decoding and tracking a 30 s clip is most of the
    evaluation's time, and the cache holds only what the media determines), then probed as ``Suite.prepare`` does:
    lipsync reads the speaker's mouth from the file at its own rate (not cached: it follows the code)."""
    import pickle

    from detectors import LipSync, decode_clip

    cache = path.with_suffix(f".{fps:g}fps.clip.pkl")
    if cache.exists():
        with cache.open("rb") as handle:
            clip = pickle.load(handle)
    else:
        clip = tracker(decode_clip(path, fps=fps))  # type: ignore[operator]
        with cache.open("wb") as handle:
            pickle.dump(clip, handle)
    clip.probes = {}  # a cache written before probes existed lacks the field
    LipSync(device="cpu").probe(clip, str(path))
    return clip


def splice_accuracy(items: list[dict[str, object]], fps: float) -> dict[str, object]:
    from detectors import FaceTracker, Fusion, LipSync, registered, run_detector
    from detectors._segments import locate

    tracker, fusion = FaceTracker(), Fusion()
    detectors = [LipSync(device="cpu")]
    if "voice_change" in registered():
        try:
            detectors.append(registered()["voice_change"](device="cpu"))
        except Exception as exc:  # noqa: BLE001 - the figure is then lipsync's alone, and says so
            print(f"voice_change left out: {exc}")
    clips = [_tracked(item["path"], fps, tracker) for item in items]  # type: ignore[arg-type]
    per_detector = {d.name: run_detector(d, clips) for d in detectors}
    rows = []
    for i, (item, clip) in enumerate(zip(items, clips, strict=True)):
        results = {name: fusion.calibrate(out[i]) for name, out in per_detector.items()}
        fused, segments = locate(results, fusion.fuse(results), fusion.calibration, duration_s=clip.duration_s)
        truth = tuple(item["splice"]) if item["splice"] else None  # type: ignore[arg-type]
        overlapping = [s for s in segments if truth and s.end_s > truth[0] and s.start_s < truth[1]]
        best = max(overlapping, key=lambda s: _iou((s.start_s, s.end_s), truth), default=None)  # type: ignore[arg-type]
        lip = results["lipsync"]
        rows.append({"path": str(item["path"]), "kind": item["kind"], "truth": truth,
                     "length_s": round(truth[1] - truth[0], 2) if truth else None,
                     "flagged": fused.score is not None and fused.score >= 0.5, "score": fused.score,
                     "segments": [s.model_dump() for s in segments],
                     "located": best is not None,
                     "iou": round(_iou((best.start_s, best.end_s), truth), 3) if best and truth else 0.0,
                     "lipsync_call": (lip.evidence.get("stretches") or [{}])[0].get("kind") if lip.applicable else None,
                     "by": best.detectors if best else [], "events": [e[0] for e in item["events"]]})  # type: ignore[index]
    spliced = [r for r in rows if r["kind"] != "authentic"]
    authentic = [r for r in rows if r["kind"] == "authentic"]

    def rate(values: list[bool]) -> float | None:
        return float(np.mean(values)) if values else None

    hits = [r for r in spliced if r["flagged"] and r["located"]]
    by_length = {}
    for low, high in ((1.0, 2.0), (2.0, 3.5), (3.5, 5.01)):
        group = [r for r in spliced if low <= r["length_s"] < high]  # type: ignore[operator]
        by_length[f"{low:g}-{min(high, 5):g} s"] = {"n": len(group), "recall": rate([r in hits for r in group])}
    return {
        "fps": fps, "detectors": [d.name for d in detectors], "n_spliced": len(spliced), "n_authentic": len(authentic),
        "splice_recall": rate([r in hits for r in spliced]),
        "recall_voice": rate([r in hits for r in spliced if r["kind"] == "voice"]),
        "recall_shift": rate([r in hits for r in spliced if r["kind"] == "shift"]),
        "by_length": by_length,
        "mean_iou": float(np.mean([r["iou"] for r in hits])) if hits else None,
        "iou_at_least_0.5": rate([r["iou"] >= 0.5 for r in hits]),
        "false_flag_rate": rate([r["flagged"] for r in authentic]),
        "authentic_with_a_segment": rate([bool(r["segments"]) for r in authentic]),
        "shift_called_shift": rate([r["lipsync_call"] == "shift" for r in hits if r["kind"] == "shift"]),
        "voice_called_dub": rate([r["lipsync_call"] == "dub" for r in hits if r["kind"] == "voice"]),
        "rows": rows,
    }


def spectral_accuracy(n_per_class: int) -> dict[str, object]:
    import cv2
    from sklearn.metrics import roc_auc_score

    from detectors import Clip, Spectral
    from detectors.synthetic import HELDOUT_PHOTOS, spectral_images

    images, labels = spectral_images(n_per_class, seed=7, photos=HELDOUT_PHOTOS)
    detector = Spectral(device="cpu")

    def scores(frames: np.ndarray) -> np.ndarray:
        clips = [Clip(source=str(i), duration_s=0.2, fps=5.0, frames=frames[i:i + 1], timestamps=np.zeros(1),
                      audio=None) for i in range(len(frames))]
        return np.array([r.score for r in detector(clips)])

    def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
        ok, buf = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]

    clean = scores(images)
    compressed = scores(np.stack([jpeg(im, 75) for im in images]))
    return {"n": len(labels), "photos": list(HELDOUT_PHOTOS),
            "auc": float(roc_auc_score(labels, clean)), "auc_jpeg75": float(roc_auc_score(labels, compressed)),
            "tpr_at_0.5": float(np.mean(clean[labels == 1] >= 0.5)),
            "fpr_at_0.5": float(np.mean(clean[labels == 0] >= 0.5))}


# -- real material (detectors.realmedia: recordings made by people, fetched by infra/media/fetch) -------------------

REAL_DETECTORS = ("lipsync", "spectral", "voice_change", "face_dynamics")


def _real_suite(fps: float) -> Any:
    from detectors import Fusion, Suite, registered

    names = [n for n in REAL_DETECTORS if n in registered()]
    return Suite([registered()[n](device="cpu") for n in names], fusion=Fusion(), fps=fps)


def make_real_set(directory: Path, split: str, *, copies: int = 3, max_dubs: int = 30, draw: int = 0
                  ) -> list[dict[str, Any]]:
    """The real material of one split: authentic recordings (video segments of 8 s, whole short clips), real faces
    dubbed with other real voices, real photos driven by real speech in sync and 300 ms late; with platform-style
    copies (``detectors.realmedia.PLATFORM_COPIES``) of the first ``copies`` files of each kind. ``draw`` > 0 picks
    other voices of the same split for the dubs and photos (another sample of the same material)."""
    from detectors import realmedia as rm

    if draw:
        directory = directory.with_name(f"{directory.name}_draw{draw}")
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng((11 if split == "check" else 3) + 1000 * draw)
    items: list[dict[str, Any]] = []
    voices = rm.entries(kind="speech", split=split)
    for e in rm.entries(kind=("video_face_silent", "video_face_audio", "video_other")):
        segments = e.segments_in(split) if e.segments else ([None] if e.in_split(split) else [])
        for k, seg in enumerate(segments):
            name = f"{e.id.replace('/', '_')}_{k:02d}"
            authentic = directory / f"auth_{name}.mp4"
            if not authentic.exists():
                rm.cut(e, seg.start_s if seg else 0.0, (seg.end_s - seg.start_s) if seg else min(e.duration_s or 20, 20),
                       authentic)
            items.append({"path": authentic, "kind": "authentic", "label": 0, "source": e.id})
            if e.kind == "video_other" or len([i for i in items if i["kind"] == "real_dub"]) >= max_dubs:
                continue
            dub = directory / f"dub_{name}.mp4"
            if not dub.exists():
                picks = [voices[int(j)] for j in rng.choice(len(voices), 6, replace=False)]
                rm.make_real_dub(dub, e, seg, picks, seed=k)
            items.append({"path": dub, "kind": "real_dub", "label": 1, "source": e.id})
    for k, photo in enumerate(rm.entries(kind="photo_face", split=split)):
        long_voices = [v for v in voices if (v.duration_s or 0) >= 3.5] or voices
        voice = long_voices[int(rng.integers(len(long_voices)))]
        for offset in (0.0, 300.0):
            dst = directory / f"photo_{photo.id.replace('/', '_')}_{int(offset)}.mp4"
            if not dst.exists():
                rm.make_real_photo_talking(dst, photo, voice, offset_ms=offset, seed=k)
            # a still photo made to talk is a one-shot avatar (face_dynamics' case), in sync or not; lipsync should
            # stay calm on the in-sync ones and find the 300 ms
            items.append({"path": dst, "kind": "photo_in_sync" if offset == 0 else "photo_offset", "label": 1,
                          "offset_ms": offset, "source": photo.id})
    # a sentence of another real voice spliced into real speech (2 s in the middle of a reading of >= 8 s)
    long_readers = [v for v in voices if (v.duration_s or 0) >= 8.0]
    others = [v for v in voices if (v.duration_s or 0) >= 2.0]
    for k, photo in enumerate(rm.entries(kind="photo_face", split=split)):
        if not long_readers or len(others) < 2:
            break
        reader = long_readers[k % len(long_readers)]
        other = next(v for v in others[(k * 7) % len(others):] + others if v.id != reader.id)
        start = 0.5 + min(8.0, reader.duration_s or 8.0) / 2 - 1.0
        dst = directory / f"splice_{photo.id.replace('/', '_')}.mp4"
        if not dst.exists():
            rm.make_real_photo_talking(dst, photo, reader, seed=k, max_s=8.0, splice=(start, start + 2.0),
                                       splice_voice=other)
        items.append({"path": dst, "kind": "photo_splice", "label": 1, "splice": (start, start + 2.0),
                      "source": photo.id})
    for kind in ("authentic", "real_dub", "photo_in_sync", "photo_offset"):
        for item in [i for i in items if i["kind"] == kind][:copies]:
            for copy_name, copy in rm.platform_copies(item["path"], directory / "copies" / item["path"].stem).items():
                items.append({**item, "path": copy, "copy_of": item["path"], "copy": copy_name})
    return items


def real_accuracy(items: list[dict[str, Any]], fps: float) -> dict[str, Any]:
    """Per kind: flagged (fused >= 0.5) with a bootstrap 95 % interval, any detector at >= 0.5 on authentic
    material, and verdict stability of the platform-style copies against their original."""
    from detectors._evaluate import rate_ci

    suite = _real_suite(fps)
    rows: list[dict[str, Any]] = []
    for item in items:
        try:
            clip, _ = suite.prepare(item["path"])
            result = suite.analyse([clip])[0]
        except Exception as exc:  # noqa: BLE001 - a file that cannot be read is reported, not fatal
            rows.append({**item, "error": str(exc)})
            continue
        detectors = {n: r.score for n, r in result.results.items() if r.applicable and r.score is not None}
        lip = result.results.get("lipsync")
        truth = item.get("splice")
        located = bool(truth and lip and lip.applicable and any(
            st["start_s"] < truth[1] and st["end_s"] > truth[0] and st["score"] >= 0.5
            for st in lip.evidence.get("stretches") or []))
        rows.append({**item, "fused": result.fused.score or 0.0, "verdict": result.fused.verdict,
                     "located_by_lipsync": located,
                     "flagged": result.fused.verdict in ("suspicious", "likely_manipulated"), "detectors": detectors,
                     "lipsync_flag": detectors.get("lipsync", 0.0) >= 0.5,
                     "any_detector_flag": any(v >= 0.5 for v in detectors.values()),
                     "offset_ms_found": lip.evidence.get("offset_ms") if lip and lip.applicable else None,
                     "reason": result.fused.reasons[0] if result.fused.reasons else ""})
    report: dict[str, Any] = {"n": len(rows), "errors": [r for r in rows if "error" in r]}
    originals = [r for r in rows if "copy" not in r and "error" not in r]
    for kind in sorted({r["kind"] for r in originals}):
        mine = [r for r in originals if r["kind"] == kind]
        flags = np.array([r["flagged"] for r in mine])
        lip_flags = np.array([r["lipsync_flag"] for r in mine])
        entry: dict[str, Any] = {"n": len(mine), "flagged": float(flags.mean()), "flagged_ci": rate_ci(flags),
                                 "lipsync_flagged": float(lip_flags.mean()),
                                 "likely_manipulated": float(np.mean([r["verdict"] == "likely_manipulated"
                                                                      for r in mine]))}
        names = sorted({n for r in mine for n in r["detectors"]})
        entry["per_detector"] = {n: {"n_applicable": sum(n in r["detectors"] for r in mine),
                                     "flagged": float(np.mean([r["detectors"][n] >= 0.5 for r in mine
                                                               if n in r["detectors"]]))} for n in names}
        if kind == "photo_splice":
            located = np.array([r["located_by_lipsync"] for r in mine])
            entry.update(located_by_lipsync=float(located.mean()), located_ci=rate_ci(located))
        if mine[0]["label"] == 1:
            entry["missed_files"] = [(str(r["path"].name), r["reason"]) for r in mine if not r["flagged"]]
        if mine[0]["label"] == 0:
            any_flag = np.array([r["any_detector_flag"] for r in mine])
            entry.update(any_detector_at_0_5=float(any_flag.mean()), any_detector_ci=rate_ci(any_flag),
                         flagged_files=[(str(r["path"].name), r["reason"]) for r in mine if r["flagged"] or
                                        r["any_detector_flag"]])
        copies = [r for r in rows if r.get("kind") == kind and "copy" in r and "error" not in r]
        entry["copies"] = {"n": len(copies), "flagged": float(np.mean([r["flagged"] for r in copies])) if copies
                           else None}
        report[kind] = entry
    by_original = {r["path"]: r for r in originals}
    pairs = [(by_original[r["copy_of"]], r) for r in rows if "copy" in r and "error" not in r
             and r["copy_of"] in by_original]
    same = [a["flagged"] == b["flagged"] for a, b in pairs]
    offsets = [abs(a["offset_ms_found"] - b["offset_ms_found"]) for a, b in pairs
               if a["offset_ms_found"] is not None and b["offset_ms_found"] is not None and a["label"] == 1
               and a["kind"] == "photo_offset"]
    per_copy = {}
    for name in sorted({b["copy"] for _, b in pairs}):
        mine = [a["flagged"] == b["flagged"] for a, b in pairs if b["copy"] == name]
        per_copy[name] = {"n": len(mine), "stable": float(np.mean(mine))}
    report["stability"] = {"n_pairs": len(pairs), "verdict_stable": float(np.mean(same)) if same else None,
                           "verdict_stable_ci": rate_ci(np.array(same)) if same else None, "per_copy": per_copy,
                           "offset_within_80ms": float(np.mean(np.array(offsets) <= 80)) if offsets else None,
                           "changed": [(str(b["path"].parent.name), b["copy"], a["flagged"], b["flagged"],
                                        b["reason"]) for a, b in pairs if a["flagged"] != b["flagged"]]}
    return report


def print_real(split: str, real: dict[str, Any]) -> None:
    def ci(value: Any) -> str:
        return "" if not value else f" [{value[0]:.2f}, {value[1]:.2f}]"

    print(f"real material, {split} split ({real['n']} files incl. platform copies; errors: {len(real['errors'])})")
    for kind in ("authentic", "photo_in_sync", "real_dub", "photo_offset", "photo_splice"):
        if kind not in real:
            continue
        e = real[kind]
        line = (f"  {kind:14s} n={e['n']:3d}  flagged {e['flagged']:.3f}{ci(e['flagged_ci'])} (likely "
                f"{e['likely_manipulated']:.2f}; lipsync >= 0.5: {e['lipsync_flagged']:.2f})")
        if "any_detector_at_0_5" in e:
            line += f"  any detector >= 0.5: {e['any_detector_at_0_5']:.3f}{ci(e['any_detector_ci'])}"
        if "located_by_lipsync" in e:
            line += f"  splice located by lipsync: {e['located_by_lipsync']:.3f}{ci(e['located_ci'])}"
        if e["copies"]["n"]:
            line += f"  copies ({e['copies']['n']}): flagged {e['copies']['flagged']:.3f}"
        print(line)
        print("      per detector (flagged / applicable): " + ", ".join(
            f"{n} {d['flagged']:.2f}/{d['n_applicable']}" for n, d in e["per_detector"].items()))
        for name, reason in (e.get("flagged_files", []) + e.get("missed_files", []))[:8]:
            print(f"      {'flagged' if 'flagged_files' in e else 'missed'} {name}: {reason[:150]}")
    st = real["stability"]
    if st["n_pairs"]:
        print(f"  verdict stability across platform copies: {st['verdict_stable']:.3f}{ci(st['verdict_stable_ci'])} "
              f"of {st['n_pairs']}; " + ", ".join(f"{k} {v['stable']:.2f}" for k, v in st["per_copy"].items()))
        if st["offset_within_80ms"] is not None:
            print(f"  offsets of copies within 80 ms of the original's: {st['offset_within_80ms']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-offset", type=int, default=3, help="clips per offset value")
    parser.add_argument("--spectral-n", type=int, default=150, help="frames per class for the spectral AUC")
    parser.add_argument("--splices", type=int, default=40, help="long clips with a splice (0: skip the splice set)")
    parser.add_argument("--authentic", type=int, default=50, help="authentic long clips")
    parser.add_argument("--seed", type=int, default=5000, help="first seed of the long clips (tuning used < 1000)")
    parser.add_argument("--skip-whole-clip", action="store_true", help="only the splice set")
    parser.add_argument("--fps", type=float, default=5.0, help="sampling rate (the suite's default: 5)")
    parser.add_argument("--media", type=Path, default=ROOT / "bench" / "out" / "detector_accuracy")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--real", choices=("check", "tune", "none"), default="check",
                        help="real material of this split (infra/media/fetch; 'none' skips it)")
    parser.add_argument("--copies", type=int, default=3, help="real files per kind copied the platform ways")
    parser.add_argument("--only-real", action="store_true", help="only the real material")
    parser.add_argument("--draw", type=int, default=0, help="another draw of voices for the real dubs and photos")
    args = parser.parse_args()

    start = time.perf_counter()
    report: dict[str, object] = {}
    if args.real != "none":
        real_items = make_real_set(args.media / f"real_{args.real}", args.real, copies=args.copies, draw=args.draw)
        real = real_accuracy(real_items, args.fps)
        report["real"] = {"split": args.real, **real}
        print_real(args.real, real)
    if args.only_real:
        args.skip_whole_clip, args.splices, args.authentic = True, 0, 0
    if not args.skip_whole_clip:
        items = make_lipsync_set(args.media, args.per_offset)
        lip = lipsync_accuracy(items, args.fps)
        spec = spectral_accuracy(args.spectral_n)
        report.update(lipsync=lip, spectral=spec)
        print(f"lipsync  ({lip['n']} clips at {args.fps:g} fps: {lip['n_offset']} offset >= 150 ms, "
              f"{lip['n_in_sync']} within ±80 ms, {lip['n_dubs']} dubs; re-encoded 150 kb/s; held-out sentences)")
        print(f"  offset-detection rate (flagged, offset within one frame = {1000 / args.fps:.0f} ms): "
              f"{lip['offset_detection_rate']:.3f} {lip['offset_detection_rate_ci']}")
        print(f"  offset-detection rate (flagged, offset within 40 ms):               "
              f"{lip['offset_detection_rate_40ms']:.3f}")
        print(f"  false-flag rate (|offset| <= 80 ms):                                {lip['false_flag_rate']:.3f} "
              f"{lip['false_flag_rate_ci']}")
        print(f"  offset error: mean {lip['mean_abs_offset_error_ms']:.1f} ms, max "
              f"{lip['max_abs_offset_error_ms']:.1f} ms; not applicable: {lip['not_applicable']}; dubs flagged: "
              f"{lip['dub_flag_rate']:.3f}")
        print(f"spectral ({spec['n']} frames, held-out photos)")
        print(f"  AUC {spec['auc']:.3f}  (JPEG q75: {spec['auc_jpeg75']:.3f});  at 0.5: TPR {spec['tpr_at_0.5']:.3f}, "
              f"FPR {spec['fpr_at_0.5']:.3f}")
    if args.splices or args.authentic:
        long_items = make_splice_set(args.media / "long", args.splices, args.authentic, args.seed)
        spl = splice_accuracy(long_items, args.fps)
        report["splices"] = spl

        def pct(value: object) -> str:
            return "n/a" if value is None else f"{value:.3f}"

        print(f"splices  ({spl['n_spliced']} spliced + {spl['n_authentic']} authentic long clips at {args.fps:g} fps, "
              f"held-out sentences/voices/faces/seeds, re-encoded; detectors {', '.join(spl['detectors'])})")
        print(f"  splice recall (flagged and located): {pct(spl['splice_recall'])}  (voice {pct(spl['recall_voice'])},"
              f" shift {pct(spl['recall_shift'])}; by length "
              + ", ".join(f"{k}: {pct(v['recall'])} of {v['n']}" for k, v in spl["by_length"].items()) + ")")
        print(f"  localisation: mean IoU {pct(spl['mean_iou'])}, IoU >= 0.5 in {pct(spl['iou_at_least_0.5'])}")
        print(f"  false flags on authentic long clips: {pct(spl['false_flag_rate'])} "
              f"(with any segment: {pct(spl['authentic_with_a_segment'])})")
        print(f"  lipsync call: shifts called shift {pct(spl['shift_called_shift'])}, voice splices called dub "
              f"{pct(spl['voice_called_dub'])}")
    print(f"time: {time.perf_counter() - start:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
