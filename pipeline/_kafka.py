"""Kafka clients, built in one place from Settings, and the topic set-up.

Producers are idempotent with ``acks=all`` so a produced message is durable before anything that depends on it
(an offset commit) happens. Consumers never auto-commit: every consumer commits explicitly, last.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka import errors as kafka_errors
from kafka.consumer.subscription_state import ConsumerRebalanceListener

from ._exceptions import ServiceUnavailable, SetupMissing
from ._settings import Settings

__all__ = ["kafka_config", "make_producer", "make_consumer", "subscribe", "make_admin", "consumer_lag", "TopicChange",
           "ensure_topics", "check_topics"]

logger = logging.getLogger(__name__)

HINT_DOWN = "is the broker running? locally: infra/local/stack up; check VIGIL_KAFKA_BOOTSTRAP"
# kafka-python 3.0 reports an unreachable bootstrap as KafkaTimeoutError; 2.x raised NoBrokersAvailable
UNREACHABLE = tuple(getattr(kafka_errors, name) for name in (
    "NoBrokersAvailable", "KafkaTimeoutError", "KafkaConnectionError") if hasattr(kafka_errors, name))


def kafka_config(settings: Settings) -> dict[str, Any]:
    """Connection options shared by producers, consumers and the admin client."""
    config: dict[str, Any] = {
        "bootstrap_servers": [s.strip() for s in settings.kafka_bootstrap.split(",") if s.strip()],
        "security_protocol": settings.kafka_security_protocol,
        "request_timeout_ms": settings.kafka_request_timeout_ms,
        "bootstrap_timeout_ms": settings.kafka_bootstrap_timeout_ms,
        "client_id": "vigil",
    }
    if settings.kafka_ca_file:
        config["ssl_cafile"] = str(settings.kafka_ca_file)
    if settings.kafka_sasl_mechanism:
        config["sasl_mechanism"] = settings.kafka_sasl_mechanism
        config["sasl_plain_username"] = settings.kafka_sasl_username
        config["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()  # type: ignore[union-attr]
    return config


def _connect(factory: Any, settings: Settings, *args: Any, **options: Any) -> Any:
    try:
        return factory(*args, **{**kafka_config(settings), **options})
    except UNREACHABLE as exc:
        raise ServiceUnavailable(f"Kafka at {settings.kafka_bootstrap} is not reachable: {exc}", service="kafka",
                                 hint=HINT_DOWN) from exc


def make_producer(settings: Settings, **overrides: Any) -> KafkaProducer:
    """An idempotent producer with acks=all; keys and values are bytes (callers serialise with the schemas)."""
    options: dict[str, Any] = {
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "compression_type": None,
        "max_block_ms": settings.kafka_request_timeout_ms,
    }
    options.update(overrides)
    return _connect(KafkaProducer, settings, **options)


def make_consumer(settings: Settings, group_id: str | None, *topics: str, **overrides: Any) -> KafkaConsumer:
    """A group member that never auto-commits and starts from the earliest offset of a new group; subscribed to
    ``topics`` (if any) with `subscribe`."""
    options: dict[str, Any] = {
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_poll_records": 50,
    }
    options.update(overrides)
    consumer = _connect(KafkaConsumer, settings, **options)
    if topics:
        subscribe(consumer, topics, timeout_ms=settings.kafka_request_timeout_ms)
    return consumer


def subscribe(consumer: KafkaConsumer, topics: Sequence[str], *, timeout_ms: int,
              listener: ConsumerRebalanceListener | None = None) -> None:
    """Subscribe ``consumer`` to ``topics`` and wait (at most ``timeout_ms``) for their metadata, so that the
    first group join already assigns their partitions.

    kafka-python joins with the metadata it holds when ``poll`` first runs; a new consumer holds none, so its first
    join assigns nothing and the metadata arriving a moment later starts a second rebalance at once (every time,
    measured on the local broker). Under load that second rebalance can stall (see ``GroupWatchdog``). The client
    waits for fresh metadata before the first join only for pattern subscriptions (KAFKA-3949 in its coordinator);
    this does the same for a topic list, through the client's own event loop (kafka-python is pinned below 3.1 for
    these internals). Metadata that does not come in time costs a warning and the second rebalance, nothing more.
    """
    consumer.subscribe(list(topics), listener=listener)
    update = consumer._cluster.request_update()
    try:
        consumer._net.run(consumer._manager.wait_for, update, timeout_ms)
    except kafka_errors.KafkaError as exc:
        logger.warning("no metadata for %s within %d ms before joining the group (%s); it will rebalance again "
                       "once the metadata arrives", ", ".join(topics), timeout_ms, exc)


def make_admin(settings: Settings, **overrides: Any) -> KafkaAdminClient:
    """An admin client; ``bootstrap_timeout_ms`` bounds how long an unreachable cluster is retried."""
    return _connect(KafkaAdminClient, settings, **overrides)


@dataclass(frozen=True)
class TopicChange:
    """What `ensure_topics` did to one topic."""

    topic: str
    action: str  # created | unchanged | warning
    detail: str = ""


def _partition_counts(admin: KafkaAdminClient, topics: list[str]) -> dict[str, int]:
    existing = set(admin.list_topics())
    wanted = [t for t in topics if t in existing]
    if not wanted:
        return {}
    return {t["name"]: len(t["partitions"]) for t in admin.describe_topics(wanted)}


def ensure_topics(admin: KafkaAdminClient, settings: Settings) -> list[TopicChange]:
    """Create the jobs, results and dead-letter topics if absent. Never changes an existing topic."""
    counts = _partition_counts(admin, list(settings.topics))
    changes: list[TopicChange] = []
    missing = {}
    for topic in settings.topics:
        if topic in counts:
            have = counts[topic]
            if have < settings.topic_partitions:
                changes.append(TopicChange(topic, "warning", f"{have} partitions, settings ask for "
                                           f"{settings.topic_partitions}: add them by hand if you need more workers"))
            else:
                changes.append(TopicChange(topic, "unchanged", f"{have} partitions"))
        else:
            missing[topic] = {"num_partitions": settings.topic_partitions,
                              "replication_factor": settings.topic_replication}
    if missing:
        try:
            admin.create_topics(missing, wait_for_metadata=True)
        except kafka_errors.TopicAlreadyExistsError:
            logger.info("topics created concurrently by another `vigil setup`: %s", sorted(missing))
        for topic, spec in missing.items():
            changes.append(TopicChange(topic, "created", f"{spec['num_partitions']} partitions, "
                                       f"replication {spec['replication_factor']}"))
    return sorted(changes, key=lambda c: settings.topics.index(c.topic))


def check_topics(admin: KafkaAdminClient, settings: Settings) -> dict[str, int]:
    """Partition count per Vigil topic; raises SetupMissing naming the absent ones."""
    counts = _partition_counts(admin, list(settings.topics))
    absent = [t for t in settings.topics if t not in counts]
    if absent:
        raise SetupMissing(f"Kafka topics missing: {', '.join(absent)}", service="kafka", hint="run `vigil setup`")
    return counts


def consumer_lag(settings: Settings, group: str, topic: str) -> int:
    """Messages of ``topic`` the consumer ``group`` has not committed yet, summed over partitions (a partition the
    group never committed counts from its earliest retained message). Raises ServiceUnavailable when Kafka is
    unreachable."""
    from kafka import TopicPartition

    admin = make_admin(settings)
    consumer = _connect(KafkaConsumer, settings, **{"enable_auto_commit": False})
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            return 0
        committed = admin.list_group_offsets({group: partitions}).get(group) or {}
        ends = consumer.end_offsets(partitions)
        starts = consumer.beginning_offsets(partitions)
        lag = 0
        for tp in partitions:
            done = committed.get(tp)
            position = done.offset if done is not None and done.offset >= 0 else starts[tp]
            lag += max(0, ends[tp] - position)
        return lag
    finally:
        consumer.close()
        admin.close()
