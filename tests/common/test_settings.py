"""The one settings object: contract names, YAML, precedence, validation, secrets."""
from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import ConfigError, Settings, load_settings

CONTRACT = {
    "VIGIL_KAFKA_BOOTSTRAP": ("kafka_bootstrap", "broker-1:9092,broker-2:9092"),
    "VIGIL_ES_URL": ("es_url", "https://es.example.org:9200"),
    "VIGIL_ES_USER": ("es_user", "analyst"),
    "VIGIL_MEDIA_STORE": ("media_store", "s3://vigil-media/store"),
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("VIGIL_"):
            monkeypatch.delenv(key)


def test_connection_settings_use_the_contract_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    for env, (_, value) in CONTRACT.items():
        monkeypatch.setenv(env, value)
    monkeypatch.setenv("VIGIL_ES_PASSWORD", "s3cret-pass")
    monkeypatch.setenv("VIGIL_ES_CA_FILE", str(ca))
    settings = Settings()
    for _, (field, value) in CONTRACT.items():
        assert getattr(settings, field) == value
    assert settings.es_password.get_secret_value() == "s3cret-pass"
    assert settings.es_ca_file == ca


def test_api_key_is_read_and_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_ES_API_KEY", "QmFzZTY0S2V5")
    settings = Settings()
    assert settings.es_api_key.get_secret_value() == "QmFzZTY0S2V5"
    assert "QmFzZTY0S2V5" not in repr(settings)
    assert "QmFzZTY0S2V5" not in str(settings.model_dump())


def test_password_never_appears_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_ES_USER", "vigil")
    monkeypatch.setenv("VIGIL_ES_PASSWORD", "hunter2-very-secret")
    assert "hunter2-very-secret" not in repr(Settings())


def test_yaml_file_is_read_and_environment_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "vigil.yaml"
    config.write_text("kafka_bootstrap: yaml-broker:9092\ntopic_partitions: 12\nes_index_prefix: staging\n")
    monkeypatch.setenv("VIGIL_CONFIG", str(config))
    monkeypatch.setenv("VIGIL_KAFKA_BOOTSTRAP", "env-broker:9092")
    settings = Settings()
    assert settings.kafka_bootstrap == "env-broker:9092"
    assert settings.topic_partitions == 12
    assert settings.index("videos") == "staging-videos"


def test_missing_config_file_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VIGIL_CONFIG", str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match="nope.yaml"):
        Settings()


def test_comma_separated_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_ALLOWED_PRIVATE_NETWORKS", "127.0.0.0/8, 10.1.0.0/16")
    monkeypatch.setenv("VIGIL_DOMAIN_ALLOWLIST", "YouTube.com,.tiktok.com")
    settings = Settings()
    assert settings.allowed_private_networks == ["127.0.0.0/8", "10.1.0.0/16"]
    assert settings.domain_allowlist == ["youtube.com", "tiktok.com"]


def test_defaults_are_safe() -> None:
    settings = Settings()
    assert settings.allowed_private_networks == []
    assert settings.domain_allowlist == []
    assert settings.topics == ("vigil.jobs", "vigil.results", "vigil.dlq")
    assert [settings.index(n) for n in ("videos", "detections", "spread", "alerts")] == [
        "vigil-videos", "vigil-detections", "vigil-spread", "vigil-alerts"]


@pytest.mark.parametrize(("env", "value", "named"), [
    ("VIGIL_ALLOWED_PRIVATE_NETWORKS", "10.0.0.0/33", "VIGIL_ALLOWED_PRIVATE_NETWORKS"),
    ("VIGIL_TOPIC_PARTITIONS", "0", "VIGIL_TOPIC_PARTITIONS"),
    ("VIGIL_ES_INDEX_PREFIX", "Bad Prefix", "VIGIL_ES_INDEX_PREFIX"),
    ("VIGIL_KAFKA_SECURITY_PROTOCOL", "CARRIER_PIGEON", "VIGIL_KAFKA_SECURITY_PROTOCOL"),
])
def test_invalid_values_name_the_variable(monkeypatch: pytest.MonkeyPatch, env: str, value: str, named: str) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError, match=named):
        load_settings()


def test_password_without_user_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_ES_PASSWORD", "x")
    with pytest.raises(ConfigError, match="VIGIL_ES_USER"):
        load_settings()


def test_comma_lists_accept_json_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_ALLOWED_PRIVATE_NETWORKS", '["127.0.0.0/8", "::1/128"]')
    assert Settings().allowed_private_networks == ["127.0.0.0/8", "::1/128"]


def test_unparseable_environment_value_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_RELEVANCE_TOPICS", "[not json")
    with pytest.raises(ConfigError, match="relevance_topics"):
        load_settings()


def test_every_setting_the_readme_names_exists() -> None:
    """README.md and the documentation pages (docs/**/*.md) name only real settings."""
    import re

    root = Path(__file__).resolve().parents[2]
    fields = set(Settings.env_names())
    fields |= {f"VIGIL_{f.replace('.', '__').upper()}" for f in Settings.env_names().values() if "." in f}  # nested
    not_settings = {"VIGIL_CONFIG", "VIGIL_STACK_DIR", "VIGIL_TEST_EXTERNAL_STACK", "VIGIL_VENVS", "VIGIL_PYTHON",
                    "VIGIL_SCREENSHOT_DIR", "VIGIL_MEDIA_CORPUS", "VIGIL_MEDIA_MIRRORS"}
    pages = [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
    unknown = {}
    for page in pages:
        named = set(re.findall(r"VIGIL_[A-Z0-9_]*[A-Z0-9]", page.read_text()))
        wrong = sorted(named - fields - not_settings)
        if wrong:
            unknown[str(page.relative_to(root))] = wrong
    assert unknown == {}
