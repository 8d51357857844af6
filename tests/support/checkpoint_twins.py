"""Config twins of the checkpoints the docs suggest (docs/operators/models.md): their published config.json and preprocessor_config.json
facts (architecture, id2label, input size or sampling rate, mel bins, normalisation) with tiny random weights (one
layer, hidden size 32), saved with ``save_pretrained`` (safetensors) so they load through the product's own loader.

Where the facts come from:

- prithivMLmods/Deepfake-Detection-Exp-02-21, dima806/deepfake_vs_real_image_detection: ViT-B/16 fine-tunes of
  google/vit-base-patch16-224-in21k; id2label as seen in their published configs (../shared/FIELD-NOTES.md,
  "Hugging Face configs"); 224 x 224 input, ViTImageProcessor with mean = std = 0.5, bilinear resize, 1/255 rescale
  (the base model's preprocessor, which both keep).
- MattyB95/AST-ASVspoof2019-Synthetic-Voice-Detection: an AST fine-tune of MIT/ast-finetuned-audioset-10-10-0.4593
  (FIELD-NOTES); it keeps the base's input: 16 kHz, 128 mel bins, 1024 frames, patch 16, strides 10 and the
  AudioSet normalisation mean -4.2677393, std 4.5689974 of ASTFeatureExtractor.
- MelodyMachine/Deepfake-audio-detection-V2: Wav2Vec2ForSequenceClassification, a fine-tune (through
  motheecreator/Deepfake-audio-detection) of facebook/wav2vec2-base: its feature encoder (7 convolutions, kernels
  10,3,3,3,3,2,2, strides 5,2,2,2,2,2,2, group norm), Wav2Vec2FeatureExtractor at 16 kHz with do_normalize and no
  attention mask. Its id2label ``{0: "fake", 1: "real"}`` was NOT read from a stored copy (none was reachable
  here): it is the order the transformers audio-classification recipe gives a dataset whose class names sort
  ``fake`` < ``real``, as that checkpoint's card describes; ``vigil models verify`` prints the real one.
- MIT/ast-finetuned-audioset-10-10-0.4593: the 527 AudioSet classes in the order of AudioSet's
  ``class_labels_indices.csv`` (tests/worker/data/, from the AudioSet ontology, CC BY 4.0), which is the order of
  the checkpoint's id2label: Laughter 16, Cough 47, Throat clearing 48, Sneeze 49; no problem_type (multi-label,
  sigmoid).
"""
from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

AUDIO_RATE = 16_000
AUDIOSET_CSV = Path(__file__).resolve().parents[1] / "worker" / "data" / "audioset_class_labels_indices.csv"
TINY = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 37}
AST_MEAN, AST_STD = -4.2677393, 4.5689974


@lru_cache(maxsize=1)
def audioset_labels() -> dict[int, str]:
    with open(AUDIOSET_CSV, newline="", encoding="utf-8") as handle:
        return {int(row["index"]): row["display_name"] for row in csv.DictReader(handle)}


def _vit(path: Path, id2label: dict[int, str], *, seed: int = 0) -> Path:
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(seed)
    config = ViTConfig(**TINY, image_size=224, patch_size=16, num_channels=3, qkv_bias=True, hidden_act="gelu",
                       layer_norm_eps=1e-12, id2label=id2label, label2id={v: k for k, v in id2label.items()},
                       problem_type="single_label_classification")
    ViTForImageClassification(config).save_pretrained(path)
    ViTImageProcessor(do_resize=True, size={"height": 224, "width": 224}, resample=2, do_rescale=True,
                      rescale_factor=1 / 255, do_normalize=True, image_mean=[0.5, 0.5, 0.5],
                      image_std=[0.5, 0.5, 0.5]).save_pretrained(path)
    return path


def _ast(path: Path, id2label: dict[int, str], *, problem_type: str | None, seed: int = 0) -> Path:
    import torch
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

    torch.manual_seed(seed)
    config = ASTConfig(**TINY, patch_size=16, frequency_stride=10, time_stride=10, max_length=1024, num_mel_bins=128,
                       id2label=id2label, label2id={v: k for k, v in id2label.items()}, problem_type=problem_type)
    ASTForAudioClassification(config).save_pretrained(path)
    ASTFeatureExtractor(feature_size=1, sampling_rate=AUDIO_RATE, num_mel_bins=128, max_length=1024,
                        padding_value=0.0, do_normalize=True, mean=AST_MEAN, std=AST_STD,
                        return_attention_mask=False).save_pretrained(path)
    return path


