"""The default suite's real-time factor with ``identity`` and an enrolled gallery of 50 persons, on two code trees
in one invocation: the code at ``--before`` (a ref, checked out into a ``git worktree``) and the working tree.

    media       generated long talking heads of the astronaut (``make_long_clip``: pauses, head turns, cutaways,
                music, a second off-screen voice): even clips in her enrolled voice, odd clips in another voice
    gallery     50 persons: the astronaut (a photo and a voice recording), Grace Hopper, and 48 generated persons
                (Grace Hopper's photo warped, mirrored and tinted, each with its own espeak voice), enrolled once
                and kept under ``--media``; both trees read the same gallery file
    rounds      per round, each tree in a fresh process (``--child``): the default suite from the settings,
                warmed up on one clip, then timed over every clip: prepare (decode + faces, ``--threads``
                threads) and analyse (batches of ``--batch``). The trees alternate, so both see the same load

The "before" side cannot be reached by configuration (chip choice and batching are code), so it is the old commit's
code, run from a worktree. Printed: per tree the median real-time factor (video-seconds per wall-second), the
ratio after / before per round and its median, per detector the seconds, and identity's verdict per clip (person,
face and voice similarity, score) for both trees: the accuracy comparison.

    python bench/suite_identity.py                          # 8 clips, 3 rounds, before = 2908715
    python bench/suite_identity.py --clips 4 --rounds 1     # a quick look
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: the code before issue #25's identity work (5 crops a track, each track's speech through GE2E on its own)
BEFORE_REF = "2908715"
#: (espeak voice, words per minute, pitch) of the 48 generated persons' voices: none is the astronaut's en-us at 50
_OTHER_VOICES = ("en-gb", "en-gb-scotland", "en-gb-x-rp", "en-us-nyc", "en-029", "en-gb-x-gbclan",
                 "en-gb-x-gbcwmd", "en+Andrea", "en-us+f2", "en-us+m3", "en-gb+f3", "en-us+m7")
_PITCHES = (25, 40, 60, 75)
ASTRO, HOPPER = "Eileen Collins", "Grace Hopper"
OWN_VOICE = ("en-us", 150, 50)
IMPOSTOR_VOICES = (("en-us+f3", 150, 50), ("en+Andrea", 150, 50), ("en-gb", 170, 40), ("en-us-nyc+m4", 155, 35))


# -- media and gallery (the working tree's code)
def _variant_face(index: int) -> Any:
    """Grace Hopper's photo changed into another "person": stretched or squeezed, mirrored, tinted."""
    import cv2
    import numpy as np

    from detectors import synthetic as S

    image = S.person_photo("grace_hopper").astype(np.float32)
    rng = np.random.default_rng(1000 + index)
    sx, sy = float(rng.uniform(0.78, 1.22)), float(rng.uniform(0.82, 1.18))
    h, w = image.shape[:2]
    matrix = np.float32([[sx, 0, (1 - sx) * w / 2], [0, sy, (1 - sy) * h / 2]])
    image = cv2.warpAffine(image, matrix, (w, h), borderMode=cv2.BORDER_REFLECT)
    if index % 2:
        image = image[:, ::-1]
    image = image * rng.uniform(0.8, 1.2, size=3).astype(np.float32) + float(rng.uniform(-15, 15))
    return np.ascontiguousarray(np.clip(image, 0, 255).astype(np.uint8))


