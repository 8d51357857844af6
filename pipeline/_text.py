"""Platform text made safe to print: titles, descriptions, channel names and reasons come from anyone.

Stored intact everywhere (Elasticsearch, Kafka, JSON); escaped only where shown:

- `printable`: terminal control characters (ESC sequences, carriage returns, C1 controls) and bidirectional
  overrides/isolates (U+202A–U+202E, U+2066–U+2069, U+200E/U+200F, U+061C: "Trojan Source" reordering) become
  visible ``\\x1b`` / ``\\u202e`` escapes; newlines and tabs become spaces;
- `plain`: a rich ``Text`` of `printable` text (never parsed as markup: ``[/bold]`` stays ``[/bold]``);
- `markup_escape`: `printable` text escaped for a rich markup string;
- `slack_escape`: `printable` text with Slack's control characters ``& < >`` escaped (no ``<!channel>`` pings,
  no forged links).
"""
from __future__ import annotations

import re
import unicodedata
from typing import Any

__all__ = ["printable", "plain", "markup_escape", "slack_escape", "BIDI_CONTROLS"]

BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_SPACES = re.compile(r"[\n\t\r\v\f\u2028\u2029]+")


def _visible(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: Any) -> str:
    """``text`` with control characters and bidi overrides made visible (see the module docstring)."""
    value = _SPACES.sub(" ", "" if text is None else str(text))
    return "".join(_visible(c) if c in BIDI_CONTROLS or unicodedata.category(c) == "Cc" else c for c in value)


def plain(text: Any, style: str = "") -> Any:
    """A rich ``Text`` that shows ``text`` as it is (no markup), made `printable`."""
    from rich.text import Text

    return Text(printable(text), style=style)


def markup_escape(text: Any) -> str:
    """`printable` text escaped for a rich markup string."""
    from rich.markup import escape

    return escape(printable(text))


def slack_escape(text: Any) -> str:
    """`printable` text for Slack's ``text`` and ``mrkdwn`` fields."""
    return printable(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
