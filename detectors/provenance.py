"""Detector ``provenance``: what the file says about where it came from, without decoding a frame.

    probe(clip, path)  while the file is at hand (Suite.prepare): the C2PA manifest store (c2pa-python's Reader;
                       no credentials is the common case, not an error) and the container's format/stream tags (PyAV,
                       headers only)
    _forward           nothing on the device
    postprocess        score from the active manifest's digital source type and validation state, else from
                       container tags naming a generator or an editing tool

Scores: trainedAlgorithmicMedia / compositeWithTrainedAlgorithmicMedia in a valid manifest 0.97 (0.9 when the
manifest does not validate); a manifest whose validation fails (the content changed after signing) 0.8; container
tags naming an AI generator 0.85, an editing tool 0.25; a valid capture manifest 0.05, other valid manifests 0.15.
Not applicable when the file carries neither credentials nor telling tags. Absence proves nothing: platforms
strip both.
"""
from __future__ import annotations

import logging
import re
from typing import Any

import torch

from ._base import Detector, DetectorResult, NotApplicable
from ._clip import Clip
from ._registry import register

__all__ = ["Provenance", "read_provenance", "AI_SOURCE_TYPES"]

logger = logging.getLogger(__name__)

AI_SOURCE_TYPES = ("trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia")
_SYNTHETIC_TYPES = ("algorithmicMedia", "compositeSynthetic", "virtualRecording")
_CAPTURE_TYPES = ("digitalCapture", "computationalCapture", "negativeFilm", "positiveFilm", "print",
                  "minorHumanEdits")
#: generator and editing-tool names seen in container tags (encoder, software, comment, handler names …)
_GENERATORS = re.compile(
    r"\b(sora|runway(ml)?|gen-?[234]|pika|kling|veo|luma|dream ?machine|hailuo|minimax|synthesia|heygen|d-id|"
    r"deepfacelab|faceswap|facefusion|roop|wav2lip|midjourney|stable ?(video|diffusion)|animatediff|elevenlabs|"
    r"invideo|hedra|vidu|firefly|imagen|dall-?e|comfyui)\b", re.IGNORECASE)
_EDITORS = re.compile(
    r"\b(premiere|after ?effects|final ?cut|davinci|resolve|capcut|imovie|vegas|kdenlive|shotcut|openshot|"
    r"filmora|clipchamp|lumafusion|avid|media composer|handbrake|inshot|vn video|canva)\b", re.IGNORECASE)
_TAG_KEYS = ("encoder", "encoded_by", "software", "comment", "description", "creation_tool", "tool", "handler_name",
             "com.apple.quicktime.software", "com.android.version", "make", "model", "artist", "title")


def _container_tags(path: str) -> dict[str, str]:
    import av

    tags: dict[str, str] = {}
    try:
        with av.open(path, metadata_errors="ignore") as container:
            for key, value in (container.metadata or {}).items():
                tags[f"format.{key.lower()}"] = str(value)
            for stream in container.streams:
                for key, value in (stream.metadata or {}).items():
                    tags[f"{stream.type}.{key.lower()}"] = str(value)
    except (av.error.FFmpegError, OSError) as exc:
        logger.debug("provenance: container tags of %s unreadable: %s", path, exc)
    return tags


def _tool_in_tags(tags: dict[str, str]) -> tuple[str | None, str | None, str | None]:
    """(generator, editor, the tag naming it) found in container tags."""
    generator = editor = where = None
    for key, value in tags.items():
        if key.rsplit(".", 1)[-1] not in _TAG_KEYS:
            continue
        if generator is None and (m := _GENERATORS.search(value)):
            generator, where = m.group(0), f"{key}={value[:80]}"
        if editor is None and (m := _EDITORS.search(value)):
            editor = m.group(0)
            where = where or f"{key}={value[:80]}"
    return generator, editor, where


