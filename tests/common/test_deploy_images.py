"""The images (infra/docker): hadolint, what every image must have (non-root user, pinned base, HEALTHCHECK, its
environment from infra/install), the build context, the health-check script against a real HTTP endpoint, and
that every command any deployment file runs exists in the `vigil` CLI and every VIGIL_ name is a setting."""
from __future__ import annotations

import fnmatch
import http.server
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from support.deploy import (
    COMPOSE,
    DOCKER,
    DOCKERFILES,
    KUBERNETES,
    OVERLAYS,
    ROOT,
    build_overlay,
    tool,
    vigil_commands_in_shell,
)

from pipeline import Settings

IMAGES = {path.name.removesuffix(".Dockerfile"): path for path in DOCKERFILES}


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in dockerfile.read_text().splitlines()
                                          if not line.lstrip().startswith("#")))
    out = []
    for line in text.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def final_stage(dockerfile: Path) -> list[tuple[str, str]]:
    steps = instructions(dockerfile)
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def test_the_three_images_exist() -> None:
    assert set(IMAGES) == {"worker", "service", "airflow"}


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_hadolint_passes(name: str) -> None:
    hadolint = tool("hadolint")
    done = subprocess.run([hadolint, "--no-color", str(IMAGES[name])], capture_output=True, text=True)
    assert done.returncode == 0, f"hadolint {IMAGES[name].name}:\n{done.stdout}{done.stderr}"


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    hadolint = tool("hadolint")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /tmp && pip install requests\n")
    done = subprocess.run([hadolint, "--no-color", str(bad)], capture_output=True, text=True)
    assert done.returncode != 0
    assert "DL3007" in done.stdout and "DL3003" in done.stdout


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_image_basics(name: str) -> None:
    steps = instructions(IMAGES[name])
    final = final_stage(IMAGES[name])
    stages = {args.split()[-1] for word, args in steps if word == "FROM" and " AS " in args.upper()}
    for image in (args.split()[0] for word, args in steps if word == "FROM"):
        if image not in stages:
            assert ":" in image and not image.endswith(":latest"), f"{name}: unpinned base {image}"
    users = [args for word, args in final if word == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}, f"{name}: the image must run as a non-root user"
    assert any(word == "HEALTHCHECK" for word, _ in final), f"{name}: no HEALTHCHECK"
    # one source of truth for dependencies: no pip or apt Python packages of the image's own
    runs = " ".join(args for word, args in steps if word == "RUN")
    assert "infra/install --no-system" in runs
    assert "pip install" not in runs and "python3-" not in runs


def test_each_image_installs_its_side() -> None:
    def install_line(name: str) -> str:
        return next(args for word, args in instructions(IMAGES[name]) if word == "RUN" and "infra/install" in args)

    assert install_line("worker").split()[-1] == "worker"
    assert install_line("airflow").split()[-1] == "airflow"
    service_side = next(args for word, args in instructions(IMAGES["service"]) if word == "ARG" and "SIDE=" in args)
    assert service_side == "SIDE=worker"  # the sink lives on the worker side
    worker_base = next(args for word, args in instructions(IMAGES["worker"]) if word == "FROM")
    assert worker_base.startswith("nvidia/cuda:") and "-base-" in worker_base
    # no Airflow in the worker image, no detectors' dependencies in the Airflow image
    assert "airflow" not in install_line("worker")
    assert "worker" not in install_line("airflow")


