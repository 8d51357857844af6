"""What the deployment tests share: where the files and the validation tools are, and turning schemas into the
form kubeconform reads.

Tools come from ``infra/tools`` (cached under ~/.cache/vigil/tools); the compose-spec schema and KEDA's CRDs from
``<repo>/../shared/schemas``. A test whose tool or schema is missing skips and names what is missing and how to get
it; nothing here downloads anything.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "infra" / "docker"
COMPOSE = ROOT / "infra" / "compose"
KUBERNETES = ROOT / "infra" / "kubernetes"
OVERLAYS = sorted(p.name for p in (KUBERNETES / "overlays").iterdir() if (p / "kustomization.yaml").is_file())
DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))
SHARED_SCHEMAS = ROOT.parent / "shared" / "schemas"
TOOLS = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vigil" / "tools"
KUBERNETES_VERSION = "1.37.0"


def tool(name: str) -> str:
    """Path of a validation tool from infra/tools, or skip the test saying how to install it."""
    path = TOOLS / "bin" / name
    if path.exists() and os.access(path, os.X_OK):
        return str(path)
    found = shutil.which(name)
    if found:
        return found
    pytest.skip(f"{name} is not installed: run infra/tools (it installs into {TOOLS})")


def shared_schema(name: str) -> Path:
    path = SHARED_SCHEMAS / name
    if not path.is_file():
        pytest.skip(f"{path} is absent: the schemas are read from ../shared/schemas beside the checkout")
    return path


def load_all(path: Path) -> list[dict[str, Any]]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: the CRDs are megabytes
    return [doc for doc in yaml.load_all(path.read_text(), Loader=loader) if doc]


# -- kustomize

_RENDERED: dict[str, Path] = {}


def rendered(overlay: str) -> Path:
    """`kustomize build` of one overlay into a file, on a copy of infra/kubernetes whose secret.env is the shipped
    example (built once per test session)."""
    import tempfile

    if overlay in _RENDERED:
        return _RENDERED[overlay]
    kustomize = tool("kustomize")
    work = Path(tempfile.mkdtemp(prefix="vigil-kustomize-"))
    tree = work / "kubernetes"
    shutil.copytree(KUBERNETES, tree)
    for example in tree.glob("overlays/*/*.example.env"):
        shutil.copy(example, example.with_name(example.name.replace(".example.env", ".env")))
    done = subprocess.run([kustomize, "build", str(tree / "overlays" / overlay)], capture_output=True, text=True)
    assert done.returncode == 0, f"kustomize build {overlay} failed:\n{done.stderr}"
    out = work / f"{overlay}.yaml"
    out.write_text(done.stdout)
    _RENDERED[overlay] = out
    return out


@lru_cache(maxsize=None)
def build_overlay(overlay: str) -> tuple[dict[str, Any], ...]:
    """The resources of one rendered overlay."""
    return tuple(doc for doc in yaml.safe_load_all(rendered(overlay).read_text()) if doc)


def by_kind(docs: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc.get("kind") == kind]


def one(docs: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    found = [doc for doc in by_kind(docs, kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


# -- schemas for kubeconform

def standalone_kubernetes_schemas(out: Path, kinds: set[tuple[str, str]]) -> Path:
    """kubernetes-validate's schemas of KUBERNETES_VERSION for ``kinds`` ((apiVersion, kind) pairs), rewritten so
    kubeconform resolves their references locally: their ``$id`` points at kubernetes.io and their ``$ref``s at
    ``/api/_definitions.json`` (which only kubernetes-validate's own loader maps to the file beside them)."""
    source = TOOLS / "k8s-schemas" / f"v{KUBERNETES_VERSION}-local-strict"
    if not source.is_dir():
        pytest.skip(f"Kubernetes schemas missing ({source}): run infra/tools (PyPI kubernetes-validate)")
    target = out / f"v{KUBERNETES_VERSION}-standalone-strict"
    target.mkdir(parents=True, exist_ok=True)
    wanted = {"_definitions.json"} | {schema_name(api_version, kind) for api_version, kind in kinds}
    for schema_file in (source / name for name in wanted):
        if not schema_file.is_file():
            continue  # a custom resource: its schema comes from its CRD
        text = schema_file.read_text().replace('"$ref": "/api/_definitions.json#', '"$ref": "_definitions.json#')
        schema = json.loads(text)
        schema.pop("$id", None)
        (target / schema_file.name).write_text(json.dumps(schema))
    return out


def schema_name(api_version: str, kind: str) -> str:
    """kubeconform's ``{{ .ResourceKind }}{{ .KindSuffix }}.json``: deployment-apps-v1.json, secret-v1.json."""
    group, _, version = api_version.rpartition("/")
    return f"{kind.lower()}{'-' + group.split('.')[0] if group else ''}-{version}.json"


def _strict(node: Any) -> Any:
    """What kubeconform's openapi2jsonschema does with ``--strict``: objects with declared properties take no others
    (unless the CRD preserves unknown fields), int-or-string accepts both, nullable accepts null."""
    if isinstance(node, dict):
        node = {key: _strict(value) for key, value in node.items()}
        if node.get("x-kubernetes-int-or-string"):
            node.pop("type", None)
            node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        if node.get("nullable") and isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
        if (node.get("type") == "object" and "properties" in node and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")):
            node["additionalProperties"] = False
        return node
    if isinstance(node, list):
        return [_strict(item) for item in node]
    return node


def crd_schemas(crd_files: list[Path], out: Path) -> list[str]:
    """Write one strict JSON schema per served version of each CRD, named as kubeconform's template
    ``{{ .ResourceKind }}{{ .KindSuffix }}.json`` expects (``scaledobject-keda-v1alpha1.json``); return the kinds."""
    target = out / f"v{KUBERNETES_VERSION}-standalone-strict"
    target.mkdir(parents=True, exist_ok=True)
    kinds = []
    for crd_file in crd_files:
        for crd in load_all(crd_file):
            if crd.get("kind") != "CustomResourceDefinition":
                continue
            group = crd["spec"]["group"]
            kind = crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schema = _strict(version["schema"]["openAPIV3Schema"])
                name = schema_name(f"{group}/{version['name']}", kind)
                (target / name).write_text(json.dumps(schema))
            kinds.append(kind)
    return kinds


def kubeconform(manifests: list[Path], schema_dir: Path) -> list[dict[str, Any]]:
    """kubeconform --strict over files of manifests with local schemas only; one result per resource."""
    binary = tool("kubeconform")
    location = str(schema_dir) + "/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/" \
        "{{ .ResourceKind }}{{ .KindSuffix }}.json"
    done = subprocess.run([binary, "-strict", "-output", "json", "-verbose", "-kubernetes-version",
                           KUBERNETES_VERSION, "-schema-location", location, *map(str, manifests)],
                          capture_output=True, text=True)
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"kubeconform printed no JSON report:\n{done.stdout}\n{done.stderr}") from None
    return report["resources"]


# -- commands the deployment files run

VIGIL_COMMAND = re.compile(r"(?:^|[;&|(]\s*|\s)vigil\s+((?:[a-z][a-z-]*)(?:\s+[a-z][a-z-]*)?)")


def vigil_commands_in_shell(line: str) -> list[list[str]]:
    """``vigil setup && vigil kibana import --url …`` → [["setup"], ["kibana", "import"]] (words, no options)."""
    return [match.group(1).split() for match in VIGIL_COMMAND.finditer(line)]
