"""Dead letters as Kafka Connect writes them: the original record's key and value bytes unchanged, the error in
headers, so any Kafka tool can read them and a replay sends back exactly what came in.

    __connect.errors.topic / .partition / .offset       where the record was consumed
    __connect.errors.exception.class.name / .message    what went wrong (message cut at 4000 characters)
    __connect.errors.stage                              parse, fetch, decode, analyse, result, index, …
    __connect.errors.attempts                           how often it was tried
    __connect.errors.connector.name                     vigil-worker, vigil-sink
    __vigil.dlq.schema                                  vigil.dlq/2

``read_dead_letters`` lists them (``--since``, ``--error-class``), ``replay`` sends chosen ones back to their topic
(with ``__vigil.replayed_from`` naming the dead letter) and reports what it sent.
"""
from __future__ import annotations

import base64
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .._messages import DLQ_SCHEMA, DeadLetter

if TYPE_CHECKING:
    from .._settings import Settings
    from ._steps import Record

__all__ = ["HEADER_PREFIX", "dead_letter_headers", "parse_dead_letter", "read_dead_letters", "replay",
           "ReplayOutcome"]

logger = logging.getLogger(__name__)

HEADER_PREFIX = "__connect.errors."
SCHEMA_HEADER = "__vigil.dlq.schema"
REPLAYED_HEADER = "__vigil.replayed_from"
MAX_MESSAGE = 4000


def dead_letter_headers(record: Record, error: BaseException, *, stage: str, attempts: int,
                        component: str) -> list[tuple[str, bytes]]:
    """The headers of a dead letter for ``record`` (its own headers are kept, except older error headers)."""
    fields = {
        "topic": record.topic, "partition": str(record.partition), "offset": str(record.offset),
        "exception.class.name": type(error).__name__, "exception.message": str(error)[:MAX_MESSAGE],
        "stage": stage, "attempts": str(attempts), "connector.name": f"vigil-{component}",
    }
    kept = [(k, v) for k, v in record.headers if not k.startswith(HEADER_PREFIX) and k != SCHEMA_HEADER]
    return kept + [(HEADER_PREFIX + k, v.encode("utf-8")) for k, v in fields.items()] + \
        [(SCHEMA_HEADER, DLQ_SCHEMA.encode())]


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", "replace")


def parse_dead_letter(message: Any) -> DeadLetter:
    """A consumed dead-letter record as a DeadLetter (headers read; a record without them is described as such)."""
    headers = {k: v for k, v in (getattr(message, "headers", None) or [])}
    err = {k[len(HEADER_PREFIX):]: _text(v) for k, v in headers.items() if k.startswith(HEADER_PREFIX)}
    raw: bytes = message.value if message.value is not None else b""
    try:
        value, encoding = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        value, encoding = base64.b64encode(raw).decode("ascii"), "base64"

    def _int(name: str) -> int | None:
        try:
            return int(err[name]) if err.get(name) is not None else None
        except ValueError:
            return None

    stamp = getattr(message, "timestamp", None)
    return DeadLetter(
        dlq_topic=message.topic, dlq_partition=message.partition, dlq_offset=message.offset,
        original_topic=err.get("topic") or "?", original_partition=_int("partition"),
        original_offset=_int("offset"), original_key=_text(message.key), original_value=value,
        original_encoding=encoding, error_class=err.get("exception.class.name") or "unknown",
        error_message=err.get("exception.message") or "(no error headers: not written by Vigil)",
        stage=err.get("stage") or "unknown", attempts=max(1, _int("attempts") or 1),
        component=err.get("connector.name"),
        replayed_from=_text(headers.get(REPLAYED_HEADER)),
        failed_at=datetime.fromtimestamp(stamp / 1000, UTC) if stamp and stamp > 0 else datetime.now(UTC))


