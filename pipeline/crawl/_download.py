"""Download one video with yt-dlp within the caps, verify it is a video, and put it in the media store.

Caps are checked three times: against what the platform declares (duration, size) before any byte is fetched,
while bytes arrive (a progress hook aborts past the size cap or the time limit), and on the file itself (PyAV
opens it: it must hold a video stream, within the duration and resolution caps). Transient failures (timeouts,
HTTP 5xx/429, dropped connections) are tried again with exponential backoff; refusals never are.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._exceptions import DownloadFailed, DownloadRefused
from .._media_store import MediaStore, sha256_file
from .._settings import Settings
from ._candidate import Candidate
from ._discover import format_selector
from ._safety import UrlPolicy
from ._ytdlp import GuardedYoutubeDL, transient_retrying, translate_ytdlp_error, ytdlp_options

__all__ = ["DownloadedMedia", "check_declared_caps", "download_media", "probe_media", "fetch_to_store"]

logger = logging.getLogger(__name__)

MB = 1024 * 1024
DURATION_SLACK_S = 1.0  # containers round; a 30.04 s file is not over a 30 s cap


@dataclass(frozen=True)
class DownloadedMedia:
    """A verified media file: where it is, its hash and what PyAV saw in it."""

    path: Path
    sha256: str
    bytes: int
    ext: str
    duration_s: float | None
    width: int | None
    height: int | None
    seconds: float


def _mb(n: int) -> str:
    return f"{n / MB:,.1f} MB"


def check_declared_caps(candidate: Candidate, settings: Settings) -> None:
    """Refuse before downloading when the platform declares a duration or size over the caps."""
    if candidate.duration_s is not None and candidate.duration_s > settings.max_duration_s + DURATION_SLACK_S:
        raise DownloadRefused(f"longer than {settings.max_duration_s} s cap ({candidate.duration_s:,.0f} s)",
                              url=candidate.url)
    if candidate.filesize is not None and candidate.filesize > settings.max_download_mb * MB:
        raise DownloadRefused(f"larger than {settings.max_download_mb} MB cap ({_mb(candidate.filesize)} declared)",
                              url=candidate.url)


def probe_media(path: Path, settings: Settings) -> tuple[float | None, int | None, int | None]:
    """(duration s, width, height) of a file PyAV can open with a video stream; DownloadRefused otherwise."""
    import av

    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            streams = container.streams.video
            if not streams:
                raise DownloadRefused("not a video (the file has no video stream)")
            stream = streams[0]
            duration = None
            if container.duration is not None:
                duration = container.duration / 1_000_000
            elif stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            width = stream.codec_context.width or None
            height = stream.codec_context.height or None
            # decoding one frame proves the stream is real, not a header with garbage behind it
            for _frame in container.decode(video=0):
                break
            else:
                raise DownloadRefused("not a video (no frame could be decoded)")
    except DownloadRefused:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        detail = getattr(exc, "strerror", None) or type(exc).__name__
        raise DownloadRefused(f"not a video ({str(detail).lower()})") from exc
    if duration is not None and duration > settings.max_duration_s + DURATION_SLACK_S:
        raise DownloadRefused(f"longer than {settings.max_duration_s} s cap ({duration:,.0f} s)")
    if height is not None and width is not None and min(height, width) > settings.max_height:
        raise DownloadRefused(f"resolution {width}x{height} above the {settings.max_height}p cap")
    return duration, width, height


class _Guard:
    """A yt-dlp progress hook enforcing the size cap and the time limit while bytes arrive."""

    def __init__(self, settings: Settings, url: str) -> None:
        self.cap = settings.max_download_mb * MB
        self.timeout = settings.download_timeout_s
        self.url = url
        self.started = time.monotonic()

    def __call__(self, status: dict[str, Any]) -> None:
        if status.get("status") != "downloading":
            return
        total = status.get("total_bytes") or status.get("total_bytes_estimate")
        done = status.get("downloaded_bytes") or 0
        if total and total > self.cap:
            raise DownloadRefused(f"larger than {self.cap // MB} MB cap ({_mb(int(total))})", url=self.url)
        if done > self.cap:
            raise DownloadRefused(f"larger than {self.cap // MB} MB cap (more than {_mb(int(done))} sent)",
                                  url=self.url)
        if time.monotonic() - self.started > self.timeout:
            raise DownloadFailed(f"download took longer than {self.timeout:g} s", url=self.url, transient=True)


def _download_once(candidate: Candidate, settings: Settings, policy: UrlPolicy, workdir: Path) -> Path:
    for leftover in workdir.iterdir():  # a previous try's partial file
        leftover.unlink()
    guard = _Guard(settings, candidate.url)
    options = ytdlp_options(
        settings,
        format=format_selector(settings),
        outtmpl={"default": str(workdir / "media.%(ext)s")},
        merge_output_format="mp4/mkv",
        progress_hooks=[guard],
        max_filesize=None,
        continuedl=False,
        nopart=False,
        writesubtitles=False,
        writethumbnail=False,
        overwrites=True,
    )
    ydl = GuardedYoutubeDL(options, policy=policy)
    try:
        with ydl:
            info = ydl.extract_info(candidate.url, download=True)
    except Exception as exc:  # noqa: BLE001 - translated into DownloadRefused / DownloadFailed
        raise translate_ytdlp_error(exc, url=candidate.url, refusals=ydl.refusals) from exc
    files = [Path(d["filepath"]) for d in (info or {}).get("requested_downloads") or [] if d.get("filepath")]
    files = [f for f in files if f.is_file()] or [f for f in workdir.glob("media.*") if not f.name.endswith(".part")]
    if not files:
        raise DownloadFailed("yt-dlp finished without a file", url=candidate.url)
    return files[0]


def download_media(candidate: Candidate, settings: Settings, *, policy: UrlPolicy | None = None,
                   workdir: Path | None = None) -> DownloadedMedia:
    """Download and verify one candidate into ``workdir`` (a new temporary directory when not given)."""
    check_declared_caps(candidate, settings)
    policy = policy or UrlPolicy.from_settings(settings)
    workdir = workdir or Path(tempfile.mkdtemp(prefix="vigil-dl-"))
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    retrying = transient_retrying(settings, f"download of {candidate.url}")
    path = retrying(_download_once, candidate, settings, policy, workdir)
    size = path.stat().st_size
    if size > settings.max_download_mb * MB:
        raise DownloadRefused(f"larger than {settings.max_download_mb} MB cap ({_mb(size)})", url=candidate.url)
    try:
        duration, width, height = probe_media(path, settings)
    except DownloadRefused as exc:
        exc.url = candidate.url
        raise
    return DownloadedMedia(path=path, sha256=sha256_file(path), bytes=size, ext=path.suffix.lstrip(".") or "bin",
                           duration_s=round(duration, 3) if duration is not None else None, width=width,
                           height=height, seconds=time.monotonic() - started)


def fetch_to_store(candidate: Candidate, settings: Settings, store: MediaStore, *,
                   policy: UrlPolicy | None = None) -> Candidate:
    """Download, verify and store one candidate; fill its media fields. Raises DownloadRefused / DownloadFailed."""
    workdir = Path(tempfile.mkdtemp(prefix="vigil-dl-"))
    try:
        media = download_media(candidate, settings, policy=policy, workdir=workdir)
        started = time.monotonic()
        uri = store.put(media.path, sha256=media.sha256, ext=media.ext)
        candidate.timings_ms["store"] = round((time.monotonic() - started) * 1000, 1)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    candidate.media_sha256 = media.sha256
    candidate.media_uri = uri
    candidate.media_bytes = media.bytes
    candidate.media_duration_s = media.duration_s
    candidate.media_width = media.width
    candidate.media_height = media.height
    candidate.timings_ms["download"] = round(media.seconds * 1000, 1)
    logger.info("downloaded %s: %s, %d bytes, %.1f s", candidate.video_uid, media.sha256, media.bytes, media.seconds)
    return candidate
