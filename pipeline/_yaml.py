"""YAML read with bounds, for every file or form that arrives from outside (watchlists, alert rules, keywords).

A YAML "billion laughs" (anchors whose aliases nest: ``a: &a [x, x]``, ``b: &b [*a, *a]``, … ``entries: *i``) is a
few hundred bytes that expand to billions of nodes once something walks them. `load_yaml` counts nodes as they
would be expanded, aliases included, while composing, and refuses the document past ``max_nodes`` before anything
is constructed; it also refuses texts over ``max_bytes``. Errors quote at most a short prefix of a value (`short`).
"""
from __future__ import annotations

import reprlib
from typing import Any

import yaml

from ._exceptions import ConfigError

__all__ = ["load_yaml", "BoundedSafeLoader", "YamlTooLarge", "short", "MAX_YAML_BYTES", "MAX_YAML_NODES"]

MAX_YAML_BYTES = 4 * 1024 * 1024
MAX_YAML_NODES = 200_000
_SHORT = reprlib.Repr()
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxlevel = 60, 60, 4, 4, 2


def short(value: Any) -> str:
    """A repr of at most about 80 characters (never walks a huge or deeply shared value)."""
    return _SHORT.repr(value)[:100]


class YamlTooLarge(ConfigError):
    """The YAML text, or what its aliases expand to, is over the bounds."""


class BoundedSafeLoader(yaml.SafeLoader):
    """A SafeLoader that refuses documents whose expanded node count (aliases counted as copies) is over
    ``max_nodes``. Subclass it and keep the bound, or set ``max_nodes`` on the subclass."""

    max_nodes = MAX_YAML_NODES

    def compose_document(self) -> Any:
        self._sizes: dict[int, int] = {}
        self._expanded = 0
        return super().compose_document()

    def compose_node(self, parent: Any, index: Any) -> Any:
        alias = self.check_event(yaml.AliasEvent)
        mark = self.peek_event().start_mark
        node = super().compose_node(parent, index)
        if alias:
            size = self._sizes.get(id(node), 1)
        else:
            children: list[Any] = []
            if isinstance(node, yaml.MappingNode):
                children = [part for pair in node.value for part in pair]
            elif isinstance(node, yaml.SequenceNode):
                children = list(node.value)
            size = 1 + sum(self._sizes.get(id(child), 1) for child in children)
            self._sizes[id(node)] = size
            size = 1  # its children were counted as they were composed
        self._expanded += size
        if self._expanded > self.max_nodes:
            raise YamlTooLarge(f"YAML expands to more than {self.max_nodes:,} nodes (aliases counted as copies) at "
                               f"line {mark.line + 1}: refused")
        return node


def load_yaml(text: str | bytes, *, loader: type[BoundedSafeLoader] = BoundedSafeLoader,
              max_bytes: int = MAX_YAML_BYTES, what: str = "YAML") -> Any:
    """Parse ``text`` with ``loader`` within the bounds; YamlTooLarge past them, yaml.YAMLError when invalid."""
    if len(text) > max_bytes:
        raise YamlTooLarge(f"{what} is {len(text):,} bytes, over the {max_bytes:,} byte limit: refused")
    return yaml.load(text, Loader=loader)  # noqa: S506 - a SafeLoader subclass
