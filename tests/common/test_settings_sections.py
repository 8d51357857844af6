"""Detector sections of Settings (detectors/configs.py) and the migration to them: every documented variable still
sets what it set, through the environment, the YAML file and ``Settings(...)`` arguments, and the nested forms work."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from detectors.configs import FaceForgeryConfig, IdentityConfig, NonverbalConfig, VoiceSyntheticConfig
from pipeline import ConfigError, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]

#: the detector settings as they were documented before they became sections (flat fields of Settings), each with
#: a valid non-default value and the (section, field) it must reach: operators' env files and YAML use these names
BEFORE_SECTIONS: dict[str, tuple[str, str, str, Any]] = {
    "VIGIL_FACE_FORGERY_CHECKPOINT": ("face_forgery", "checkpoint", "org/face-model", "org/face-model"),
    "VIGIL_FACE_FORGERY_FAKE_LABEL": ("face_forgery", "fake_label", "LABEL_1", "LABEL_1"),
    "VIGIL_FACE_FORGERY_BATCH_SIZE": ("face_forgery", "batch_size", "7", 7),
    "VIGIL_FACE_FORGERY_MAX_CROPS": ("face_forgery", "max_crops", "9", 9),
    "VIGIL_FACE_FORGERY_REVISION": ("face_forgery", "revision", "a" * 40, "a" * 40),
    "VIGIL_FACE_FORGERY_MAX_FACES": ("face_forgery", "max_faces", "2", 2),
    "VIGIL_VOICE_SYNTHETIC_CHECKPOINT": ("voice_synthetic", "checkpoint", "/models/spoof", "/models/spoof"),
    "VIGIL_VOICE_SYNTHETIC_FAKE_LABEL": ("voice_synthetic", "fake_label", "spoof", "spoof"),
    "VIGIL_VOICE_SYNTHETIC_BATCH_SIZE": ("voice_synthetic", "batch_size", "3", 3),
    "VIGIL_VOICE_SYNTHETIC_WINDOW_S": ("voice_synthetic", "window_s", "2.5", 2.5),
    "VIGIL_VOICE_SYNTHETIC_REVISION": ("voice_synthetic", "revision", "v2", "v2"),
    "VIGIL_NONVERBAL_CHECKPOINT": ("nonverbal", "checkpoint", "MIT/ast", "MIT/ast"),
    "VIGIL_NONVERBAL_EVENT_LABELS": ("nonverbal", "event_labels", '["Cough", "Sneeze"]', ["Cough", "Sneeze"]),
    "VIGIL_NONVERBAL_EVENT_THRESHOLD": ("nonverbal", "event_threshold", "0.4", 0.4),
    "VIGIL_NONVERBAL_BATCH_SIZE": ("nonverbal", "batch_size", "4", 4),
    "VIGIL_NONVERBAL_REVISION": ("nonverbal", "revision", "main", "main"),
    "VIGIL_IDENTITY_FACE_THRESHOLD": ("identity", "face_threshold", "0.5", 0.5),
    "VIGIL_IDENTITY_VOICE_THRESHOLD": ("identity", "voice_threshold", "0.75", 0.75),
    "VIGIL_IDENTITY_MIN_SPEECH_S": ("identity", "min_speech_s", "2", 2.0),
    "VIGIL_IDENTITY_FACES_PER_TRACK": ("identity", "faces_per_track", "5", 5),
    "VIGIL_IDENTITY_FACE_EVERY_S": ("identity", "face_every_s", "0", 0.0),
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("VIGIL_"):
            monkeypatch.delenv(key)


def reading(settings: Settings, field: str) -> Any:
    """The value a documented field name reads back: ``face_forgery.checkpoint`` through its section."""
    value: Any = settings
    for part in field.split("."):
        value = getattr(value, part)
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def test_the_names_before_sections_are_every_section_field() -> None:
    """Nothing was dropped or renamed: the sections hold exactly the fields that were flat before."""
    fields = {f"{section}.{field}" for section, field, _, _ in BEFORE_SECTIONS.values()}
    assert fields == {v for v in Settings.env_names().values() if "." in v}
    assert set(BEFORE_SECTIONS) <= set(Settings.env_names())


@pytest.mark.parametrize("variable", sorted(BEFORE_SECTIONS))
def test_a_name_from_before_sections_works_in_env_yaml_and_arguments(
        variable: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    section, field, text, expected = BEFORE_SECTIONS[variable]
    flat_key = variable[len("VIGIL_"):].lower()
    monkeypatch.setenv(variable, text)
    assert getattr(getattr(Settings(), section), field) == expected
    monkeypatch.delenv(variable)
    config = tmp_path / "vigil.yaml"
    config.write_text(f"{flat_key}: {json.dumps(expected)}\n")
    monkeypatch.setenv("VIGIL_CONFIG", str(config))
    assert getattr(getattr(Settings(), section), field) == expected
    monkeypatch.delenv("VIGIL_CONFIG")
    assert getattr(getattr(Settings(**{flat_key: expected}), section), field) == expected
    # and the nested forms
    monkeypatch.setenv(f"VIGIL_{section.upper()}__{field.upper()}", text)
    assert getattr(getattr(Settings(), section), field) == expected
    monkeypatch.delenv(f"VIGIL_{section.upper()}__{field.upper()}")
    config.write_text(f"{section}:\n  {field}: {json.dumps(expected)}\n")
    monkeypatch.setenv("VIGIL_CONFIG", str(config))
    assert getattr(getattr(Settings(), section), field) == expected


def _candidates(variable: str, field: str, default: Any) -> list[str]:
    """Environment values to try for a setting, the likeliest valid non-default one first."""
    special = {
        "VIGIL_ALLOWED_PRIVATE_NETWORKS": ["10.0.0.0/8,192.168.0.0/16"],
        "VIGIL_SPREAD_CHECKPOINTS_H": ["0.5,2,12"],
        "VIGIL_ES_INDEX_PREFIX": ["vigil-test"],
        "VIGIL_SPREAD_COOKIES_FILES": ['{"youtube": "/tmp/cookies.txt"}'],
        "VIGIL_SPREAD_PROXIES": ['{"youtube": "http://proxy.example.org:3128"}'],
        "VIGIL_ES_PASSWORD": [],  # needs VIGIL_ES_USER: test_password_without_user_is_refused, the contract test
        "VIGIL_CONSOLE_ES_PASSWORD": [],
        "VIGIL_KAFKA_SASL_MECHANISM": [],  # needs a user and a password: tests/common/test_settings.py
    }
    if variable in special:
        return special[variable]
    out: list[str] = []
    if isinstance(default, bool):
        out.append("false" if default else "true")
    elif isinstance(default, int):
        out += [str(default + 1), str(max(default - 1, 0))]
    elif isinstance(default, float):
        out += [str(default / 2), str(default + 0.5), str(min(default + 0.05, 0.95))]
    elif isinstance(default, list):
        out += ["alpha,beta", '["alpha", "beta"]']
    elif isinstance(default, dict):
        out.append('{"example.org": 5}')
    out += ["/tmp/vigil-migration-check", "test-value", "json", "float16", "SSL", "PLAIN", "5"]
    return out


def test_every_documented_variable_sets_its_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each variable that Settings documents (its fields, sections by their flat names) and each that a page names
    (README, docs/, the design contract) is read: some valid non-default value set through the environment reaches
    its field."""
    names = Settings.env_names()
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    design = ROOT.parent / "shared" / "DESIGN.md"
    if design.is_file():
        pages.append(design)
    named = set().union(*(re.findall(r"VIGIL_[A-Z0-9_]*[A-Z0-9]", p.read_text()) for p in pages))
    documented = sorted(set(names) | (named & set(names)))
    defaults = Settings()
    not_read: list[str] = []
    for variable in documented:
        field = names[variable]
        default = reading(defaults, field)
        candidates = _candidates(variable, field, default)
        if not candidates:
            continue  # needs a companion setting; its own test covers it
        for text in candidates:
            monkeypatch.setenv(variable, text)
            try:
                value = reading(load_settings(), field)
            except ConfigError:
                continue
            finally:
                monkeypatch.delenv(variable)
            if value != default:
                break
        else:
            not_read.append(variable)
    assert not_read == [], f"documented variables that set nothing: {not_read}"


