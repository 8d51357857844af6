"""Reading Elasticsearch documents as they come back: nested objects addressed by dotted names."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["get_field"]


def get_field(doc: Mapping[str, Any], dotted: str) -> Any:
    """``doc["a"]["b"]`` for ``"a.b"``; None where any level is missing or not an object."""
    node: Any = doc
    for part in dotted.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node