def make_media(directory: Path, n: int, n_sentences: int) -> list[Path]:
    from detectors import synthetic as S

    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = directory / f"long_{i:03d}_{n_sentences}.mp4"
        if not path.exists():
            voice = OWN_VOICE if i % 2 == 0 else IMPOSTOR_VOICES[(i // 2) % len(IMPOSTOR_VOICES)]
            S.make_long_clip(path, seed=500 + i, sentences=S.HELDOUT_SENTENCES, voices=(voice,),
                             faces=("plain", "mirrored", "warm", "cool_mirrored"), n_sentences=n_sentences)
        paths.append(path)
    return paths


def make_gallery(directory: Path, persons: int) -> Path:
    """Enrol ``persons`` persons into a media store under ``directory`` (once); returns the store's path."""
    store = directory / f"store_{persons}"
    if (store / "persons" / "gallery.json").exists():
        return store
    from detectors import FaceTracker, Gallery
    from detectors import synthetic as S
    from detectors._face_embed import get_face_embedder
    from detectors._gallery import enroll
    from detectors._speaker import get_speaker_encoder
    from pipeline._media_store import MediaStore
    from pipeline._settings import Settings

    refs = directory / "references"
    refs.mkdir(parents=True, exist_ok=True)
    enrol_text = S.SENTENCES[0] + " " + S.SENTENCES[1]
    people: list[tuple[str, Any, tuple[str, int]]] = [(ASTRO, S.person_photo("astronaut"), ("en-us", 50)),
                                                      (HOPPER, S.person_photo("grace_hopper"), ("en+Andrea", 50))]
    for k in range(persons - len(people)):
        voice = (_OTHER_VOICES[k % len(_OTHER_VOICES)], _PITCHES[(k // len(_OTHER_VOICES)) % len(_PITCHES)])
        people.append((f"Person {k:02d}", _variant_face(k), voice))
    gallery = Gallery()
    tracker, faces, speaker = FaceTracker(), get_face_embedder(), get_speaker_encoder("cpu")
    for name, photo, (voice, pitch) in people[:persons]:
        slug = name.lower().replace(" ", "_")
        photo_path, voice_path = refs / f"{slug}.png", refs / f"{slug}.m4a"
        S.write_photo(photo_path, photo)
        S.write_audio_only(voice_path, S.speak(enrol_text, voice=voice, pitch=pitch))
        enroll(name, [(photo_path, photo_path.name), (voice_path, voice_path.name)], gallery=gallery,
               tracker=tracker, faces=faces, speaker=speaker, role="candidate" if name == ASTRO else "other")
    gallery.save(MediaStore.from_settings(Settings(media_store=str(store))))
    return store


# -- one tree's run (a fresh process, the tree's code first on sys.path)
def child(args: argparse.Namespace) -> None:
    from detectors import Suite
    from pipeline import load_settings

    settings = load_settings(device="cpu", media_store=str(args.store))
    suite = Suite.from_settings(settings)
    paths = [str(p) for p in args.files]
    warm = suite.prepare(paths[0])[0]
    suite.analyse([warm])
    start = time.perf_counter()
    cpu = time.process_time()
    with ThreadPoolExecutor(args.threads) as pool:
        done = list(pool.map(suite.prepare, paths))
    clips = [clip for clip, _ in done]
    prepared = time.perf_counter()
    prepare_cpu = time.process_time() - cpu
    results = []
    for i in range(0, len(clips), args.batch):
        results.extend(suite.analyse(clips[i:i + args.batch]))
    end = time.perf_counter()
    analyse_cpu = time.process_time() - cpu - prepare_cpu
    video_s = sum(c.duration_s for c in clips)
    per_detector: dict[str, float] = {}
    for _, timings in done:  # prepare's stages (decode, faces, probes), summed over the threads
        for name, ms in timings.items():
            per_detector[name] = per_detector.get(name, 0.0) + ms / 1000
    for r in results:
        for name, ms in r.timings_ms.items():
            per_detector[name] = per_detector.get(name, 0.0) + ms / 1000
    identity = []
    for path, r in zip(paths, results, strict=True):
        res = r.results.get("identity")
        ev = res.evidence if res is not None else {}
        identity.append({"clip": Path(path).name, "applicable": bool(res and res.applicable),
                         "score": None if res is None or res.score is None else round(res.score, 4),
                         "person": ev.get("person"), "face_similarity": ev.get("face_similarity"),
                         "voice_similarity": ev.get("voice_similarity"), "reason": ev.get("reason")})
    print(json.dumps({"names": suite.names, "video_s": video_s, "wall_s": end - start, "prepare_s": prepared - start,
                      "analyse_s": end - prepared,
                      "prepare_cpu_s": prepare_cpu, "analyse_cpu_s": analyse_cpu, "rtf": video_s / (end - start),
                      "detectors_s": {k: round(v, 2) for k, v in per_detector.items()}, "identity": identity}))


def _worktree(ref: str) -> Path:
    where = ROOT / "bench" / "out" / "suite_identity" / f"tree_{ref}"
    if not (where / "detectors").is_dir():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(where), ref], check=True,
                       capture_output=True)
    return where


def run_tree(tree: Path, args: argparse.Namespace, store: Path, paths: list[Path]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree), "VIGIL_CONFIG": ""}
    env.pop("VIGIL_DETECTORS", None)
    cmd = [sys.executable, str(ROOT / "bench" / "suite_identity.py"), "--child", "--store", str(store),
           "--threads", str(args.threads), "--batch", str(args.batch), *[str(p) for p in paths]]
    out = subprocess.run(cmd, env=env, cwd=str(tree), check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--sentences", type=int, default=3, help="sentences per generated clip (~5 s each)")
    parser.add_argument("--persons", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--before", default=BEFORE_REF, help="git ref of the code to compare with")
    parser.add_argument("--only", choices=("before", "after"), default=None, help="run one tree only")
    parser.add_argument("--media", type=Path, default=ROOT / "bench" / "out" / "suite_identity")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--store", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("files", nargs="*", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, os.getcwd())
        child(args)
        return

    sys.path.insert(0, str(ROOT))
    paths = make_media(args.media / "clips", args.clips, args.sentences)
    store = make_gallery(args.media, args.persons)
    trees = {"before": _worktree(args.before), "after": ROOT}
    if args.only:
        trees = {args.only: trees[args.only]}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    for round_ in range(args.rounds):
        for name, tree in (trees.items() if round_ % 2 == 0 else reversed(list(trees.items()))):
            runs[name].append(run_tree(tree, args, store, paths))
            got = runs[name][-1]
            print(f"round {round_ + 1} {name}: {got['rtf']:.2f}x real time; prepare {got['prepare_s']:.1f} s "
                  f"(cpu {got['prepare_cpu_s']:.1f}), analyse {got['analyse_s']:.1f} s (cpu {got['analyse_cpu_s']:.1f}); "
                  f"{got['detectors_s']}", file=sys.stderr)
    figures: dict[str, Any] = {"clips": len(paths), "video_s": round(runs[next(iter(runs))][0]["video_s"], 1),
                               "persons": args.persons, "threads": args.threads, "batch": args.batch,
                               "before": args.before, "detectors": runs[next(iter(runs))][0]["names"]}
    for name, got in runs.items():
        figures[name] = {"rtf_median": round(statistics.median(r["rtf"] for r in got), 2),
                         "rtf": [round(r["rtf"], 2) for r in got],
                         "detectors_s_median": {k: round(statistics.median(r["detectors_s"][k] for r in got), 2)
                                                for k in got[0]["detectors_s"]},
                         "identity": got[0]["identity"]}
    if len(runs) == 2:
        ratios = [a["rtf"] / b["rtf"] for a, b in zip(runs["after"], runs["before"], strict=True)]
        figures["ratio_after_over_before"] = [round(r, 2) for r in ratios]
        figures["ratio_median"] = round(statistics.median(ratios), 2)
    print(json.dumps(figures, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
