"""Topics and a consumer group on the real Kafka broker of the local stack."""
from __future__ import annotations

import logging
import socket
import time

import pytest
from kafka import KafkaConsumer, TopicPartition

from pipeline import JobMessage, Settings, SourceMetadata, decode, encode, ensure_topics, make_admin, make_consumer, \
    make_producer
from pipeline._kafka import subscribe
from pipeline.consume import RebalanceEvents


@pytest.mark.kafka
def test_ensure_topics_creates_then_leaves_alone(stack_settings: Settings) -> None:
    admin = make_admin(stack_settings)
    try:
        first = ensure_topics(admin, stack_settings)
        second = ensure_topics(admin, stack_settings)
        described = {t["name"]: len(t["partitions"]) for t in admin.describe_topics(list(stack_settings.topics))}
    finally:
        admin.close()
    assert [c.action for c in first] == ["created"] * 3
    assert [c.action for c in second] == ["unchanged"] * 3
    assert described == {t: 2 for t in stack_settings.topics}


@pytest.mark.kafka
def test_job_is_consumed_by_a_group_member_and_its_offset_committed(stack_settings: Settings) -> None:
    admin = make_admin(stack_settings)
    ensure_topics(admin, stack_settings)
    sha = "b" * 64
    job = JobMessage(video_uid="localtest:clip-1", media_uri=f"file:///tmp/{sha}.mp4", media_sha256=sha,
                     source=SourceMetadata(platform="localtest", url="http://127.0.0.1/clip-1"))
    producer = make_producer(stack_settings)
    metadata = producer.send(stack_settings.topic_jobs, key=job.video_uid.encode(), value=encode(job)).get(timeout=30)
    producer.close()

    consumer = make_consumer(stack_settings, stack_settings.worker_group, stack_settings.topic_jobs)
    try:
        received = []
        for _ in range(60):
            for records in consumer.poll(timeout_ms=500).values():
                received.extend(records)
            if received:
                break
        assert len(received) == 1
        assert decode(received[0].value, JobMessage) == job
        assert received[0].key == b"localtest:clip-1"
        consumer.commit()
    finally:
        consumer.close()

    tp = TopicPartition(stack_settings.topic_jobs, metadata.partition)
    committed = admin.list_group_offsets({stack_settings.worker_group: [tp]})[stack_settings.worker_group]
    admin.close()
    assert committed[tp].offset == metadata.offset + 1

    # a new member of the same group resumes after the commit: nothing is delivered twice
    again = make_consumer(stack_settings, stack_settings.worker_group, stack_settings.topic_jobs)
    try:
        redelivered = [r for _ in range(6) for rs in again.poll(timeout_ms=500).values() for r in rs]
    finally:
        again.close()
    assert redelivered == []


@pytest.mark.kafka
def test_a_new_member_joins_once_and_is_given_the_topics_partitions(stack_settings: Settings) -> None:
    # without waiting for the topic's metadata, kafka-python's first join assigns nothing and a second rebalance
    # follows at once; that second one could stall under load
    admin = make_admin(stack_settings)
    ensure_topics(admin, stack_settings)
    admin.close()
    producer = make_producer(stack_settings)
    producer.send(stack_settings.topic_results, key=b"k", value=b"v").get(timeout=30)
    producer.close()
    consumer = make_consumer(stack_settings, f"{stack_settings.sink_group}-join")
    rebalances = RebalanceEvents()
    try:
        subscribe(consumer, [stack_settings.topic_results], listener=rebalances,
                  timeout_ms=stack_settings.kafka_request_timeout_ms)
        received = []
        for _ in range(60):
            received += [r for rs in consumer.poll(timeout_ms=500).values() for r in rs]
            if received:
                break
        joined = [(kind, len(partitions)) for kind, partitions in rebalances.drain()]  # before close: it revokes
    finally:
        consumer.close()
    assert [r.value for r in received] == [b"v"]
    assert joined == [("revoked", 0), ("assigned", stack_settings.topic_partitions)]


def test_subscribing_while_the_cluster_is_unreachable_warns_and_still_subscribes(
        caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # api_version given: the client does not try the cluster until it needs metadata
    consumer = KafkaConsumer(bootstrap_servers=f"127.0.0.1:{port}", group_id="unreachable", api_version=(2, 5),
                             reconnect_backoff_max_ms=200)
    try:
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="pipeline._kafka"):
            subscribe(consumer, ["vigil.results"], timeout_ms=1500)
        waited = time.monotonic() - started
        assert consumer.subscription() == {"vigil.results"}
    finally:
        consumer.close()
    assert 1.4 < waited < 10
    assert "no metadata for vigil.results within 1500 ms before joining the group" in caplog.text