def _source_type(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    return value.rstrip("/").rsplit("/", 1)[-1]


def _manifest_facts(manifest: dict[str, Any]) -> dict[str, Any]:
    generators = [g.get("name") for g in manifest.get("claim_generator_info") or [] if isinstance(g, dict)]
    claim_generator = manifest.get("claim_generator") or ", ".join(str(g) for g in generators if g) or None
    actions: list[dict[str, Any]] = []
    for assertion in manifest.get("assertions") or []:
        label = str(assertion.get("label", ""))
        if not label.startswith("c2pa.actions"):
            continue
        for action in (assertion.get("data") or {}).get("actions") or []:
            agent = action.get("softwareAgent")
            actions.append({"action": action.get("action"),
                            "digital_source_type": _source_type(action.get("digitalSourceType")),
                            "software_agent": agent.get("name") if isinstance(agent, dict) else agent})
    types = [a["digital_source_type"] for a in actions if a["digital_source_type"]]
    signature = manifest.get("signature_info") or {}
    return {"claim_generator": claim_generator, "actions": actions, "digital_source_types": types,
            "signer": signature.get("common_name"), "issuer": signature.get("issuer"),
            "signed_at": signature.get("time"), "title": manifest.get("title"),
            "ingredients": len(manifest.get("ingredients") or [])}


def read_provenance(path: str) -> dict[str, Any]:
    """C2PA facts and container tags of the file at ``path``; ``c2pa_error`` says why credentials could not be read."""
    facts: dict[str, Any] = {"manifest": None, "validation_state": None, "failures": [], "c2pa_error": None,
                             "tags": _container_tags(path)}
    try:
        import c2pa
    except ImportError:
        facts["c2pa_error"] = "c2pa-python is not installed (infra/install worker)"
        return facts
    try:
        reader = c2pa.Reader.try_create(path)
    except c2pa.C2paError as exc:  # not a format it reads, or a damaged manifest store
        facts["c2pa_error"] = f"{type(exc).__name__}: {exc}"[:300]
        return facts
    if reader is None:
        return facts
    with reader:
        manifest = reader.get_active_manifest()
        facts["validation_state"] = reader.get_validation_state()
        results = reader.get_validation_results() or {}
    active = results.get("activeManifest") if isinstance(results, dict) else None
    failures = (active or {}).get("failure") or []
    facts["failures"] = sorted({str(f.get("code")) for f in failures if isinstance(f, dict)})
    facts["manifest"] = _manifest_facts(manifest) if isinstance(manifest, dict) else {}
    return facts


@register
class Provenance(Detector[dict[str, Any], dict[str, Any]]):
    """C2PA content credentials and container tags: AI-generated claims, signer, validation."""

    name = "provenance"
    version = "1.0"

    def __init__(self, *, device: str | torch.device = "cpu", batch_size: int = 64) -> None:
        super().__init__(device="cpu", batch_size=batch_size)  # no model: nothing goes to the device
        try:
            import c2pa

            self.version = f"{type(self).version}+c2pa-python-{c2pa.__version__}"
        except ImportError:
            self.version = f"{type(self).version}+no-c2pa"

    def probe(self, clip: Clip, path: str) -> None:
        """Read the file's provenance while it is at hand (a remote store's copy is gone after decoding)."""
        clip.probes[self.name] = read_provenance(path)

    def preprocess(self, clip: Clip) -> dict[str, Any] | NotApplicable:
        facts = clip.probes.get(self.name)
        if facts is None:
            facts = read_provenance(clip.source)
        generator, editor, where = _tool_in_tags(facts["tags"])
        if facts["manifest"] is None and generator is None and editor is None:
            why = "no content credentials and no generator or editing tool in the container tags"
            if facts["c2pa_error"]:
                why += f" (credentials unreadable: {facts['c2pa_error']})"
            return NotApplicable(why)
        return {**facts, "generator": generator, "editor": editor, "tag": where}

    def _forward(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return batch

    def postprocess(self, raw: dict[str, Any], clip: Clip) -> DetectorResult:
        manifest = raw["manifest"]
        state = raw["validation_state"]
        failures = raw["failures"]
        broken = [f for f in failures if not f.startswith("signingCredential.untrusted")]
        reasons: list[str] = []
        container_tool = raw["generator"] or raw["editor"]
        if manifest is not None:
            types = manifest.get("digital_source_types") or []
            ai = [t for t in types if t in AI_SOURCE_TYPES]
            valid = state in ("Valid", "Trusted") and not broken
            by = manifest.get("claim_generator") or "an unnamed tool"
            signer = manifest.get("signer") or "an unnamed signer"
            agents = [a["software_agent"] for a in manifest.get("actions") or [] if a.get("software_agent")]
            if ai:
                score = 0.97 if valid else 0.9
                reasons.append(f"content credentials declare AI-generated media ({ai[0]}"
                               f"{', by ' + agents[0] if agents else ''}; claim by {by}, signed by {signer})")
                if not valid:
                    reasons.append(f"and the credentials fail validation ({', '.join(broken) or state}): the file "
                                   f"changed after it was signed")
            elif not valid:
                score = 0.8
                reasons.append(f"content credentials fail validation ({', '.join(broken) or state}): the file "
                               f"changed after it was signed by {signer}")
            elif any(t in _SYNTHETIC_TYPES for t in types):
                score = 0.6
                reasons.append(f"content credentials declare synthetic media ({types[0]}; claim by {by})")
            elif any(t in _CAPTURE_TYPES for t in types):
                score = 0.05
                reasons.append(f"valid content credentials of a capture ({types[0]}; claim by {by}, signed by "
                               f"{signer})")
            else:
                score = 0.15
                reasons.append(f"valid content credentials without an AI claim (claim by {by}, signed by {signer})")
            if raw["generator"]:
                score = max(score, 0.85)
                reasons.append(f"container tags name the generator {raw['generator']} ({raw['tag']})")
            if "signingCredential.untrusted" in failures:
                reasons.append("the signing certificate is not on a trust list")
        elif raw["generator"]:
            score = 0.85
            reasons.append(f"container tags name the generator {raw['generator']} ({raw['tag']}); "
                           f"no content credentials")
        else:
            score = 0.25
            reasons.append(f"container tags name the editing tool {raw['editor']} ({raw['tag']}); "
                           f"no content credentials")
        summary = {
            "present": manifest is not None,
            "ai_generated": bool(manifest and any(t in AI_SOURCE_TYPES for t in manifest.get("digital_source_types")
                                                  or [])) or bool(raw["generator"]),
            "validation_state": state,
            "claim_generator": (manifest or {}).get("claim_generator"),
            "signer": (manifest or {}).get("signer"),
            "issuer": (manifest or {}).get("issuer"),
            "digital_source_type": next(iter((manifest or {}).get("digital_source_types") or []), None),
            "actions": [a["action"] for a in (manifest or {}).get("actions") or [] if a.get("action")],
            "container_tool": container_tool,
        }
        evidence = {**summary, "failures": failures, "manifest": manifest, "container_tag": raw["tag"],
                    "reasons": reasons}
        return self.result(applicable=True, score=score, evidence=evidence, annotations={"provenance": summary})
