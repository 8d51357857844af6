"""The one-host stack (infra/compose): the compose-spec JSON schema (../shared/schemas), and what the stack promises:
health checks and start order, secrets only from the operator's env file, GPUs reserved by the workers, the
one-shot setup, ports on loopback only."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from support.deploy import COMPOSE, ROOT, shared_schema, tool

COMPOSE_FILES = sorted(COMPOSE.glob("compose*.yaml"))
ONE_SHOT = {"es-setup", "vigil-setup", "airflow-init"}


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def main() -> dict[str, Any]:
    return load(COMPOSE / "compose.yaml")


def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(shared_schema("compose-spec.json").read_text())
    # the file names draft-07 without the trailing '#', which jsonschema does not recognise by itself
    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_file_matches_the_compose_spec(path: Path) -> None:
    errors = sorted(validator().iter_errors(load(path)), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:20])


def test_the_schema_rejects_a_misspelt_service_key() -> None:
    doc = main()
    doc["services"]["sink"]["helthcheck"] = doc["services"]["sink"].pop("healthcheck")
    assert any("helthcheck" in e.message for e in validator().iter_errors(doc))


def test_every_long_running_service_has_a_health_check_and_one_shots_do_not_restart() -> None:
    for name, service in main()["services"].items():
        if name in ONE_SHOT:
            assert service.get("restart", "no") == "no", name
        else:
            assert "healthcheck" in service and service["healthcheck"]["test"], f"{name} has no health check"
            assert service.get("restart") == "unless-stopped", name


def test_start_order() -> None:
    services = main()["services"]
    for name, service in services.items():
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert dependency != name
            expected = "service_completed_successfully" if dependency in ONE_SHOT and dependency != "es-setup" \
                else None
            if expected:
                assert condition["condition"] == expected, f"{name} → {dependency}"
            elif dependency not in ONE_SHOT:
                assert condition["condition"] == "service_healthy", f"{name} → {dependency}"
    # setup waits for everything it configures, and everything Vigil runs waits for setup
    setup = services["vigil-setup"]["depends_on"]
    assert {"kafka", "elasticsearch", "kibana", "es-setup"} <= set(setup)
    for name in ("sink", "console", "worker", "airflow-scheduler", "airflow-api-server", "airflow-dag-processor",
                 "airflow-triggerer"):
        assert services[name]["depends_on"]["vigil-setup"]["condition"] == "service_completed_successfully", name
    assert services["airflow-init"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["elasticsearch"]["depends_on"]["es-setup"]["condition"] == "service_healthy"


def test_no_dependency_cycle() -> None:
    services = main()["services"]
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        assert state.get(name) != "open", f"cycle: {' → '.join(path + [name])}"
        state[name] = "open"
        for dependency in services[name].get("depends_on") or {}:
            visit(dependency, path + [name])
        state[name] = "done"

    for name in services:
        visit(name, [])


def test_setup_runs_vigil_setup_and_the_kibana_import() -> None:
    command = " ".join(main()["services"]["vigil-setup"]["command"])
    assert "vigil setup && vigil kibana import --url http://kibana:5601" in command


def test_workers_reserve_nvidia_gpus_one_device_each() -> None:
    services = main()["services"]
    extra = load(COMPOSE / "compose.gpus.yaml")["services"]
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    assert services["worker"]["environment"]["VIGIL_DEVICE"] == "cuda:0"
    # workers never talk to Elasticsearch: neither its password nor its CA is theirs
    assert not any(key.startswith("VIGIL_ES_") for key in services["worker"]["environment"])
    assert not any("certs" in volume for volume in services["worker"]["volumes"])
    seen = {"cuda:0"}
    for name, service in extra.items():
        assert service["extends"] == {"file": "compose.yaml", "service": "worker"}, name
        device = service["environment"]["VIGIL_DEVICE"]
        assert device not in seen, f"{name} shares {device}"
        seen.add(device)


def required_variables(text: str) -> set[str]:
    return set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))


def example_env() -> dict[str, str]:
    values = {}
    for line in (COMPOSE / "example.env").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value
    return values


def test_secrets_come_from_the_operators_env_file() -> None:
    text = (COMPOSE / "compose.yaml").read_text()
    required = required_variables(text)
    example = example_env()
    assert required == set(example), "example.env must list exactly the variables compose.yaml requires"
    assert all(value == "" for value in example.values()), "example.env ships no passwords"
    # no literal password anywhere: every *PASSWORD*, *SECRET*, *KEY* value is a required variable
    for name, service in main()["services"].items():
        env = service.get("environment") or {}
        for key, value in env.items():
            if re.search(r"PASSWORD|SECRET|FERNET|ENCRYPTION", key) and not key.endswith("_FILE"):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]*\}", str(value)), f"{name}: {key} is not from .env"
    assert "infra/compose/.env" in (ROOT / ".gitignore").read_text()


def test_ports_are_published_on_loopback_only() -> None:
    for name, service in main()["services"].items():
        for port in service.get("ports") or []:
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond this host"


def test_images_are_pinned_and_builds_point_at_the_dockerfiles() -> None:
    for name, service in main()["services"].items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: {image}"
        if "build" in service:
            dockerfile = (COMPOSE / service["build"]["context"] / service["build"]["dockerfile"]).resolve()
            assert dockerfile.is_file(), f"{name}: {dockerfile}"


def test_elasticsearch_runs_with_security_and_tls() -> None:
    env = main()["services"]["elasticsearch"]["environment"]
    assert env["xpack.security.enabled"] == "true"
    assert env["xpack.security.http.ssl.enabled"] == "true"
    vigil = main()["x-vigil-env"]
    assert vigil["VIGIL_ES_URL"].startswith("https://") and vigil["VIGIL_ES_CA_FILE"] == "/certs/ca/ca.crt"


def test_es_setup_script_parses() -> None:
    done = subprocess.run(["bash", "-n", str(COMPOSE / "es-setup.sh")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_es_setup_refuses_to_run_without_the_passwords(tmp_path: Path) -> None:
    done = subprocess.run(["bash", str(COMPOSE / "es-setup.sh")], capture_output=True, text=True, cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin"})
    assert done.returncode != 0 and "set ELASTIC_PASSWORD in infra/compose/.env" in done.stderr


# -- what Docker Compose itself makes of the files (its own loader: interpolation, merge keys, `extends`, the
# second file over the first), without a Docker engine

def compose_config(tmp_path: Path, env: dict[str, str], *files: str) -> subprocess.CompletedProcess[str]:
    binary = tool("docker-compose")
    env_file = tmp_path / "test.env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in env.items()))
    args = [binary, "--project-directory", str(COMPOSE), "--env-file", str(env_file)]
    for name in files:
        args += ["-f", str(COMPOSE / name)]
    return subprocess.run([*args, "config", "--format", "json"], capture_output=True, text=True, cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})


def filled_example() -> dict[str, str]:
    return {key: f"test-{key.lower().replace('_', '-')}-0123456789abcdef" for key in example_env()}


def test_docker_compose_resolves_both_files(tmp_path: Path) -> None:
    done = compose_config(tmp_path, filled_example(), "compose.yaml", "compose.gpus.yaml")
    assert done.returncode == 0, done.stderr
    services = json.loads(done.stdout)["services"]
    workers = {name: s for name, s in services.items() if name.startswith("worker")}
    assert sorted(workers) == ["worker", "worker-1", "worker-2", "worker-3"]
    for name, worker in workers.items():
        # `extends` carried the whole worker over, GPU reservation and health check included
        assert worker["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia", name
        assert worker["healthcheck"]["test"] == ["CMD", "vigil-healthcheck", "metrics"], name
        assert worker["environment"]["VIGIL_KAFKA_BOOTSTRAP"] == "kafka:9092", name
        assert "VIGIL_ES_PASSWORD" not in worker["environment"], name
    assert sorted(w["environment"]["VIGIL_DEVICE"] for w in workers.values()) == [f"cuda:{i}" for i in range(4)]
    # the merge keys reached every Airflow component, and the secrets arrived from the env file
    scheduler = services["airflow-scheduler"]["environment"]
    assert scheduler["VIGIL_ES_PASSWORD"] == filled_example()["VIGIL_ES_PASSWORD"]
    assert scheduler["AIRFLOW__CORE__FERNET_KEY"] == filled_example()["AIRFLOW_FERNET_KEY"]
    assert services["vigil-setup"]["depends_on"]["kibana"]["condition"] == "service_healthy"


def test_docker_compose_refuses_to_start_without_a_password(tmp_path: Path) -> None:
    env = filled_example()
    del env["ELASTIC_PASSWORD"]
    done = compose_config(tmp_path, env, "compose.yaml")
    assert done.returncode != 0
    assert "set ELASTIC_PASSWORD in infra/compose/.env" in done.stderr


def test_airflow_init_imports_the_pools_the_image_ships(tmp_path: Path) -> None:
    """Compose as Docker resolves it: airflow-init migrates the metadata database, then imports Vigil's pools from
    the copy in the Airflow image, before any Airflow component starts."""
    done = compose_config(tmp_path, filled_example(), "compose.yaml")
    assert done.returncode == 0, done.stderr
    services = json.loads(done.stdout)["services"]
    command = " ".join(services["airflow-init"]["command"])
    migrate, pools = command.index("airflow db migrate"), command.index(
        "airflow pools import /opt/vigil/src/infra/airflow/pools.json")
    assert migrate < pools and "&&" in command[migrate:pools]
    for name in ("airflow-scheduler", "airflow-api-server", "airflow-dag-processor", "airflow-triggerer"):
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully", name
    dockerfile = (ROOT / "infra" / "docker" / "airflow.Dockerfile").read_text()
    assert "COPY infra/airflow infra/airflow" in dockerfile and "WORKDIR /opt/vigil/src" in dockerfile
