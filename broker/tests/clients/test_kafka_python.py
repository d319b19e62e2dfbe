"""kafka-python: admin create, idempotent produce, group consume, commit, restart, resume
from the committed offset. The broker version is auto-detected (no api_version pin)."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError

from clientlib import (
    FIRST_BATCH,
    PARTITIONS,
    SECOND_BATCH,
    check_delivery_reports,
    check_exactly_once,
    messages,
)
from conftest import unique

COMMON = {
    "request_timeout_ms": 15000,
}


def create_topic(bootstrap: str, topic: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="compat-admin", **COMMON)
    try:
        admin.create_topics(
            {topic: {"num_partitions": PARTITIONS, "replication_factor": 1}},
            timeout_ms=10000,
            wait_for_metadata=True,
        )
        described = admin.describe_topics([topic])
        assert len(described) == 1 and described[0]["name"] == topic, described
        assert len(described[0]["partitions"]) == PARTITIONS, described
    finally:
        admin.close()


def produce(bootstrap: str, topic: str, start: int, count: int) -> None:
    # kafka-python >= 2.1 has enable_idempotence (3.x turns it on by default); be explicit.
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        **COMMON,
    )
    try:
        futures = [
            (value, producer.send(topic, key=key.encode(), value=value.encode()))
            for key, value in messages(start, count)
        ]
        producer.flush(timeout=30)
        reports = []
        for value, future in futures:
            try:
                metadata = future.get(timeout=30)
                reports.append((value, None, metadata.partition, metadata.offset))
            except KafkaError as error:
                reports.append((value, repr(error), None, None))
    finally:
        producer.close(timeout=10)
    check_delivery_reports(reports, count, f"kafka-python produce {start}..{start + count - 1}")


def consume(bootstrap: str, topic: str, group: str, count: int, settle_s: float = 2.0):
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=10000,
        heartbeat_interval_ms=1000,
        **COMMON,
    )
    received = []
    try:
        deadline = time.monotonic() + 40
        settle_until = None
        while time.monotonic() < deadline:
            if settle_until is None and len(received) >= count:
                settle_until = time.monotonic() + settle_s
            if settle_until is not None and time.monotonic() >= settle_until:
                break
            batches = consumer.poll(timeout_ms=500)
            for partition, records in batches.items():
                for record in records:
                    received.append((record.key.decode(), record.value.decode(),
                                     record.partition, record.offset))
        assert len(received) >= count, f"only {len(received)} of {count} messages consumed in 40 s"
        consumer.commit()
    finally:
        consumer.close(autocommit=False)
    return received


@pytest.mark.deadline(120)
def test_kafka_python_round_trip_and_resume_after_restart(broker):
    topic = unique("kafkapython")
    group = unique("kafkapython-group")
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