def test_the_install_script_accepts_the_images_options(tmp_path: Path) -> None:
    """infra/install parses --no-system and --extra before the side; an unknown side still fails clearly."""
    done = subprocess.run(["bash", str(ROOT / "infra" / "install"), "--no-system", "--extra", "postgres", "nowhere"],
                          capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), "VIGIL_PYTHON": sys.executable,
                               "VIGIL_VENVS": str(tmp_path / "venvs")})
    assert done.returncode == 2, done.stderr
    assert "unknown side: nowhere" in done.stderr
    assert "apt-get" not in done.stderr  # --no-system: no system tools looked for


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule, close enough for these patterns: the last matching pattern wins; `!` re-includes."""
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        bare = pattern.lstrip("!").rstrip("/")
        parts = Path(path).parts
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        if any(fnmatch.fnmatch(prefix, bare) or fnmatch.fnmatch(prefix, bare.replace("**/", "")) for prefix in prefixes):
            result = not negate
    return result


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_every_copied_path_is_in_the_build_context(name: str) -> None:
    patterns = dockerignore_patterns()
    args = {}
    for word, rest in instructions(IMAGES[name]):
        if word == "ARG" and "=" in rest:
            key, value = rest.split("=", 1)
            args[key] = value
        if word == "COPY" and "--from=" not in rest:
            *sources, _dest = [part for part in shlex.split(rest) if not part.startswith("--")]
            for source in sources:
                source = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), source)
                assert (ROOT / source).exists(), f"{name}: COPY {source}: no such path in the repository"
                assert not ignored(source, patterns), f"{name}: COPY {source} is excluded by .dockerignore"


def test_dockerignore_keeps_secrets_and_clutter_out() -> None:
    patterns = dockerignore_patterns()
    for path in ("infra/compose/.env", "infra/kubernetes/overlays/production/secret.env", ".git", "tests/conftest.py",
                 "pipeline/__pycache__/cli.cpython-312.pyc"):
        assert ignored(path, patterns), path
    for path in ("pipeline/cli/__init__.py", "infra/install", "dags", "infra/compose/example.env",
                 "infra/kubernetes/overlays/production/secret.example.env"):
        assert not ignored(path, patterns), path


# -- the health check every image uses

@pytest.fixture()
def local_http() -> Iterator[int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            status = 200 if self.path in ("/metrics", "/healthz") else 503
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"vigil_up 1\n")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def healthcheck(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(DOCKER / "healthcheck"), *args], capture_output=True, text=True,
                          env=env, timeout=30)


def test_healthcheck_metrics_follows_the_metrics_port(local_http: int) -> None:
    assert healthcheck("metrics", env={"VIGIL_METRICS_PORT": str(local_http)}).returncode == 0
    assert healthcheck(f"http://127.0.0.1:{local_http}/healthz").returncode == 0


def test_healthcheck_fails_on_errors_and_silence(local_http: int) -> None:
    bad = healthcheck(f"http://127.0.0.1:{local_http}/broken")
    assert bad.returncode == 1 and "503" in bad.stderr
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    down = healthcheck("metrics", env={"VIGIL_METRICS_PORT": str(closed)})
    assert down.returncode == 1 and "unhealthy" in down.stderr


# -- commands and settings named by the deployment files

def cli_commands() -> set[tuple[str, ...]]:
    """Every command path of the `vigil` CLI: ("setup",), ("kibana", "import"), …"""
    import typer

    from pipeline.cli import app

    paths: set[tuple[str, ...]] = set()

    def walk(group: object, prefix: tuple[str, ...]) -> None:
        for name, command in getattr(group, "commands", {}).items():  # click (or typer's own click) groups
            paths.add(prefix + (name,))
            walk(command, prefix + (name,))

    walk(typer.main.get_command(app), ())
    assert ("setup",) in paths and ("kibana", "import") in paths
    return paths


def deployment_commands() -> dict[tuple[str, ...], set[str]]:
    """vigil command paths that the images, compose services and Kubernetes pods run → where."""
    found: dict[tuple[str, ...], set[str]] = {}

    def add(words: list[str], where: str) -> None:
        command = []
        for word in words[:2]:  # the command path: leading words, up to the first option or argument
            if not re.fullmatch(r"[a-z][a-z-]*", word):
                break
            command.append(word)
        words = command
        if words:
            found.setdefault(tuple(words), set()).add(where)

    def from_argv(argv: list[str], where: str, entry: list[str]) -> None:
        full = entry + argv
        if full[:1] == ["vigil"]:
            add(full[1:], where)
        for part in full:
            for words in vigil_commands_in_shell(part):
                add(words, where)

    entrypoints = {}
    for name, path in IMAGES.items():
        final = final_stage(path)
        entry = next((yaml.safe_load(a) for w, a in final if w == "ENTRYPOINT"), [])
        cmd = next((yaml.safe_load(a) for w, a in final if w == "CMD"), [])
        entrypoints[f"vigil-{name}"] = entry
        from_argv(cmd, f"{path.name} CMD", entry)
    for compose_file in sorted(COMPOSE.glob("compose*.yaml")):
        for service, spec in (yaml.safe_load(compose_file.read_text()).get("services") or {}).items():
            image = str(spec.get("image", "")).split(":")[0]
            command = spec.get("command")
            if isinstance(command, list):
                from_argv(command, f"{compose_file.name} {service}", entrypoints.get(image, []))
    for overlay in OVERLAYS:
        for doc in build_overlay(overlay):
            template = doc.get("spec", {}).get("template", {}).get("spec", {})
            for container in template.get("containers", []):
                image = container["image"].rsplit("/", 1)[-1].split(":")[0]
                entry = container.get("command") or entrypoints.get(f"vigil-{image}", [])
                from_argv(container.get("args", []), f"{overlay} {doc['kind']} {doc['metadata']['name']}", entry)
    return found


def test_deployment_files_run_commands():
    commands = {cmd[:1] if cmd[:1] in {("worker",), ("sink",), ("setup",), ("console",)} else cmd
                for cmd in deployment_commands()}
    for expected in [("worker",), ("sink",), ("setup",), ("kibana", "import"), ("console",)]:
        assert expected in commands, f"vigil {' '.join(expected)} is run nowhere"


def test_every_command_the_deployment_runs_exists_in_the_cli() -> None:
    known = cli_commands()
    groups = {path[:-1] for path in known if len(path) > 1}

    def exists(cmd: tuple[str, ...]) -> bool:
        # `vigil console adduser` needs the subcommand; `vigil worker extra-words` is the leaf `worker`
        return cmd in known or (cmd[:1] in known and cmd[:1] not in groups)

    missing = {cmd: where for cmd, where in deployment_commands().items() if not exists(cmd)}
    report = "; ".join(f"`vigil {' '.join(cmd)}` (run by {', '.join(sorted(where))})"
                       for cmd, where in sorted(missing.items()))
    assert not missing, f"commands the deployment files run but the CLI lacks: {report}"


NOT_SETTINGS = {
    "VIGIL_CONFIG",  # the settings loader's YAML file
}


def install_script_variables() -> set[str]:
    """VIGIL_ names infra/install itself reads (the images set them to build their environments)."""
    return set(re.findall(r"\$\{?(VIGIL_[A-Z0-9_]+)", (ROOT / "infra" / "install").read_text()))


def test_every_vigil_name_in_the_deployment_files_is_a_setting() -> None:
    fields = set(Settings.env_names())
    allowed = fields | NOT_SETTINGS | install_script_variables()
    unknown: dict[str, set[str]] = {}
    for folder in (DOCKER, COMPOSE, KUBERNETES):
        for path in folder.rglob("*"):
            if path.is_file():
                for name in re.findall(r"VIGIL_[A-Z0-9_]*[A-Z0-9]", path.read_text()):
                    if name not in allowed:
                        unknown.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    assert not unknown, "VIGIL_ names that are no setting: " + "; ".join(
        f"{name} ({', '.join(sorted(files))})" for name, files in sorted(unknown.items()))
    assert install_script_variables() == {"VIGIL_VENVS", "VIGIL_PYTHON"}