def _consumer(settings: Settings) -> Any:
    from .._kafka import make_consumer

    return make_consumer(settings, None, enable_auto_commit=False, auto_offset_reset="earliest",
                         consumer_timeout_ms=2000, client_id="vigil-dlq-reader")


def _records(settings: Settings, *, since: datetime | None = None, topic: str | None = None) -> Iterator[Any]:
    """Every record of the dead-letter topic (from ``since`` on), partition by partition, oldest first."""
    from kafka import TopicPartition

    from .._exceptions import ServiceUnavailable

    topic = topic or settings.topic_dlq
    consumer = _consumer(settings)
    try:
        partitions = consumer.partitions_for_topic(topic)
        if partitions is None:
            raise ServiceUnavailable(f"the dead-letter topic {topic} does not exist (run `vigil setup`)",
                                     service="kafka")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        ends = consumer.end_offsets(tps)
        if since is not None:
            found = consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in tps})
            for tp in tps:
                hit = found.get(tp)
                consumer.seek(tp, hit.offset if hit is not None else ends[tp])
        else:
            consumer.seek_to_beginning(*tps)
        remaining = {tp for tp in tps if consumer.position(tp) < ends[tp]}
        while remaining:
            got = consumer.poll(timeout_ms=1000)
            if not got:
                remaining = {tp for tp in remaining if consumer.position(tp) < ends[tp]}
                continue
            for tp, messages in got.items():
                for message in messages:
                    if message.offset < ends[tp]:
                        yield message
                if consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        consumer.close(autocommit=False)


def read_dead_letters(settings: Settings, *, since: datetime | None = None, error_class: str | None = None,
                      stage: str | None = None, limit: int | None = None) -> list[tuple[Any, DeadLetter]]:
    """(record, DeadLetter) pairs of the dead-letter topic, oldest first, filtered."""
    out: list[tuple[Any, DeadLetter]] = []
    for message in _records(settings, since=since):
        letter = parse_dead_letter(message)
        if error_class and letter.error_class != error_class:
            continue
        if stage and letter.stage != stage:
            continue
        out.append((message, letter))
        if limit is not None and len(out) >= limit:
            break
    return out


@dataclass(frozen=True)
class ReplayOutcome:
    letter: DeadLetter
    to_topic: str
    sent: bool
    detail: str = ""


def replay(settings: Settings, selected: Iterable[tuple[Any, DeadLetter]], *, dry_run: bool = False,
           producer: Any = None) -> list[ReplayOutcome]:
    """Send each selected dead letter's original key and value back to its original topic (acks=all), its error
    headers replaced by ``__vigil.replayed_from``. Dead letters whose origin is unknown are skipped."""
    from .._kafka import make_producer

    outcomes: list[ReplayOutcome] = []
    own = producer is None and not dry_run
    producer = make_producer(settings) if own else producer
    try:
        futures = []
        for message, letter in selected:
            target = letter.original_topic
            if target == "?" or not target:
                outcomes.append(ReplayOutcome(letter, "", False, "origin unknown (no error headers)"))
                continue
            if dry_run:
                outcomes.append(ReplayOutcome(letter, target, False, "dry run"))
                continue
            headers = [(k, v) for k, v in (message.headers or [])
                       if not k.startswith(HEADER_PREFIX) and k not in (SCHEMA_HEADER, REPLAYED_HEADER)]
            headers.append((REPLAYED_HEADER, f"{message.topic}:{message.partition}:{message.offset}".encode()))
            futures.append((letter, target, producer.send(target, key=message.key, value=message.value,
                                                          headers=headers)))
        for letter, target, future in futures:
            try:
                future.get(timeout=settings.kafka_request_timeout_ms / 1000)
            except Exception as exc:  # noqa: BLE001 - reported per letter
                outcomes.append(ReplayOutcome(letter, target, False, f"{type(exc).__name__}: {exc}"))
            else:
                outcomes.append(ReplayOutcome(letter, target, True))
    finally:
        if own:
            producer.close(timeout=10)
    return outcomes
