"""The media store: files addressed by their sha256, in a local directory (default) or any fsspec URL (s3://…).

A file lives at ``<store>/<sha[:2]>/<sha>.<ext>``; jobs carry its URI (``file:///…`` for a local store, the
store's own scheme otherwise), and a worker opens it with `open_media` or plain ``fsspec.open``. Writing is
idempotent: a file already stored under its hash is not written again. No Airflow, torch or yt-dlp here.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import uuid
from pathlib import Path
from typing import IO, Any

import fsspec
from fsspec.core import url_to_fs

from ._exceptions import ServiceUnavailable
from ._settings import Settings

__all__ = ["MediaStore", "sha256_file", "open_media"]

logger = logging.getLogger(__name__)

CHUNK = 1024 * 1024
_SHA = re.compile(r"^[0-9a-f]{64}$")
_EXT = re.compile(r"^[a-z0-9]{1,8}$")


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a local file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def open_media(uri: str, mode: str = "rb", **storage_options: Any) -> IO[bytes]:
    """Open a media URI from a job (any fsspec URL); use as a context manager."""
    return fsspec.open(uri, mode, **storage_options).open()


class MediaStore:
    """Content-addressed files under one fsspec location."""

    def __init__(self, location: str, **storage_options: Any) -> None:
        self.location = location
        self.fs, root = url_to_fs(location, **storage_options)
        self.root = root.rstrip("/")

    @classmethod
    def from_settings(cls, settings: Settings) -> MediaStore:
        return cls(settings.media_store)

    def __repr__(self) -> str:
        return f"MediaStore({self.location!r})"

    @staticmethod
    def relative_path(sha256: str, ext: str) -> str:
        """``<sha[:2]>/<sha>.<ext>``"""
        sha256, ext = sha256.lower(), ext.lower().lstrip(".")
        if not _SHA.match(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        if not _EXT.match(ext):
            raise ValueError(f"not a file extension: {ext!r}")
        return f"{sha256[:2]}/{sha256}.{ext}"

    def path(self, sha256: str, ext: str) -> str:
        """The store's own path of a file (what ``self.fs`` understands)."""
        return f"{self.root}/{self.relative_path(sha256, ext)}"

    def uri(self, sha256: str, ext: str) -> str:
        """The URI a job carries: ``file:///…`` locally, ``s3://bucket/…`` and the like otherwise."""
        return self.fs.unstrip_protocol(self.path(sha256, ext))

    def evidence_path(self, sha256: str, suite_version: str, name: str = "") -> str:
        """Where evidence of one (media, suite) lives, beside the media: ``<sha[:2]>/<sha>.evidence/<suite>/<name>``
        (the suite version made safe for a path)."""
        sha256 = sha256.lower()
        if not _SHA.match(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        suite = re.sub(r"[^A-Za-z0-9._-]+", "_", suite_version)
        base = f"{self.root}/{sha256[:2]}/{sha256}.evidence/{suite}"
        return f"{base}/{name}" if name else base

    def exists(self, sha256: str, ext: str) -> bool:
        return bool(self.fs.exists(self.path(sha256, ext)))

    def put(self, local_file: str | Path, *, sha256: str | None = None, ext: str | None = None,
            mode: int | None = None) -> str:
        """Store a local file under its hash (computed when not given) and return its URI. Idempotent. ``mode``:
        the stored file's permissions on a local store (e.g. 0o640: not readable by every account)."""
        local_file = Path(local_file)
        sha256 = sha256 or sha256_file(local_file)
        suffix = local_file.suffix.lower().lstrip(".")
        ext = ext or (suffix if _EXT.match(suffix) else "bin")  # no suffix, or none a store name can carry
        target = self.path(sha256, ext)
        try:
            if self.fs.exists(target):
                logger.debug("media %s already stored", sha256)
                return self.uri(sha256, ext)
            parent = target.rsplit("/", 1)[0]
            self.fs.makedirs(parent, exist_ok=True)
            partial = f"{parent}/.{sha256}.{uuid.uuid4().hex[:8]}.partial"
            self.fs.put_file(str(local_file), partial)
            if mode is not None and "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple)
                                               else (self.fs.protocol,)):
                os.chmod(partial, mode)
            self.fs.mv(partial, target)  # a reader never sees half a file under the final name
        except OSError as exc:
            raise ServiceUnavailable(f"cannot write to the media store {self.location}: {exc}",
                                     service="media-store", hint="check VIGIL_MEDIA_STORE and its permissions") from exc
        logger.info("stored %s (%d bytes) at %s", sha256, local_file.stat().st_size, target)
        return self.uri(sha256, ext)
