"""A small local video "platform" for crawl and spread tests: an RSS feed of trending videos, one page per video
with JSON-LD ``VideoObject`` metadata (or beside a ``<video>`` tag, or OpenGraph tags only; ``FakeVideo.layout``),
pages with several videos (``multi_pages``), a page per channel listing its newest videos as a schema.org
``ItemList`` with their counters (``/channel/<name>``, as video hubs and channel tabs show them), and real MP4 files
made with imageio-ffmpeg's ffmpeg.

Everything is served from 127.0.0.1 by the standard library's HTTP server in a thread. Counters are plain
attributes of `FakeVideo`, so a test can change them between polls (``platform.videos["v1"].views = 5000``);
``None`` leaves the counter out of the page, as platforms do when they withhold it.

    media = MediaFactory(tmp_dir)
    with FakePlatform() as platform:
        platform.add(FakeVideo("v1", "Senator accused of election fraud", media=media.clip(seconds=2)))
        platform.feed_url  # http://127.0.0.1:PORT/feed.xml
"""
from __future__ import annotations

import html
import json
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = ["FakeVideo", "FakePlatform", "MediaFactory"]


@dataclass
class FakeVideo:
    """One video on the fake platform. Change counters between polls; ``None`` means the page withholds it."""

    video_id: str
    title: str
    description: str = ""
    media: Path | None = None
    author: str = "Channel One"
    author_url: str | None = None
    uploaded: datetime = field(default_factory=lambda: datetime.now(UTC) - timedelta(hours=2))
    views: int | None = 1000
    likes: int | None = 100
    comments: int | None = 10
    duration_s: float | None = None  # declared in JSON-LD when set
    page_status: int = 200  # 404: the page is gone
    content_url: str | None = None  # overrides the media URL in JSON-LD (e.g. a private address)
    in_feed: bool = True
    media_failures: int = 0  # the first N media requests answer 503 (a transient failure)
    # how the page carries the video: "jsonld" (JSON-LD only), "video-tag" (JSON-LD beside a <video> tag, as most
    # news sites), "opengraph" (OpenGraph video tags and a <video> tag, no JSON-LD)
    layout: str = "jsonld"
    # how JSON-LD writes counters, in the forms schema.org allows: "url" (interactionType as a schema.org URL),
    # "type" (interactionType as {"@type": "WatchAction"}), "text" ("1,234" strings), "legacy" (interactionCount)
    counters_form: str = "url"


