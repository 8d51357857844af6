"""`vigil setup` and `vigil status` as an operator runs them: a real process against the real stack."""
from __future__ import annotations

import subprocess
import sys

import pytest

from pipeline import Settings
from support.stack import settings_env

pytestmark = [pytest.mark.kafka, pytest.mark.elasticsearch]


def vigil(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_setup_then_status_all_ok(stack_settings: Settings) -> None:
    env = settings_env(stack_settings, inherit=True)
    before = vigil("status", env=env)
    assert before.returncode == 1
    assert "Kafka topics missing" in before.stdout and "run `vigil setup`" in before.stdout
    assert f"index template {stack_settings.es_index_prefix}-videos is missing" in before.stdout

    first = vigil("setup", env=env)
    assert first.returncode == 0, first.stderr
    assert "changed something" in first.stdout
    second = vigil("setup", env=env)
    assert second.returncode == 0, second.stderr
    assert "nothing to change: already set up" in second.stdout
    assert "created" not in second.stdout and "updated" not in second.stdout

    after = vigil("status", env=env)
    assert after.returncode == 0, after.stdout
    assert "FAIL" not in after.stdout
    assert stack_settings.topic_jobs in after.stdout


def test_status_explains_a_wrong_password(stack_settings: Settings) -> None:
    result = vigil("status", env=settings_env(stack_settings, inherit=True, VIGIL_ES_PASSWORD="not-the-password"))
    assert result.returncode == 1
    assert "refused user 'vigil' (HTTP 401)" in result.stdout
    assert "VIGIL_ES_PASSWORD" in result.stdout
    assert "not-the-password" not in result.stdout + result.stderr


def test_status_explains_missing_credentials(stack_settings: Settings) -> None:
    env = settings_env(stack_settings, inherit=True)
    del env["VIGIL_ES_USER"], env["VIGIL_ES_PASSWORD"]
    result = vigil("status", env=env)
    assert result.returncode == 1
    assert "refused no credentials (HTTP 401)" in result.stdout
    assert "set VIGIL_ES_USER and VIGIL_ES_PASSWORD" in result.stdout


def test_status_explains_servers_that_are_down(stack_settings: Settings, unused_port: int) -> None:
    env = settings_env(stack_settings, inherit=True, VIGIL_KAFKA_BOOTSTRAP=f"127.0.0.1:{unused_port}",
                       VIGIL_ES_URL=f"https://127.0.0.1:{unused_port}")
    result = vigil("status", env=env)
    assert result.returncode == 1
    assert f"Kafka at 127.0.0.1:{unused_port} is not reachable" in result.stdout
    assert f"Elasticsearch at https://127.0.0.1:{unused_port} is not reachable" in result.stdout
    assert "infra/local/stack up" in result.stdout
    assert "Traceback" not in result.stderr


def test_setup_fails_clearly_when_a_server_is_down(stack_settings: Settings, unused_port: int) -> None:
    result = vigil("setup", env=settings_env(stack_settings, inherit=True, VIGIL_KAFKA_BOOTSTRAP=f"127.0.0.1:{unused_port}",
                                              VIGIL_KAFKA_BOOTSTRAP_TIMEOUT_MS="3000"))
    assert result.returncode == 1
    assert f"setup failed: Kafka at 127.0.0.1:{unused_port} is not reachable" in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_settings_exit_2_naming_the_variable(stack_settings: Settings) -> None:
    result = vigil("status", env=settings_env(stack_settings, inherit=True, VIGIL_TOPIC_PARTITIONS="many"))
    assert result.returncode == 2
    assert "VIGIL_TOPIC_PARTITIONS" in result.stderr
