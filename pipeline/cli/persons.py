"""`vigil persons enroll NAME FILE|URL...`, `vigil persons list`, `vigil persons remove NAME`: the persons-of-interest
gallery in the media store (``<store>/persons/gallery.json``), read by the ``identity`` detector on every worker.

URLs are downloaded through the crawler's rules (download caps, no private addresses but the allowed networks, the
domain allowlist), exactly as `vigil submit` does, and the reference media are kept in the media store under their
hash. Worker side: enrolment decodes media and runs the face and speaker models (imported when a command runs).
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Optional
from urllib.parse import urlsplit

import typer
from rich.table import Table

__all__ = ["register", "persons_app", "fetch_references"]

persons_app = typer.Typer(name="persons", no_args_is_help=True,
                          help="Persons of interest (candidates, officials): face and voice references for `identity`.")


def _gallery_module():  # noqa: ANN202 - detectors is worker-side; say so instead of a traceback elsewhere
    from . import _shared as cli

    try:
        import detectors
    except ImportError as exc:
        cli.err_console.print(f"[red]vigil persons needs the worker environment (detectors):[/red] {exc}")
        raise typer.Exit(2) from exc
    return detectors


def fetch_references(targets: list[str], settings: object, workdir: Path) -> list[tuple[Path, str]]:
    """Local paths of the reference ``targets`` (files as they are; URLs downloaded through the crawler's rules into
    the media store, then copied to ``workdir``), each with a label naming where it came from."""
    import fsspec

    from .._exceptions import ConfigError
    from .._submit import _job_for_url

    found: list[tuple[Path, str]] = []
    for target in targets:
        path = Path(target[len("file://"):] if target.startswith("file://") else target).expanduser()
        if path.is_file():
            found.append((path, path.name))
            continue
        if urlsplit(target).scheme not in ("http", "https"):
            raise ConfigError(f"{target!r} is neither a file nor an http(s) URL")
        job = _job_for_url(target, settings, None)  # type: ignore[arg-type]
        local = workdir / Path(urlsplit(job.media_uri).path).name
        with fsspec.open(job.media_uri, "rb") as source, open(local, "wb") as copy:  # any store, local or remote
            shutil.copyfileobj(source, copy)
        found.append((local, target))
    return found


@persons_app.command("enroll")
def enroll(
    name: Annotated[str, typer.Argument(help="the person's name as analysts will see it")],
    targets: Annotated[list[str], typer.Argument(help="reference videos, photos or voice recordings: files or URLs")],
    role: Annotated[Optional[str], typer.Option("--role", help="candidate, official, journalist, other")] = None,
    notes: Annotated[Optional[str], typer.Option("--notes", help="free text kept with the person")] = None,
) -> None:
    """Enrol NAME (or add references to them) from reference media with one dominant face and/or their voice."""
    from . import _shared as cli
    from .._media_store import MediaStore

    settings = cli.settings_or_exit()
    _gallery_module()
    with cli.exit_on_error("persons enroll"):
        from detectors import FaceTracker, Gallery, get_face_embedder, get_speaker_encoder
        from detectors import enroll as enroll_person

        store = MediaStore.from_settings(settings)
        with tempfile.TemporaryDirectory(prefix="vigil-persons-") as tmp:
            files = fetch_references(list(targets), settings, Path(tmp))
            gallery = Gallery.load(store)
            report = enroll_person(name, files, gallery=gallery, tracker=FaceTracker(), faces=get_face_embedder(),
                                   speaker=get_speaker_encoder(settings.device), role=role, notes=notes,
                                   min_speech_s=settings.identity.min_speech_s, fps=settings.sample_fps,
                                   max_side=settings.sample_max_side, max_duration_s=float(settings.max_duration_s))
        uri = gallery.save(store)
    for line in report.notes:
        cli.console.print(f"  {line}")
    person = report.person
    faces = sum(r.face is not None for r in person.references)
    voices = sum(r.voice is not None for r in person.references)
    cli.console.print(f"enrolled {person.name} ({person.role}): {faces} face and {voices} voice references; "
                      f"gallery {report.gallery_version} at {uri}")


@persons_app.command("list")
def list_persons() -> None:
    """The enrolled persons with their references."""
    from . import _shared as cli
    from .._media_store import MediaStore

    settings = cli.settings_or_exit()
    Gallery = _gallery_module().Gallery  # noqa: N806
    with cli.exit_on_error("persons list"):

        gallery = Gallery.load(MediaStore.from_settings(settings))
    table = Table(title=f"vigil persons ({gallery.version})")
    for column in ("name", "role", "faces", "voices", "speech (s)", "references", "notes"):
        table.add_column(column, overflow="fold")
    for person in sorted(gallery.persons.values(), key=lambda p: p.name):
        refs = person.references
        table.add_row(person.name, person.role, str(sum(r.face is not None for r in refs)),
                      str(sum(r.voice is not None for r in refs)), f"{sum(r.speech_s for r in refs):.1f}",
                      ", ".join(f"{r.source} ({r.sha256[:12]})" for r in refs), person.notes)
    cli.console.print(table)
    if not gallery.persons:
        cli.console.print("nobody enrolled yet: vigil persons enroll NAME FILE|URL...")


@persons_app.command("remove")
def remove(name: Annotated[str, typer.Argument(help="the enrolled name")]) -> None:
    """Remove NAME and their references from the gallery."""
    from . import _shared as cli
    from .._media_store import MediaStore

    settings = cli.settings_or_exit()
    Gallery = _gallery_module().Gallery  # noqa: N806
    with cli.exit_on_error("persons remove"):
        store = MediaStore.from_settings(settings)
        gallery = Gallery.load(store)
        gallery.remove(name)
        gallery.save(store)
    cli.console.print(f"removed {name}; gallery {gallery.version}")


def register(app: typer.Typer) -> None:
    """Add `vigil persons` to the `vigil` app."""
    app.add_typer(persons_app)
