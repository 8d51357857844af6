"""Throughput of the identity and provenance detectors, and what they add to the suite's real-time factor.

On generated clips (the astronaut talking head with espeak voices; half of them carrying a signed C2PA manifest),
with the astronaut enrolled from a photo and a voice recording:

- identity, own code (``preprocess``: speech cut out with the VAD; the face chips were cut and embedded by its
  ``probe`` in ``prepare``) against the models (``forward``: GE2E over the speech windows; dlib's ResNet timed
  apart on the chips cut again):
  milliseconds per clip, face chips per second, speech seconds per second;
- provenance, own code (result from the facts) against the reading (``probe``: c2pa-rs Reader + container tags):
  milliseconds per clip, clips per second;
- the real-time factor (seconds of video per wall-second) of lipsync + spectral alone and with both added.

    python bench/identity_provenance.py                 # CPU, 8 clips
    python bench/identity_provenance.py --device cuda --clips 32
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # support.c2pa: the tests' throwaway signer


def make_media(directory: Path, n: int) -> tuple[list[Path], Path, Path]:
    from support.c2pa import make_signer, sign_mp4

    from detectors import synthetic as S

    directory.mkdir(parents=True, exist_ok=True)
    photo, voice = directory / "enrol.png", directory / "enrol_voice.m4a"
    if not photo.exists():
        S.write_photo(photo, S.person_photo("astronaut"))
        S.write_audio_only(voice, S.speak(S.SENTENCES[0] + " " + S.SENTENCES[1]))
    signer = None
    paths = []
    voices = ("en-us", "en-us+f3", "en+Andrea", "en-gb")
    for i in range(n):
        path = directory / f"person_{i:03d}.mp4"
        if not path.exists():
            S.make_person_clip(path, "astronaut", S.HELDOUT_SENTENCES[i % len(S.HELDOUT_SENTENCES)],
                               voice=voices[i % len(voices)], seed=i)
            if i % 2:
                signer = signer or make_signer()
                signed = path.with_suffix(".signed.mp4")
                sign_mp4(path, signed, signer, source_type="trainedAlgorithmicMedia" if i % 4 == 1 else "digitalCapture")
                signed.replace(path)
        paths.append(path)
    return paths, photo, voice


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--media", type=Path, default=ROOT / "bench" / "out" / "identity")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    from detectors import FaceTracker, Fusion, Gallery, Identity, LipSync, NotApplicable, Provenance, Spectral, Suite
    from detectors._base import run_detector
    from detectors._face_embed import get_face_embedder
    from detectors._gallery import enroll
    from detectors._speaker import get_speaker_encoder

    paths, photo, voice = make_media(args.media, args.clips)
    gallery = Gallery()
    enroll("Eileen Collins", [(photo, photo.name), (voice, voice.name)], gallery=gallery, tracker=FaceTracker(),
           faces=get_face_embedder(), speaker=get_speaker_encoder(args.device))
    identity = Identity(device=args.device, gallery=gallery, batch_size=max(1, args.clips))
    provenance = Provenance()
    base = Suite([LipSync(device=args.device), Spectral(device=args.device)], fusion=Fusion(), fps=args.fps)
    full = Suite([LipSync(device=args.device), Spectral(device=args.device), identity, provenance], fusion=Fusion(),
                 fps=args.fps)
    full.scan(paths[0])  # warm-up: mediapipe graph, torch kernels, librosa's numba functions

    clips, probe_ms = [], 0.0
    for path in paths:
        clip, timings = full.prepare(path)
        probe_ms += timings.get("probe_provenance", 0.0)
        clips.append(clip)
    video_s = sum(c.duration_s for c in clips)

    # identity: own code vs models
    start = time.perf_counter()
    inputs = [identity.preprocess(c) for c in clips]
    pre_s = time.perf_counter() - start
    judged = [i for i, x in enumerate(inputs) if not isinstance(x, NotApplicable)]
    ready = [inputs[i] for i in judged]
    # the face crops: cut in the probe (prepare) and embedded there; cut again here to time dlib's ResNet on them
    crops = [chip for i in judged for track in clips[i].faces[: identity.max_tracks]
             for chip in identity._chips(clips[i], track)]
    chips = len(crops)
    speech_s = sum(t.speech_s for x in ready for t in x.tracks)
    start = time.perf_counter()
    raws = identity.forward(ready)
    fwd_s = time.perf_counter() - start
    # the two models apart: dlib's ResNet over every chip, GE2E over every track's speech windows
    start = time.perf_counter()
    identity.faces.embed(crops)
    dlib_s = time.perf_counter() - start
    start = time.perf_counter()
    for x in ready:
        for t in x.tracks:
            if t.speech_s >= identity.min_speech_s:
                identity.speaker.embed_windows(t.speech, window_s=1.6, hop_s=0.8)
    ge2e_s = time.perf_counter() - start
    start = time.perf_counter()
    results = [identity.postprocess(r, clips[i]) for r, i in zip(raws, judged, strict=True)]
    post_s = time.perf_counter() - start
    flagged = sum(r.flagged for r in results)

    # provenance: reading (probe) vs own code
    start = time.perf_counter()
    prov = run_detector(provenance, clips)
    prov_s = time.perf_counter() - start

    # the suite's real-time factor with and without them (decode + faces + detectors + fusion)
    def rtf(suite: Suite) -> float:
        start = time.perf_counter()
        prepared = [suite.prepare(p)[0] for p in paths]
        suite.analyse(prepared)
        return video_s / (time.perf_counter() - start)

    figures = {
        "clips": len(clips), "video_s": round(video_s, 1), "device": args.device,
        "identity": {
            "own_code_ms_per_clip": round(1000 * (pre_s + post_s) / len(clips), 1),
            "model_ms_per_clip": round(1000 * fwd_s / max(1, len(ready)), 1),
            "face_chips_per_s_dlib": round(chips / max(dlib_s, 1e-9), 1),
            "speech_s_per_s_ge2e": round(speech_s / max(ge2e_s, 1e-9), 1),
            "clips_per_s": round(len(ready) / max(pre_s + fwd_s + post_s, 1e-9), 2),
            "flagged": flagged, "judged": len(results),
        },
        "provenance": {
            "probe_ms_per_clip": round(probe_ms / len(clips), 2),
            "own_code_ms_per_clip": round(1000 * prov_s / len(clips), 3),
            "clips_per_s": round(len(clips) / max(probe_ms / 1000 + prov_s, 1e-9), 1),
            "flagged": sum(r.flagged for r in prov),
        },
        "suite_rtf": {"lipsync+spectral": round(rtf(base), 2), "+identity+provenance": round(rtf(full), 2)},
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
