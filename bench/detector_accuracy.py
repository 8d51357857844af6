"""Accuracy of the lipsync and spectral detectors on generated media nothing was tuned on.

Lip-sync: talking heads speaking HELDOUT_SENTENCES (the tests speak others), several espeak-ng voices and speaking
rates, audio offsets the tests do not use, every clip re-encoded at a low bitrate (H.264 150 kb/s, AAC 32 kb/s)
before decoding. Reports, at the suite's sampling rate:

- offset-detection rate: share of clips offset by >= 150 ms that are flagged (score >= 0.5) with the offset
  recovered within one sampled-frame interval (and within 40 ms, for the record);
- false-flag rate: share of clips within ±80 ms (in sync by broadcast standards) that are flagged;
- the mean absolute offset error; dubs (mouth says one sentence, audio another) flagged, for the record.

Spectral: camera-like vs generator-upsampled frames from HELDOUT_PHOTOS (the model file was fitted on PHOTOS), as
generated and JPEG re-compressed at quality 75; reports the AUC.

    python bench/detector_accuracy.py                 # about 2-3 minutes on 2 CPU cores
    python bench/detector_accuracy.py --json bench/out/detector_accuracy.json
"""
from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

POSITIVE_OFFSETS = (-600.0, -320.0, -250.0, -180.0, 180.0, 250.0, 320.0, 600.0)
NEGATIVE_OFFSETS = (-80.0, -40.0, 0.0, 40.0, 80.0)
VOICES = (("en-us", 150, 50), ("en-gb", 170, 40), ("en-gb-scotland", 135, 60))


def reencode(src: Path, dst: Path) -> None:
    """A low-bitrate re-encode, as a re-upload to a platform would do."""
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-i", str(src),
                    "-c:v", "libx264", "-preset", "veryfast", "-b:v", "150k", "-maxrate", "200k", "-bufsize",
                    "300k", "-c:a", "aac", "-b:a", "32k", str(dst)], check=True, capture_output=True)


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
    clips = [tracker(decode_clip(item["path"], fps=fps)) for item in items]  # type: ignore[arg-type]
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
        "mean_abs_offset_error_ms": float(np.mean(errors)) if errors else None,
        "max_abs_offset_error_ms": float(np.max(errors)) if errors else None,
        "dub_flag_rate": float(np.mean([r["flagged"] for r in dubs])) if dubs else None,
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-offset", type=int, default=3, help="clips per offset value")
    parser.add_argument("--spectral-n", type=int, default=150, help="frames per class for the spectral AUC")
    parser.add_argument("--fps", type=float, default=5.0, help="sampling rate (the suite's default: 5)")
    parser.add_argument("--media", type=Path, default=ROOT / "bench" / "out" / "detector_accuracy")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    start = time.perf_counter()
    items = make_lipsync_set(args.media, args.per_offset)
    made = time.perf_counter()
    lip = lipsync_accuracy(items, args.fps)
    spec = spectral_accuracy(args.spectral_n)
    end = time.perf_counter()
    print(f"lipsync  ({lip['n']} clips at {args.fps:g} fps: {lip['n_offset']} offset >= 150 ms, "
          f"{lip['n_in_sync']} within ±80 ms, {lip['n_dubs']} dubs; re-encoded 150 kb/s; held-out sentences)")
    print(f"  offset-detection rate (flagged, offset within one frame = {1000 / args.fps:.0f} ms): "
          f"{lip['offset_detection_rate']:.3f}")
    print(f"  offset-detection rate (flagged, offset within 40 ms):               {lip['offset_detection_rate_40ms']:.3f}")
    print(f"  false-flag rate (|offset| <= 80 ms):                                {lip['false_flag_rate']:.3f}")
    print(f"  offset error: mean {lip['mean_abs_offset_error_ms']:.1f} ms, max {lip['max_abs_offset_error_ms']:.1f} ms;"
          f" not applicable: {lip['not_applicable']}; dubs flagged: {lip['dub_flag_rate']:.3f}")
    print(f"spectral ({spec['n']} frames, held-out photos)")
    print(f"  AUC {spec['auc']:.3f}  (JPEG q75: {spec['auc_jpeg75']:.3f});  at 0.5: TPR {spec['tpr_at_0.5']:.3f}, "
          f"FPR {spec['fpr_at_0.5']:.3f}")
    print(f"time: generate {made - start:.0f} s, evaluate {end - made:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"lipsync": lip, "spectral": spec}, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
