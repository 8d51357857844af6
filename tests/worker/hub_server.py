"""A local HTTP server answering the Hugging Face hub's file API, for the real ``huggingface_hub`` client.

    GET  /api/models/{org}/{name}/revision/{rev}    model info: sha (the commit), siblings (file names)
    GET  /api/models/{org}/{name}/tree/{rev}         file listing: path, size, oid (git blob sha1), lfs (sha256)
    HEAD /{org}/{name}/resolve/{rev}/{file}          X-Repo-Commit, ETag (sha256 for LFS files), Content-Length
    GET  /{org}/{name}/resolve/{rev}/{file}          the bytes, same headers

Unknown repositories, revisions and files answer 404 with the ``X-Error-Code`` the client maps to its errors
(RepoNotFound, RevisionNotFound, EntryNotFound). ``publish`` puts a directory's files in a new commit and moves a
branch to it; every request is recorded, so a test can show that an offline run sends none.
"""
from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

LFS_SUFFIXES = (".safetensors", ".bin")


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class _Repo:
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)


class HubServer:
    """``with HubServer() as hub: hub.publish("org/name", directory)``; ``hub.url`` is the HF_ENDPOINT."""

    def __init__(self) -> None:
        self.repos: dict[str, _Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> HubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def publish(self, repo_id: str, directory: Path, *, branch: str = "main") -> str:
        """A new commit holding ``directory``'s files, ``branch`` moved to it; returns the commit hash."""
        files = {p.name: p.read_bytes() for p in sorted(Path(directory).iterdir()) if p.is_file()}
        with self._lock:
            repo = self.repos.setdefault(repo_id, _Repo())
            digest = hashlib.sha1(repo.refs.get(branch, "").encode())
            for name, data in files.items():
                digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
            commit = digest.hexdigest()
            repo.commits[commit] = files
            repo.refs[branch] = commit
        return commit

    def _resolve(self, repo_id: str, revision: str) -> tuple[str | None, str | None]:
        """(error code, commit)."""
        repo = self.repos.get(repo_id)
        if repo is None:
            return "RepoNotFound", None
        commit = repo.refs.get(revision) or (revision if revision in repo.commits else None)
        return (None, commit) if commit else ("RevisionNotFound", None)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:  # noqa: N802
                self._answer(body=False)

            def do_GET(self) -> None:  # noqa: N802
                self._answer(body=True)

            def _send(self, status: int, data: bytes = b"", headers: dict[str, str] | None = None, *,
                      body: bool = True) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def _error(self, code: str, commit: str | None = None, *, body: bool = True) -> None:
                headers = {"X-Error-Code": code, "Content-Type": "application/json"}
                if commit:
                    headers["X-Repo-Commit"] = commit
                self._send(404, json.dumps({"error": code}).encode(), headers, body=body)

            def _answer(self, *, body: bool) -> None:
                path = unquote(urlparse(self.path).path)
                with hub._lock:
                    hub.requests.append((self.command, path))
                parts = path.strip("/").split("/")
                if parts[:2] == ["api", "models"] and len(parts) == 4:
                    parts += ["revision", "main"]  # model info without a revision: the default branch
                if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] in ("revision", "tree"):
                    repo_id, kind, revision = "/".join(parts[2:4]), parts[4], "/".join(parts[5:])
                    error, commit = hub._resolve(repo_id, revision)
                    if error:
                        return self._error(error, body=body)
                    files = hub.repos[repo_id].commits[commit]
                    if kind == "revision":
                        info = {"id": repo_id, "modelId": repo_id, "sha": commit, "private": False,
                                "disabled": False, "gated": False, "tags": [], "downloads": 0, "likes": 0,
                                "siblings": [{"rfilename": name} for name in files]}
                    else:
                        info = [{"type": "file", "path": name, "size": len(data), "oid": _git_blob_sha1(data),
                                 **({"lfs": {"oid": hashlib.sha256(data).hexdigest(), "size": len(data),
                                             "pointerSize": 134}} if name.endswith(LFS_SUFFIXES) else {})}
                                for name, data in files.items()]
                    return self._send(200, json.dumps(info).encode(), {"Content-Type": "application/json"},
                                      body=body)
                if len(parts) >= 5 and parts[2] == "resolve":
                    repo_id, revision, name = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
                    error, commit = hub._resolve(repo_id, revision)
                    if error:
                        return self._error(error, body=body)
                    data = hub.repos[repo_id].commits[commit].get(name)
                    if data is None:
                        return self._error("EntryNotFound", commit, body=body)
                    etag = hashlib.sha256(data).hexdigest() if name.endswith(LFS_SUFFIXES) else _git_blob_sha1(data)
                    return self._send(200, data, {"X-Repo-Commit": commit, "ETag": f'"{etag}"',
                                                  "Accept-Ranges": "bytes",
                                                  "Content-Type": "application/octet-stream"}, body=body)
                return self._error("RepoNotFound", body=body)

        return Handler
