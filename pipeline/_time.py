"""Time, one way: now in UTC, and an ISO 8601 moment (``Z`` or an offset; a naive one is taken as UTC) as an aware
datetime. Elasticsearch, Kafka messages and platforms all speak ISO 8601."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

__all__ = ["utcnow", "parse_moment"]


def utcnow() -> datetime:
    """Now, aware, in UTC."""
    return datetime.now(UTC)


def parse_moment(value: Any) -> datetime | None:
    """An aware datetime from an ISO 8601 string or a datetime (naive: UTC); None for None or ""; ValueError for
    text that is not a moment."""
    if value is None or value == "":
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).strip())
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
