"""Checkpoints as files on this machine: resolve a configured checkpoint to a directory and an identity.

    hub id "org/name" + revision ──▶ model_info (commit, file list) ──▶ snapshot_download(commit, only what loads)
                                      │ offline (HF_HUB_OFFLINE=1): the hub cache only, refs/<revision> → commit
                                      ▼
    Checkpoint(path=<cache>/models--org--name/snapshots/<commit>, commit, identity "org/name@<commit>")

    local directory (save_pretrained) ──▶ Checkpoint(path, identity "local:sha256-<hash of its config and weights>")

The identity names exactly the bytes a detector runs, so it goes into the detector's version (and with it into the
suite version and the detection id): the same checkpoint at the same commit gives the same id on every machine, and
a push to ``main`` of an unpinned checkpoint gives new ids instead of overwriting the old documents.

Only the files that loading needs are fetched: ``config.json``, ``preprocessor_config.json`` and the weights,
safetensors where the checkpoint has them (pickled ``pytorch_model.bin`` only where it has nothing else). Checkpoints
whose config asks for custom code (``auto_map``: ``trust_remote_code``) are refused: Vigil never runs code from a
model repository.

The hub cache is ``HF_HUB_CACHE`` or ``$HF_HOME/hub`` (default ``~/.cache/huggingface/hub``), read when called, and
the endpoint ``HF_ENDPOINT`` likewise, so a process can be pointed elsewhere after import (tests, ``--to DIR``).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pipeline.contracts import sha256_file

from ._exceptions import ModelError

__all__ = ["Checkpoint", "resolve_checkpoint", "looks_local", "hub_cache_dir", "hub_endpoint", "is_offline",
           "export_checkpoints", "MANIFEST", "directory_hash", "is_commit"]

logger = logging.getLogger(__name__)

_TRUE = {"1", "true", "yes", "on"}
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
CONFIG_FILES = ("config.json", "preprocessor_config.json")
SAFETENSORS = ("*.safetensors", "*.safetensors.index.json")
PICKLE = ("pytorch_model*.bin", "pytorch_model.bin.index.json")
#: the file ``export_checkpoints`` writes beside the exported cache
MANIFEST = "vigil-models.json"


def is_offline() -> bool:
    """True when the hub must not be contacted (``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` set)."""
    return any(os.environ.get(name, "").strip().lower() in _TRUE for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def is_commit(revision: str | None) -> bool:
    """A full 40-hex commit hash: a pinned revision."""
    return bool(revision and _COMMIT.match(revision))


def hub_cache_dir() -> Path:
    """The hub cache this process uses now: ``HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def hub_endpoint() -> str | None:
    """``HF_ENDPOINT`` when set (a mirror, or a local server in the tests); None = the public hub."""
    return os.environ.get("HF_ENDPOINT", "").strip().rstrip("/") or None


def looks_local(name: str) -> bool:
    """A hub id is ``name`` or ``org/name``; anything that exists or reads like a path is a local directory."""
    return Path(name).expanduser().exists() or name.startswith((".", "/", "~")) or name.count("/") > 1


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint resolved to a directory on this machine."""

    name: str  # as configured: hub id or local directory
    source: Literal["hub", "local"]
    path: Path  # the directory holding config.json and the weights
    revision: str | None = None  # as configured (hub)
    commit: str | None = None  # the commit the files belong to (hub)
    content_hash: str | None = None  # sha256 of the config and weight files (local)
    files: tuple[str, ...] = field(default_factory=tuple)

    @property
    def identity(self) -> str:
        """``org/name@<commit>`` or ``local:sha256-<first 16 hex of the content hash>``: no path, no host."""
        if self.source == "hub":
            return f"{self.name}@{self.commit}"
        return f"local:sha256-{(self.content_hash or '')[:16]}"

    @property
    def safetensors(self) -> bool:
        return any(f.endswith(".safetensors") for f in self.files)

    @property
    def size_bytes(self) -> int:
        return sum((self.path / f).stat().st_size for f in self.files if (self.path / f).is_file())

    @property
    def pinned(self) -> bool:
        return self.source == "local" or is_commit(self.revision)

    def config(self) -> dict[str, Any]:
        return json.loads((self.path / "config.json").read_text(encoding="utf-8"))


def _loadable(files: Iterable[str]) -> list[str]:
    """The files of a checkpoint that loading reads: configs and one kind of weights (safetensors preferred)."""
    files = sorted(set(files))
    from fnmatch import fnmatch

    def matching(patterns: Sequence[str]) -> list[str]:
        return [f for f in files if "/" not in f and any(fnmatch(f, p) for p in patterns)]

    weights = matching(SAFETENSORS) or matching(PICKLE)
    return [f for f in files if f in CONFIG_FILES] + weights


def directory_hash(path: Path, files: Sequence[str]) -> str:
    """sha256 over the names and bytes of ``files`` (sorted): the same content gives the same hash anywhere."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0")
        with open(path / name, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def _check_config(checkpoint: Checkpoint, setting: str) -> Checkpoint:
    if "config.json" not in checkpoint.files:
        raise ModelError(f"{setting}={checkpoint.name!r}: no config.json (save it with save_pretrained)")
    if not any(f.endswith((".safetensors", ".bin")) for f in checkpoint.files):
        raise ModelError(f"{setting}={checkpoint.name!r}: no weights (model.safetensors or pytorch_model.bin)")
    try:
        config = checkpoint.config()
    except (OSError, ValueError) as exc:
        raise ModelError(f"{setting}={checkpoint.name!r}: config.json cannot be read: {exc}") from exc
    if config.get("auto_map"):
        raise ModelError(f"{setting}={checkpoint.name!r} needs custom code from its repository (auto_map: "
                         f"{sorted(config['auto_map'])}); Vigil never sets trust_remote_code: choose a checkpoint of "
                         "a transformers architecture (docs/operators/models.md)")
    return checkpoint


def _local(name: str, setting: str) -> Checkpoint:
    path = Path(name).expanduser()
    if not path.is_dir():
        raise ModelError(f"{setting}={name!r}: no such directory")
    if not (path / "config.json").is_file():
        raise ModelError(f"{setting}={name!r}: the directory holds no config.json (save it with save_pretrained)")
    files = tuple(_loadable(p.name for p in path.iterdir() if p.is_file()))
    checkpoint = Checkpoint(name=str(path), source="local", path=path, files=files)
    checkpoint = _check_config(checkpoint, setting)
    return Checkpoint(name=str(path), source="local", path=path, files=files,
                      content_hash=directory_hash(path, files))


def resolve_checkpoint(name: str | os.PathLike[str] | None, *, revision: str | None = None, setting: str,
                       revision_setting: str | None = None, cache_dir: str | os.PathLike[str] | None = None,
                       offline: bool | None = None, download: bool = True) -> Checkpoint:
    """The checkpoint ``name`` (hub id or local directory) as files here, fetching what is missing unless offline
    or ``download`` is False; ModelError naming ``setting`` (and ``revision_setting``) otherwise."""
    if name is None or not str(name).strip():
        raise ModelError(f"no checkpoint configured: set {setting} to a Hugging Face hub id or a local directory "
                         "saved with save_pretrained (docs/operators/models.md lists candidates)")
    name = str(name).strip()
    if looks_local(name):
        return _local(name, setting)
    revision = (revision or "").strip() or None
    offline = is_offline() if offline is None else offline
    cache = Path(cache_dir).expanduser() if cache_dir is not None else hub_cache_dir()
    where = f"{setting}={name!r}" + (f" at {revision_setting or 'revision'}={revision!r}" if revision else "")
    if offline or not download:
        return _check_config(_from_cache(name, revision, cache, where, offline=offline), setting)
    return _check_config(_fetch(name, revision, cache, where), setting)


def _from_cache(repo_id: str, revision: str | None, cache: Path, where: str, *, offline: bool) -> Checkpoint:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        path = Path(snapshot_download(repo_id, revision=revision or "main", cache_dir=str(cache),
                                      local_files_only=True))
    except (LocalEntryNotFoundError, OSError) as exc:
        why = "HF_HUB_OFFLINE is set and it is not" if offline else "it is not"
        raise ModelError(f"{where}: {why} in the local hub cache {cache}: run `vigil models pull` on a machine "
                         "with access to the hub (or mount an export: docs/operators/models.md)") from exc
    files = tuple(_loadable(p.name for p in path.iterdir() if p.is_file()))
    return Checkpoint(name=repo_id, source="hub", path=path, revision=revision, commit=path.name, files=files)


def _fetch(repo_id: str, revision: str | None, cache: Path, where: str) -> Checkpoint:
    import httpx2
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    endpoint = hub_endpoint()
    try:
        info = HfApi(endpoint=endpoint).model_info(repo_id, revision=revision or "main")
        commit = str(info.sha)
        wanted = _loadable(s.rfilename for s in (info.siblings or []))
        path = Path(snapshot_download(repo_id, revision=commit, cache_dir=str(cache), allow_patterns=wanted,
                                      endpoint=endpoint))
    except GatedRepoError as exc:
        raise ModelError(f"{where}: the repository is gated; accept its terms and set HF_TOKEN") from exc
    except RepositoryNotFoundError as exc:
        raise ModelError(f"{where}: no such repository on {endpoint or 'the hub'}") from exc
    except RevisionNotFoundError as exc:
        raise ModelError(f"{where}: no such revision in the repository") from exc
    except (HfHubHTTPError, httpx2.TransportError, OSError) as exc:
        logger.warning("%s: the hub cannot be reached (%s); trying the local cache", where, exc)
        return _from_cache(repo_id, revision, cache, where, offline=False)
    if not is_commit(revision or "main"):
        _write_ref(cache, repo_id, revision or "main", commit)  # so an offline start finds the same commit
    files = tuple(f for f in wanted if (path / f).is_file())
    return Checkpoint(name=repo_id, source="hub", path=path, revision=revision, commit=commit, files=files)


def _repo_folder(repo_id: str) -> str:
    return "models--" + repo_id.replace("/", "--")


def _write_ref(cache: Path, repo_id: str, revision: str, commit: str) -> None:
    """refs/<revision> → commit, as huggingface_hub writes it, so an offline start resolves the same branch/tag."""
    ref = cache / _repo_folder(repo_id) / "refs" / revision
    ref.parent.mkdir(parents=True, exist_ok=True)
    if not ref.is_file() or ref.read_text().strip() != commit:
        ref.write_text(commit)


def export_checkpoints(checkpoints: Sequence[tuple[str, Checkpoint]], dest: str | os.PathLike[str]) -> Path:
    """Copy resolved checkpoints into ``dest`` for a node without network: hub checkpoints in the hub cache layout
    (``dest/models--org--name/{snapshots/<commit>,refs/<revision>}``, plain files, no links), so the node keeps the
    same hub ids, revisions and identities with ``HF_HUB_CACHE=dest HF_HUB_OFFLINE=1``; local directories under
    ``dest/local/<hash>/``. Writes ``dest/vigil-models.json`` (detector, checkpoint, revision, commit, files with
    sha256) and returns its path."""
    root = Path(dest).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    entries = []
    for detector, checkpoint in checkpoints:
        if checkpoint.source == "hub":
            target = root / _repo_folder(checkpoint.name) / "snapshots" / str(checkpoint.commit)
            _write_ref(root, checkpoint.name, checkpoint.revision or "main", str(checkpoint.commit))
        else:
            target = root / "local" / (checkpoint.content_hash or "")[:16]
        target.mkdir(parents=True, exist_ok=True)
        files = {}
        for name in checkpoint.files:
            shutil.copyfile(checkpoint.path / name, target / name)  # follows the cache's links: real files
            files[name] = sha256_file(target / name)
        entries.append({"detector": detector, "checkpoint": checkpoint.name, "source": checkpoint.source,
                        "revision": checkpoint.revision, "commit": checkpoint.commit,
                        "identity": checkpoint.identity, "path": str(target.relative_to(root)), "files": files})
    manifest = root / MANIFEST
    manifest.write_text(json.dumps({"schema": "vigil.models/1", "checkpoints": entries}, indent=2) + "\n")
    return manifest
