"""Generated benchmark clips: a test pattern with a sine tone (H.264 + AAC), each file distinct."""
from __future__ import annotations

import subprocess
from pathlib import Path


def make_clips(directory: Path, n: int, *, seconds: float = 3.0, size: str = "320x240") -> list[Path]:
    """``n`` MP4 clips of ``seconds`` each under ``directory`` (reused when already there)."""
    import imageio_ffmpeg

    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        path = directory / f"bench{i:03d}-{size}-{seconds:g}s.mp4"
        if not path.exists():
            subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
                            "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25:duration={seconds}",
                            "-f", "lavfi", "-i", f"sine=frequency={200 + 13 * i}:duration={seconds}",
                            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac",
                            "-shortest", str(path)], check=True, capture_output=True)
        out.append(path)
    return out