def test_nested_and_flat_in_one_source_the_nested_wins_and_precedence_holds_across_sources(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "vigil.yaml"
    config.write_text("face_forgery_checkpoint: from-yaml-flat\nface_forgery:\n  checkpoint: from-yaml-nested\n"
                      "  max_crops: 5\nidentity_faces_per_track: 4\n")
    monkeypatch.setenv("VIGIL_CONFIG", str(config))
    settings = Settings()
    assert settings.face_forgery.checkpoint == "from-yaml-nested" and settings.face_forgery.max_crops == 5
    assert settings.identity.faces_per_track == 4
    # the environment wins over the file, field by field: the section is merged, not replaced
    monkeypatch.setenv("VIGIL_FACE_FORGERY_CHECKPOINT", "from-env")
    settings = Settings()
    assert settings.face_forgery.checkpoint == "from-env" and settings.face_forgery.max_crops == 5
    # arguments win over both, flat or nested
    assert Settings(face_forgery_checkpoint="from-arg").face_forgery.checkpoint == "from-arg"
    assert Settings(face_forgery={"max_crops": 2}).face_forgery == FaceForgeryConfig(checkpoint="from-env", max_crops=2)


def test_sections_are_typed_and_frozen_and_errors_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert isinstance(settings.face_forgery, FaceForgeryConfig) and isinstance(settings.identity, IdentityConfig)
    assert isinstance(settings.nonverbal, NonverbalConfig) and isinstance(settings.voice_synthetic, VoiceSyntheticConfig)
    with pytest.raises(Exception, match="frozen"):
        settings.identity.face_threshold = 0.9  # type: ignore[misc]
    monkeypatch.setenv("VIGIL_IDENTITY_FACE_THRESHOLD", "1.5")
    with pytest.raises(ConfigError, match="VIGIL_IDENTITY_FACE_THRESHOLD"):
        load_settings()
    monkeypatch.delenv("VIGIL_IDENTITY_FACE_THRESHOLD")
    monkeypatch.setenv("VIGIL_NONVERBAL_EVENT_LABELS", "Cough, Sneeze")
    with pytest.raises(ConfigError, match="VIGIL_NONVERBAL_EVENT_LABELS takes JSON"):
        load_settings()
    monkeypatch.delenv("VIGIL_NONVERBAL_EVENT_LABELS")
    with pytest.raises(ConfigError, match="VIGIL_FACE_FORGERY_MAX_CROP"):  # a typo inside a section is refused
        load_settings(face_forgery={"max_crop": 3})


def test_each_section_is_found_by_its_type_and_named_after_its_detector() -> None:
    settings = Settings(identity_faces_per_track=2)
    for name, config_type in Settings.sections().items():
        assert config_type.section == name
        assert settings.detector_config(config_type) is getattr(settings, name)
    assert settings.detector_config(IdentityConfig).faces_per_track == 2
    assert FaceForgeryConfig.env_name("checkpoint") == "VIGIL_FACE_FORGERY_CHECKPOINT"
    with pytest.raises(KeyError):
        FaceForgeryConfig.env_name("nope")


def test_settings_rendered_as_environment_read_back_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """tests/support's settings_env renders a section's fields by their documented names, and a process given them
    reads the same settings."""
    from support.stack import settings_env

    settings = Settings(device="cpu", face_forgery_checkpoint="org/model", nonverbal_event_labels=["Cough"],
                        identity={"faces_per_track": 2, "face_every_s": 0})
    env = settings_env(settings)
    assert env["VIGIL_FACE_FORGERY_CHECKPOINT"] == "org/model" and env["VIGIL_IDENTITY_FACES_PER_TRACK"] == "2"
    assert json.loads(env["VIGIL_NONVERBAL_EVENT_LABELS"]) == ["Cough"]
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert Settings() == settings