def _wav2vec2(path: Path, id2label: dict[int, str], *, seed: int = 0) -> Path:
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification

    torch.manual_seed(seed)
    config = Wav2Vec2Config(**TINY, conv_dim=(32,) * 7, conv_stride=(5, 2, 2, 2, 2, 2, 2),
                            conv_kernel=(10, 3, 3, 3, 3, 2, 2), feat_extract_norm="group", do_stable_layer_norm=False,
                            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, classifier_proj_size=16,
                            use_weighted_layer_sum=False, vocab_size=32, id2label=id2label,
                            label2id={v: k for k, v in id2label.items()})
    Wav2Vec2ForSequenceClassification(config).save_pretrained(path)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=AUDIO_RATE, padding_value=0.0, do_normalize=True,
                             return_attention_mask=False).save_pretrained(path)
    return path


@dataclass(frozen=True)
class Twin:
    """A recommended checkpoint's published facts, and how to build a tiny model that has them."""

    repo_id: str
    detector: str  # the detector it is configured for
    architecture: str
    id2label: dict[int, str]
    read: dict[int, str]  # the outputs the detector must read (fake / synthetic / event)
    preprocessor: dict[str, object]  # facts of preprocessor_config.json
    builder: Callable[..., Path] = field(repr=False)
    extra: dict[str, object] = field(default_factory=dict, repr=False)

    def build(self, path: Path, *, seed: int = 0, id2label: dict[int, str] | None = None) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        return self.builder(path, id2label or self.id2label, seed=seed, **self.extra)


VIT_PREPROCESSOR = {"image_processor_type": "ViTImageProcessor", "size": {"height": 224, "width": 224},
                    "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "do_normalize": True}
AST_PREPROCESSOR = {"feature_extractor_type": "ASTFeatureExtractor", "sampling_rate": AUDIO_RATE,
                    "num_mel_bins": 128, "max_length": 1024, "mean": AST_MEAN, "std": AST_STD,
                    "do_normalize": True}


def twins() -> dict[str, Twin]:
    """Every suggested checkpoint's twin, by hub id."""
    audioset = audioset_labels()
    events = ("Laughter", "Cough", "Throat clearing", "Sneeze", "Giggle", "Snicker", "Belly laugh", "Chuckle, chortle")
    return {t.repo_id: t for t in (
        Twin("prithivMLmods/Deepfake-Detection-Exp-02-21", "face_forgery", "ViTForImageClassification",
             {0: "Deepfake", 1: "Real"}, {0: "Deepfake"}, VIT_PREPROCESSOR, _vit),
        Twin("dima806/deepfake_vs_real_image_detection", "face_forgery", "ViTForImageClassification",
             {0: "Real", 1: "Fake"}, {1: "Fake"}, VIT_PREPROCESSOR, _vit),
        Twin("MattyB95/AST-ASVspoof2019-Synthetic-Voice-Detection", "voice_synthetic", "ASTForAudioClassification",
             {0: "Bonafide", 1: "Spoof"}, {1: "Spoof"}, AST_PREPROCESSOR, _ast,
             extra={"problem_type": "single_label_classification"}),
        Twin("MelodyMachine/Deepfake-audio-detection-V2", "voice_synthetic", "Wav2Vec2ForSequenceClassification",
             {0: "fake", 1: "real"}, {0: "fake"},
             {"feature_extractor_type": "Wav2Vec2FeatureExtractor", "sampling_rate": AUDIO_RATE,
              "do_normalize": True, "return_attention_mask": False}, _wav2vec2),
        Twin("MIT/ast-finetuned-audioset-10-10-0.4593", "nonverbal", "ASTForAudioClassification",
             audioset, {i: label for i, label in audioset.items() if label in events}, AST_PREPROCESSOR, _ast,
             extra={"problem_type": None}),
    )}


def saved_facts(path: Path) -> tuple[dict, dict]:
    """(config.json, preprocessor_config.json) of a saved checkpoint."""
    return (json.loads((path / "config.json").read_text()), json.loads((path / "preprocessor_config.json").read_text()))
