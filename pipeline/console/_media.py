"""Media and evidence files from the media store (a directory or any fsspec URL), streamed through the console with
HTTP range requests, so a browser's player can seek without the store being reachable from the browser.

Only files a video or detection document names are served: the video's ``media.uri`` (or the file stored under its
``media.sha256``) and the URIs in a detection's ``evidence_uris``; nothing is opened from a path the client sends.
"""
from __future__ import annotations

import mimetypes
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import fsspec
from fsspec.core import url_to_fs

from .._media_store import MediaStore

__all__ = ["MediaFile", "locate_media", "open_uri", "parse_range", "stream", "CHUNK"]

CHUNK = 256 * 1024
_RANGE = re.compile(r"^bytes=(\d{0,18})-(\d{0,18})$")  # 18 digits: no huge ints, no int() of 4,301 digits


@dataclass(frozen=True)
class MediaFile:
    """A file in a store: its filesystem, path, size and content type."""

    fs: Any
    path: str
    size: int
    content_type: str


def open_uri(uri: str) -> MediaFile | None:
    try:
        fs, path = url_to_fs(uri)
        info = fs.info(path)
    except (FileNotFoundError, OSError, ValueError):
        return None
    if info.get("type") not in (None, "file"):
        return None
    return MediaFile(fs, path, int(info.get("size") or 0),
                     mimetypes.guess_type(path)[0] or "application/octet-stream")


def locate_media(video: Mapping[str, Any], store: MediaStore) -> MediaFile | None:
    """The video's media file: its recorded URI, else the store's ``<sha[:2]>/<sha>.*`` file of its sha256."""
    media = video.get("media") or {}
    if media.get("uri"):
        found = open_uri(str(media["uri"]))
        if found:
            return found
    sha = str(media.get("sha256") or "")
    if not re.fullmatch(r"[0-9a-f]{64}", sha):
        return None
    try:
        candidates = sorted(p for p in store.fs.glob(f"{store.root}/{sha[:2]}/{sha}.*") if ".evidence" not in p)
    except OSError:
        return None
    for path in candidates:
        found = open_uri(store.fs.unstrip_protocol(path))
        if found:
            return found
    return None


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | bool:
    """(first, last) byte of a single ``bytes=`` range; None without a header; False when unsatisfiable."""
    if not header:
        return None
    if len(header) > 100:
        return False
    match = _RANGE.match(header.strip())
    if not match or (not match.group(1) and not match.group(2)):
        return False
    if match.group(1):
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) else size - 1
    else:  # the last N bytes
        first, last = max(size - int(match.group(2)), 0), size - 1
    last = min(last, size - 1)
    if first > last or first >= size:
        return False
    return first, last


def stream(media: MediaFile, first: int, last: int) -> Iterator[bytes]:
    """Bytes first..last (inclusive) of the file, in chunks."""
    with media.fs.open(media.path, "rb") as handle:
        handle.seek(first)
        left = last - first + 1
        while left > 0:
            chunk = handle.read(min(CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk


def read_small(uri: str, limit: int = 4 * 1024 * 1024) -> tuple[bytes, str] | None:
    """A small evidence file (a face crop) and its content type; None when missing or too large."""
    media = open_uri(uri)
    if media is None or media.size > limit:
        return None
    with fsspec.open(uri, "rb") as handle:
        return handle.read(limit + 1)[:limit], media.content_type