class MediaFactory:
    """Makes short real H.264 + AAC clips with imageio-ffmpeg's ffmpeg, cached by their parameters."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def clip(self, seconds: float = 1.0, *, size: str = "160x120", noise: bool = False, rate: int = 10) -> Path:
        """A clip of ``seconds`` (testsrc + a sine tone); ``noise`` makes it large (hard to compress)."""
        import imageio_ffmpeg

        name = f"clip-{seconds:g}s-{size}-{'noise' if noise else 'plain'}-{rate}.mp4"
        out = self.directory / name
        if out.exists():
            return out
        video = f"testsrc=size={size}:rate={rate}"
        vf = ["-vf", "noise=alls=100:allf=t"] if noise else []
        quality = ["-crf", "0"] if noise else ["-crf", "30"]
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
               "-f", "lavfi", "-i", video, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000",
               "-t", f"{seconds:g}", *vf, "-c:v", "libx264", "-preset", "ultrafast", *quality, "-pix_fmt", "yuv420p",
               "-c:a", "aac", "-b:a", "32k", "-shortest", "-movflags", "+faststart", str(out)]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
        return out

    def not_a_video(self) -> Path:
        """A file named like a video that is not one."""
        out = self.directory / "not-a-video.mp4"
        out.write_bytes(b"<html><body>this is not a video</body></html>\n" * 50)
        return out


class FakePlatform:
    """The HTTP server; use as a context manager or call `start` / `stop`."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.videos: dict[str, FakeVideo] = {}
        self.requests: list[str] = []  # paths of GET requests, in order (HEADs are not counted)
        self.redirects: dict[str, str] = {}  # path -> Location
        self.extra_feed_links: list[str] = []  # feed items pointing anywhere (hostile URLs, other hosts)
        self.multi_pages: dict[str, list[str]] = {}  # page id -> ids of the videos on it (/watch/<page id>)
        self.listing_size = 30  # videos a channel page lists, newest first
        self.listing_counters = True  # whether channel pages show each listed video's counters
        self.feed_statistics = False  # Media RSS <media:statistics views> per feed item, as YouTube's feeds
        # a real platform's rate limit: page requests closer together than this answer 429 (0: no limit)
        self.page_interval_s = 0.0
        self.throttled = 0  # pages answered 429
        self._last_page = 0.0
        self._page_lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle
    def start(self) -> FakePlatform:
        platform = self

        class Handler(_Handler):
            owner = platform

        self._server = _QuietServer((self.host, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-platform", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakePlatform:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- content
    def add(self, video: FakeVideo) -> FakeVideo:
        self.videos[video.video_id] = video
        return video

    @property
    def port(self) -> int:
        assert self._server is not None, "start the platform first"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def feed_url(self) -> str:
        return f"{self.base_url}/feed.xml"

    def page_url(self, video_id: str) -> str:
        return f"{self.base_url}/watch/{video_id}"

    def media_url(self, video_id: str) -> str:
        return f"{self.base_url}/media/{video_id}.mp4"

    def page_requests(self, video_id: str) -> int:
        return sum(1 for p in self.requests if p == f"/watch/{video_id}")

    def channel_url(self, author: str) -> str:
        return f"{self.base_url}/channel/{author.replace(' ', '-')}"

    def channel_requests(self, author: str) -> int:
        return sum(1 for p in self.requests if p == f"/channel/{author.replace(' ', '-')}")

    def listing_requests(self) -> int:
        return sum(1 for p in self.requests if p.startswith("/channel/"))

    def media_requests(self, video_id: str) -> int:
        return sum(1 for p in self.requests if p == f"/media/{video_id}.mp4")

    # -- rendering
    def render_feed(self) -> bytes:
        items = []
        for video in self.videos.values():
            if not video.in_feed:
                continue
            items.append(
                "<item>"
                f"<title>{html.escape(_xml_text(video.title))}</title>"
                f"<link>{html.escape(self.page_url(video.video_id))}</link>"
                f"<guid>{html.escape(self.page_url(video.video_id))}</guid>"
                f"<description>{html.escape(_xml_text(video.description))}</description>"
                f"<pubDate>{video.uploaded.strftime('%a, %d %b %Y %H:%M:%S +0000')}</pubDate>"
                + (f'<media:community><media:statistics views="{video.views}"/></media:community>'
                   if self.feed_statistics and video.views is not None else "")
                + "</item>")
        for page_id in self.multi_pages:
            items.append(f"<item><title>Page {html.escape(page_id)}</title>"
                         f"<link>{html.escape(self.page_url(page_id))}</link></item>")
        for n, link in enumerate(self.extra_feed_links):
            items.append(f"<item><title>Extra item {n}</title><link>{html.escape(link)}</link></item>")
        return ('<?xml version="1.0" encoding="UTF-8"?>'
                '<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel><title>Trending</title>'
                f"<link>{self.base_url}/</link><description>What is trending</description>"
                + "".join(items) + "</channel></rss>").encode()

    def video_object(self, video: FakeVideo) -> dict[str, Any]:
        """The schema.org VideoObject of one video, its counters in ``video.counters_form``."""
        counters: list[dict[str, Any]] = []
        data: dict[str, Any] = {
            "@context": "https://schema.org",
            "@type": "VideoObject",
            "name": video.title,
            "description": video.description,
            "uploadDate": video.uploaded.isoformat(),
            "thumbnailUrl": f"{self.base_url}/thumb/{video.video_id}.jpg",
            "contentUrl": video.content_url or self.media_url(video.video_id),
            "author": {"@type": "Person", "name": video.author,
                       "url": video.author_url or self.channel_url(video.author)},
        }
        for kind, value in (("WatchAction", video.views), ("LikeAction", video.likes),
                            ("CommentAction", video.comments)):
            if value is None:
                continue
            if video.counters_form == "legacy":
                if kind == "WatchAction":
                    data["interactionCount"] = f"UserPlays:{value}"
                continue
            action: Any = {"@type": kind} if video.counters_form == "type" else f"https://schema.org/{kind}"
            count: Any = f"{value:,}" if video.counters_form == "text" else value
            counters.append({"@type": "InteractionCounter", "interactionType": action, "userInteractionCount": count})
        if counters:
            data["interactionStatistic"] = counters
        if video.duration_s is not None:
            data["duration"] = f"PT{int(video.duration_s)}S"
        return data

    def _video_tag(self, video: FakeVideo) -> str:
        src = html.escape(video.content_url or self.media_url(video.video_id))
        return f'<video controls preload="none"><source src="{src}" type="video/mp4"></video>'

    def render_page(self, video: FakeVideo) -> bytes:
        head = f"<title>{html.escape(video.title)} | Fake Platform</title>"
        body = f"<h1>{html.escape(video.title)}</h1><p>{html.escape(video.description)}</p>"
        if video.layout == "opengraph":
            media = html.escape(video.content_url or self.media_url(video.video_id))
            meta = {"og:type": "video.other", "og:title": video.title, "og:description": video.description,
                    "og:site_name": "Fake Platform", "og:video": media, "og:video:type": "video/mp4",
                    "video:release_date": video.uploaded.isoformat()}
            head += "".join(f'<meta property="{k}" content="{html.escape(v)}">' for k, v in meta.items())
            body += self._video_tag(video)
        else:
            head += f'<script type="application/ld+json">{json.dumps(self.video_object(video))}</script>'
            if video.layout == "video-tag":
                body += self._video_tag(video)
        return f"<!DOCTYPE html><html><head>{head}</head><body>{body}</body></html>".encode()

    def render_multi_page(self, page_id: str) -> bytes:
        """A news page with several videos: one JSON-LD VideoObject and one <video> tag each."""
        videos = [self.videos[v] for v in self.multi_pages[page_id]]
        graph = {"@context": "https://schema.org",
                 "@graph": [{k: v for k, v in self.video_object(v).items() if k != "@context"} for v in videos]}
        body = "".join(f"<h2>{html.escape(v.title)}</h2>{self._video_tag(v)}" for v in videos)
        return (f"<!DOCTYPE html><html><head><title>Page {html.escape(page_id)} | Fake Platform</title>"
                f'<script type="application/ld+json">{json.dumps(graph)}</script></head>'
                f"<body>{body}</body></html>").encode()


    def render_channel(self, slug: str) -> bytes | None:
        """A channel's page: its newest ``listing_size`` videos as an ItemList of VideoObjects, each with its page
        ``url`` (and its counters when ``listing_counters``); None when no video is the channel's."""
        videos = sorted((v for v in self.videos.values() if v.author.replace(" ", "-") == slug and
                         v.page_status == 200), key=lambda v: v.uploaded, reverse=True)[: self.listing_size]
        if not videos:
            return None
        items = []
        for n, video in enumerate(videos, 1):
            node = {k: v for k, v in self.video_object(video).items() if k != "@context"}
            node["url"] = self.page_url(video.video_id)
            if not self.listing_counters:
                node.pop("interactionStatistic", None)
                node.pop("interactionCount", None)
            items.append({"@type": "ListItem", "position": n, "item": node})
        data = {"@context": "https://schema.org", "@type": "ItemList", "itemListElement": items}
        links = "".join(f'<li><a href="{html.escape(self.page_url(v.video_id))}">{html.escape(v.title)}</a></li>'
                        for v in videos)
        return (f"<!DOCTYPE html><html><head><title>{html.escape(slug)} | Fake Platform</title>"
                f'<script type="application/ld+json">{json.dumps(data)}</script></head>'
                f"<body><ul>{links}</ul></body></html>").encode()


def _xml_text(text: str) -> str:
    """Text XML 1.0 can carry (a feed cannot hold control characters; the video page's JSON-LD can)."""
    return "".join(c for c in text if c in "\t\n\r" or ord(c) >= 0x20)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up mid-response (a refused download) are normal here."""


class _Handler(BaseHTTPRequestHandler):
    owner: FakePlatform
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet in tests
        return

    def _send(self, status: int, body: bytes, content_type: str, head_only: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head_only:
            self.wfile.write(body)

    def do_HEAD(self) -> None:  # noqa: N802
        self._route(head_only=True)

    def do_GET(self) -> None:  # noqa: N802
        self._route(head_only=False)

    def _route(self, head_only: bool) -> None:
        path = urlsplit(self.path).path
        if not head_only:
            self.owner.requests.append(path)
        if path in self.owner.redirects:
            self.send_response(HTTPStatus.FOUND)
            self.send_header("Location", self.owner.redirects[path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if path == "/feed.xml":
            return self._send(200, self.owner.render_feed(), "application/rss+xml", head_only)
        if path.startswith(("/watch/", "/channel/")) and not head_only and self.owner.page_interval_s > 0:
            with self.owner._page_lock:
                now = time.monotonic()
                early = now - self.owner._last_page < self.owner.page_interval_s
                if early:
                    self.owner.throttled += 1
                else:
                    self.owner._last_page = now
            if early:
                return self._send(429, b"slow down", "text/plain", head_only)
        if path.startswith("/watch/") and path.removeprefix("/watch/") in self.owner.multi_pages:
            page = self.owner.render_multi_page(path.removeprefix("/watch/"))
            return self._send(200, page, "text/html; charset=utf-8", head_only)
        if path.startswith("/watch/"):
            video = self.owner.videos.get(path.removeprefix("/watch/"))
            if video is None or video.page_status != 200:
                status = video.page_status if video else 404
                return self._send(status, b"<html><body>not found</body></html>", "text/html", head_only)
            return self._send(200, self.owner.render_page(video), "text/html; charset=utf-8", head_only)
        if path.startswith("/channel/"):
            page = self.owner.render_channel(path.removeprefix("/channel/"))
            if page is None:
                return self._send(404, b"<html><body>no such channel</body></html>", "text/html", head_only)
            return self._send(200, page, "text/html; charset=utf-8", head_only)
        if path.startswith("/media/") and path.endswith(".mp4"):
            video = self.owner.videos.get(path.removeprefix("/media/").removesuffix(".mp4"))
            if video is None or video.media is None:
                return self._send(404, b"not found", "text/plain", head_only)
            if video.media_failures > 0 and not head_only:
                video.media_failures -= 1
                return self._send(503, b"try again later", "text/plain", head_only)
            return self._send(200, video.media.read_bytes(), "video/mp4", head_only)
        return self._send(404, b"not found", "text/plain", head_only)
