"""confluent-kafka (librdkafka): admin create, idempotent produce, group consume, commit,
restart, resume from the committed offset."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from clientlib import (
    FIRST_BATCH,
    PARTITIONS,
    SECOND_BATCH,
    check_delivery_reports,
    check_exactly_once,
    messages,
)
from conftest import unique

# librdkafka logs to stderr, which pytest shows for a failing test.
COMMON: dict = {}


def create_topic(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap, **COMMON})
    futures = admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)],
                                  operation_timeout=10, request_timeout=15)
    futures[topic].result(timeout=20)
    # The new topic must be visible with all its partitions.
    deadline = time.monotonic() + 10
    while True:
        metadata = admin.list_topics(topic=topic, timeout=10)
        described = metadata.topics.get(topic)
        if described is not None and described.error is None and len(described.partitions) == PARTITIONS:
            return
        assert time.monotonic() < deadline, f"topic {topic} metadata: {described and described.error}, " \
            f"partitions {described and sorted(described.partitions)}"
        time.sleep(0.2)


def produce(bootstrap: str, topic: str, start: int, count: int) -> None:
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "message.timeout.ms": 30000,
        **COMMON,
    })
    reports = []

    def on_delivery(error, message):
        reports.append((
            message.value().decode(),
            error,
            message.partition(),
            message.offset() if error is None else None,
        ))

    for key, value in messages(start, count):
        while True:
            try:
                producer.produce(topic, key=key.encode(), value=value.encode(), on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(30)
    assert remaining == 0, f"{remaining} messages still undelivered after flush(30)"
    check_delivery_reports(reports, count, f"confluent-kafka produce {start}..{start + count - 1}")


def consume(bootstrap: str, topic: str, group: str, count: int, settle_s: float = 2.0):
    """Consumes until `count` messages arrived, then `settle_s` more seconds to catch extras;
    commits synchronously and closes. Returns (key, value, partition, offset) records."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 1000,
        **COMMON,
    })
    received = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 40
        settle_until = None
        while time.monotonic() < deadline:
            if settle_until is None and len(received) >= count:
                settle_until = time.monotonic() + settle_s
            if settle_until is not None and time.monotonic() >= settle_until:
                break
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                if message.error().code() == KafkaError._PARTITION_EOF:
                    continue
                pytest.fail(f"consumer error: {message.error()}")
            received.append((message.key().decode(), message.value().decode(),
                             message.partition(), message.offset()))
        assert len(received) >= count, f"only {len(received)} of {count} messages consumed in 40 s"
        committed = consumer.commit(asynchronous=False)
        failed = [tp for tp in committed or [] if tp.error is not None]
        assert not failed, f"offset commit failed: {failed}"
    finally:
        consumer.close()
    return received


@pytest.mark.deadline(120)
def test_confluent_kafka_round_trip_and_resume_after_restart(broker):
    topic = unique("confluent")
    group = unique("confluent-group")
    create_topic(broker.bootstrap, topic)

    produce(broker.bootstrap, topic, 0, FIRST_BATCH)
    received = consume(broker.bootstrap, topic, group, FIRST_BATCH)
    check_exactly_once(received, 0, FIRST_BATCH, "first consumer")
    assert len({p for _, _, p, _ in received}) == PARTITIONS, "messages did not use all partitions"

    code = broker.restart()
    assert code == 0, f"broker exited with {code} on SIGTERM (expected a clean 0)"

    produce(broker.bootstrap, topic, FIRST_BATCH, SECOND_BATCH)
    resumed = consume(broker.bootstrap, topic, group, SECOND_BATCH, settle_s=3.0)
    check_exactly_once(resumed, FIRST_BATCH, SECOND_BATCH, "consumer after restart")
