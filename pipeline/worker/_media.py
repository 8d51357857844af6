"""Fetch a job's media by URI (local path, file://, or any fsspec URL such as s3://) and verify its sha256.

Local files are read in place; remote ones are copied into a scratch directory while they are hashed, and removed
when the caller is done. Transient store failures are retried with exponential backoff (tenacity); a missing file,
a checksum mismatch or a file over the size cap is poison.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlparse

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from ._exceptions import ChecksumMismatch, MediaMissing, MediaOverCap, MediaUnavailable
from .._media_store import sha256_file

__all__ = ["fetch_media", "local_path", "sha256_file", "CHUNK"]

logger = logging.getLogger(__name__)

CHUNK = 1 << 20


def local_path(uri: str) -> Path | None:
    """The filesystem path of a local URI (a plain path or file://), else None."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        return Path(uri)
    return None


def _check_local(path: Path, expected_sha256: str, max_bytes: int) -> None:
    try:
        size = path.stat().st_size
    except FileNotFoundError as exc:
        raise MediaMissing(f"media not found: {path}") from exc
    except PermissionError as exc:
        raise MediaUnavailable(f"media store refused access to {path}: {exc}") from exc
    if size > max_bytes:
        raise MediaOverCap(f"{path} is {size} bytes, over the cap of {max_bytes}")
    actual = sha256_file(path)
    if actual != expected_sha256:
        raise ChecksumMismatch(f"sha256 of {path} is {actual}, the job says {expected_sha256}")


def _download(uri: str, expected_sha256: str, max_bytes: int, scratch: Path) -> Path:
    import fsspec

    digest = hashlib.sha256()
    size = 0
    suffix = Path(urlparse(uri).path).suffix[:16]
    fd, name = tempfile.mkstemp(prefix="vigil-media-", suffix=suffix, dir=scratch)
    target = Path(name)
    try:
        with os.fdopen(fd, "wb") as out, fsspec.open(uri, "rb") as src:
            while chunk := src.read(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise MediaOverCap(f"{uri} is over the cap of {max_bytes} bytes")
                digest.update(chunk)
                out.write(chunk)
    except FileNotFoundError as exc:
        target.unlink(missing_ok=True)
        raise MediaMissing(f"media not found: {uri}") from exc
    except (MediaOverCap, MediaMissing):
        target.unlink(missing_ok=True)
        raise
    except (OSError, TimeoutError, ConnectionError) as exc:
        target.unlink(missing_ok=True)
        raise MediaUnavailable(f"media store failed reading {uri}: {exc}") from exc
    except Exception:
        target.unlink(missing_ok=True)
        raise
    if digest.hexdigest() != expected_sha256:
        target.unlink(missing_ok=True)
        raise ChecksumMismatch(f"sha256 of {uri} is {digest.hexdigest()}, the job says {expected_sha256}")
    return target


@contextmanager
def fetch_media(uri: str, expected_sha256: str, *, max_bytes: int, scratch: str | os.PathLike[str] | None = None,
                attempts: int = 5, backoff_s: float = 0.5, backoff_max_s: float = 30.0) -> Iterator[Path]:
    """Yield a local path holding the verified media; a remote copy is removed on exit.

    Raises MediaMissing, ChecksumMismatch, MediaOverCap (poison) or, after ``attempts`` tries, MediaUnavailable.
    """
    retrying = Retrying(stop=stop_after_attempt(attempts), reraise=True,
                        wait=wait_exponential(multiplier=backoff_s, max=backoff_max_s),
                        retry=retry_if_exception_type(MediaUnavailable),
                        before_sleep=lambda state: logger.warning(
                            "media store: try %d for %s failed (%s); retrying", state.attempt_number, uri,
                            state.outcome.exception() if state.outcome else "?"))
    path = local_path(uri)
    if path is not None:
        retrying(_check_local, path, expected_sha256, max_bytes)
        yield path
        return
    scratch_dir = Path(scratch or tempfile.gettempdir())
    scratch_dir.mkdir(parents=True, exist_ok=True)
    copy = retrying(_download, uri, expected_sha256, max_bytes, scratch_dir)
    try:
        yield copy
    finally:
        copy.unlink(missing_ok=True)
