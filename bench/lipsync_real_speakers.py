"""lipsync on real people speaking with their own audio, and on the same clips dubbed with other real voices.

The clips are the optional ``retalking`` source of the real-media corpus (``infra/media/fetch`` with a local mirror
of the repository: docs/research/corpus.md). Each published clip is read as it is, then dubbed with real voices of
its own split (``detectors.realmedia.make_real_dub``, ``--dubs`` voice draws). Printed per clip: the mouth reading,
the whole-clip peak and lag, the window agreement and median, the call (``dub`` cue / ``shift``), the score and
whether it flags; then per split how many published clips and how many dubs are flagged.

    python bench/lipsync_real_speakers.py                   # both splits, 3 dubs per clip
    python bench/lipsync_real_speakers.py --split tune --json out.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=("tune", "check", "both"), default="both")
    parser.add_argument("--dubs", type=int, default=3, help="voice draws per clip")
    parser.add_argument("--media", default=str(ROOT / "bench" / "out" / "lipsync_real_speakers"))
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    from detectors import Fusion, Suite
    from detectors import realmedia as rm
    from detectors.lipsync import LipSync

    try:
        speakers = [e for e in rm.entries(kind="video_face_audio") if e.source_name == "retalking"]
    except rm.CorpusMissing as exc:
        print(f"real-media corpus absent: {exc}", file=sys.stderr)
        return 1
    if not speakers:
        print("the optional retalking source is not in the corpus (infra/media/fetch with its local mirror)",
              file=sys.stderr)
        return 1
    out = Path(args.media)
    out.mkdir(parents=True, exist_ok=True)
    splits = ("tune", "check") if args.split == "both" else (args.split,)
    suite = Suite([LipSync(device="cpu")], fusion=Fusion())
    rows: list[dict[str, Any]] = []
    for split in splits:
        voices = rm.entries(kind="speech", split=split)
        rng = np.random.default_rng(5)
        for speaker in [s for s in speakers if s.split == split]:
            items = [("published", speaker.path)]
            for d in range(args.dubs):
                dst = out / f"dub_{speaker.id.replace('/', '_')}_{d}.mp4"
                picks = [voices[int(j)] for j in rng.choice(len(voices), 6, replace=False)]
                if not dst.exists():
                    rm.make_real_dub(dst, speaker, None, picks, seed=d)
                items.append((f"dub{d}", dst))
            for kind, path in items:
                clip, _ = suite.prepare(str(path))
                result = suite.analyse([clip])[0].results["lipsync"]
                row: dict[str, Any] = {"id": speaker.id, "split": split, "kind": kind,
                                       "applicable": result.applicable, "score": result.score,
                                       "flagged": bool(result.flagged)}
                if result.applicable:
                    e = result.evidence
                    row.update({k: e.get(k) for k in ("mouth_reading", "peak_correlation", "offset_ms",
                                                      "window_agreement", "median_window_correlation",
                                                      "chance_unrelated", "manipulation")})
                    print(f"{speaker.id:12s} {split:5s} {kind:9s} score {result.score:.2f} "
                          f"{'FLAG' if result.flagged else '    '} {e['mouth_reading']:15s} "
                          f"peak {e['peak_correlation']:.2f} at {e['offset_ms']:+.0f} ms, agreement "
                          f"{e['window_agreement']:.2f}, median {e['median_window_correlation']}, "
                          f"call {e['manipulation']}", flush=True)
                else:
                    print(f"{speaker.id:12s} {split:5s} {kind:9s} not applicable: {result.evidence.get('reason')}")
                rows.append(row)
    summary = {}
    for split in splits:
        mine = [r for r in rows if r["split"] == split]
        published = [r for r in mine if r["kind"] == "published"]
        dubs = [r for r in mine if r["kind"] != "published"]
        summary[split] = {"published_flagged": sum(r["flagged"] for r in published), "published": len(published),
                          "dubs_flagged": sum(r["flagged"] for r in dubs), "dubs": len(dubs)}
        print(f"{split}: published clips flagged {summary[split]['published_flagged']}/{len(published)}, "
              f"their dubs flagged {summary[split]['dubs_flagged']}/{len(dubs)}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "summary": summary}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
