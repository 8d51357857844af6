"""Packages whose public names load on first use (PEP 562): ``pipeline`` and ``detectors`` use it, so importing the
package costs nothing until a name is asked for (the Airflow side imports ``pipeline`` in every process, and
``detectors.configs`` through ``Settings``, without loading Kafka, Elasticsearch or torch)."""
from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of ``package``, whose public names are ``exports``
    ({name: the module that defines it, relative to the package}). A name is imported on first access and then kept
    on the package, so the next access is a plain attribute."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        namespace = sys.modules[package]
        return sorted(set(vars(namespace)) | set(getattr(namespace, "__all__", ())))

    return __getattr__, __dir__
