"""Throughput of the model-based detectors (face_forgery, voice_synthetic, nonverbal) on generated talking heads.

With tiny randomly initialised models (the default) the numbers show the cost of Vigil's own code: crops and
image processing, voice-activity detection, feature extraction, batching, aggregation, the motion check. Each
detector's time is split into preprocess, model (the model's own forward calls, measured around them), the rest
of forward (concatenating and splitting batches) and postprocess. Pass real checkpoints to measure a deployment:

    python bench/model_detectors.py                               # tiny models, CPU
    python bench/model_detectors.py --device cuda --clips 32 \\
        --face-forgery prithivMLmods/Deep-Fake-Detector-v2-Model \\
        --voice-synthetic MelodyMachine/Deepfake-audio-detection-V2 \\
        --nonverbal MIT/ast-finetuned-audioset-10-10-0.4593

Prints one JSON line per detector: sampled frames (and audio seconds) per second of wall time, overall and per stage.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch


def tiny_models(root: Path) -> dict[str, str]:
    """Tiny ViT / wav2vec2 / AST classifiers with real configs, saved like any checkpoint."""
    from transformers import (
        ASTConfig, ASTFeatureExtractor, ASTForAudioClassification, ViTConfig, ViTForImageClassification,
        ViTImageProcessor, Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification,
    )

    torch.manual_seed(0)
    vit = root / "vit"
    ViTForImageClassification(ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                        intermediate_size=37, image_size=64, patch_size=16, num_labels=2,
                                        id2label={0: "real", 1: "fake"}, label2id={"real": 0, "fake": 1})
                              ).save_pretrained(vit)
    ViTImageProcessor(size={"height": 64, "width": 64}).save_pretrained(vit)
    w2v = root / "wav2vec2"
    Wav2Vec2ForSequenceClassification(Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37, conv_dim=(32, 32, 32),
        conv_stride=(5, 4, 4), conv_kernel=(10, 4, 4), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
        classifier_proj_size=16, num_labels=2, id2label={0: "bonafide", 1: "spoof"},
        label2id={"bonafide": 0, "spoof": 1}, vocab_size=8)).save_pretrained(w2v)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16_000, padding_value=0.0, do_normalize=True,
                             return_attention_mask=False).save_pretrained(w2v)
    ast = root / "ast"
    labels = {0: "Speech", 1: "Cough", 2: "Sneeze", 3: "Laughter"}
    ASTForAudioClassification(ASTConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=48, patch_size=16,
        frequency_stride=12, time_stride=12, max_length=100, num_mel_bins=64, num_labels=4, id2label=labels,
        label2id={v: k for k, v in labels.items()})).save_pretrained(ast)
    ASTFeatureExtractor(num_mel_bins=64, max_length=100, sampling_rate=16_000).save_pretrained(ast)
    return {"face_forgery": str(vit), "voice_synthetic": str(w2v), "nonverbal": str(ast)}


def generated_clips(directory: Path, n: int) -> list[Any]:
    """``n`` generated talking-head videos decoded at 5 fps with real face tracks."""
    from detectors import FaceTracker, decode_clip
    from detectors.synthetic import SENTENCES, make_talking_clip

    tracker = FaceTracker()
    clips = []
    for i in range(n):
        path = directory / f"talking{i}.mp4"
        make_talking_clip(path, SENTENCES[i % len(SENTENCES)], seed=i)
        clip = decode_clip(path)
        tracker(clip)
        clips.append(clip)
    return clips


class ModelTimer:
    """Wraps a model's forward to add up the time spent inside it."""

    def __init__(self, model: torch.nn.Module, device: torch.device) -> None:
        self.seconds, self.calls = 0.0, 0
        self._forward, self._device = model.forward, device
        model.forward = self  # type: ignore[method-assign]

    def __call__(self, **inputs: Any) -> Any:
        start = time.perf_counter()
        out = self._forward(**inputs)
        if self._device.type == "cuda":
            torch.cuda.synchronize()
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return out


def bench(name: str, detector: Any, clips: list[Any], repeat: int) -> dict[str, Any]:
    from detectors import NotApplicable

    timer = ModelTimer(detector.loaded.model, detector.device)
    stages = {"preprocess": 0.0, "forward": 0.0, "postprocess": 0.0}
    applicable = 0
    for _ in range(repeat):
        start = time.perf_counter()
        inputs = [(clip, detector.preprocess(clip)) for clip in clips]
        inputs = [(c, x) for c, x in inputs if not isinstance(x, NotApplicable)]
        stages["preprocess"] += time.perf_counter() - start
        for offset in range(0, len(inputs), detector.batch_size):
            chunk = inputs[offset:offset + detector.batch_size]
            start = time.perf_counter()
            raws = detector.forward([x for _, x in chunk])
            stages["forward"] += time.perf_counter() - start
            start = time.perf_counter()
            for (clip, _), raw in zip(chunk, raws):
                applicable += detector.postprocess(raw, clip).applicable
            stages["postprocess"] += time.perf_counter() - start
    frames = repeat * sum(len(c.frames) for c in clips)
    audio_s = repeat * sum(c.duration_s for c in clips)
    total = sum(stages.values())
    own = total - timer.seconds
    per = {stage: round(frames / s, 1) if s > 0 else None for stage, s in stages.items()}
    return {"detector": name, "checkpoint": detector.checkpoint, "device": str(detector.device),
            "clips": len(clips), "repeat": repeat, "frames": frames, "audio_s": round(audio_s, 1),
            "applicable": applicable, "model_calls": timer.calls,
            "frames_per_s": round(frames / total, 1), "audio_s_per_s": round(audio_s / total, 1),
            "frames_per_s_by_stage": per,
            "seconds": {**{k: round(v, 3) for k, v in stages.items()}, "model": round(timer.seconds, 3),
                        "own_code": round(own, 3)},
            "own_code_share": round(own / total, 3)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--batch", type=int, default=4, help="clips per forward")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--face-forgery", help="checkpoint (default: a tiny random ViT)")
    parser.add_argument("--voice-synthetic", help="checkpoint (default: a tiny random wav2vec2)")
    parser.add_argument("--nonverbal", help="checkpoint (default: a tiny random AST)")
    args = parser.parse_args(argv)

    from detectors import (FaceForgery, FaceForgeryConfig, NonVerbal, NonverbalConfig, VoiceSynthetic,
                           VoiceSyntheticConfig)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        checkpoints = tiny_models(root / "models")
        for key in checkpoints:
            given = getattr(args, key)
            if given:
                checkpoints[key] = given
        clips = generated_clips(root, args.clips)
        tiny_ast = not args.nonverbal
        common = {"device": args.device, "batch_size": args.batch}
        detectors = {
            "face_forgery": FaceForgery(FaceForgeryConfig(checkpoint=checkpoints["face_forgery"]), **common),
            "voice_synthetic": VoiceSynthetic(VoiceSyntheticConfig(checkpoint=checkpoints["voice_synthetic"]),
                                              **common),
            # a random AST hears no events: a threshold near 0 makes every window one, the motion check included
            "nonverbal": NonVerbal(NonverbalConfig(checkpoint=checkpoints["nonverbal"],
                                                   **({"event_threshold": 1e-6} if tiny_ast else {})), **common),
        }
        for name, detector in detectors.items():
            detector(clips[:1])  # warm-up
            print(json.dumps(bench(name, detector, clips, args.repeat)), flush=True)


if __name__ == "__main__":
    main()
