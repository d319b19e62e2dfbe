"""aiokafka: admin create, idempotent produce, group consume, commit, restart, resume from
the committed offset. The broker version is auto-detected (no api_version pin)."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

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


async def create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **COMMON)
    await admin.start()
    try:
        response = await admin.create_topics(
            [NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)], timeout_ms=10000
        )
        # aiokafka returns the raw response; per-topic errors are not raised.
        errors = [e for e in response.to_object()["topic_errors"] if e["error_code"] != 0]
        assert not errors, f"CreateTopics failed: {errors}"
        deadline = time.monotonic() + 10
        while True:
            described = await admin.describe_topics([topic])
            if (len(described) == 1 and described[0]["error_code"] == 0
                    and len(described[0]["partitions"]) == PARTITIONS):
                return
            assert time.monotonic() < deadline, f"topic metadata after create: {described}"
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def produce(bootstrap: str, topic: str, start: int, count: int) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        **COMMON,
    )
    await producer.start()
    try:
        futures = []
        for key, value in messages(start, count):
            futures.append((value, await producer.send(topic, key=key.encode(), value=value.encode())))
        await producer.flush()
        reports = []
        for value, future in futures:
            try:
                metadata = await asyncio.wait_for(future, 30)
                reports.append((value, None, metadata.partition, metadata.offset))
            except Exception as error:  # noqa: BLE001 - every failure is a finding
                reports.append((value, repr(error), None, None))
    finally:
        await producer.stop()
    check_delivery_reports(reports, count, f"aiokafka produce {start}..{start + count - 1}")


async def consume(bootstrap: str, topic: str, group: str, count: int, settle_s: float = 2.0):
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=10000,
        heartbeat_interval_ms=1000,
        **COMMON,
    )
    await consumer.start()
    received = []
    try:
        deadline = time.monotonic() + 40
        settle_until = None
        while time.monotonic() < deadline:
            if settle_until is None and len(received) >= count:
                settle_until = time.monotonic() + settle_s
            if settle_until is not None and time.monotonic() >= settle_until:
                break
            batches = await consumer.getmany(timeout_ms=500)
            for partition, records in batches.items():
                for record in records:
                    received.append((record.key.decode(), record.value.decode(),
                                     record.partition, record.offset))
        assert len(received) >= count, f"only {len(received)} of {count} messages consumed in 40 s"
        await consumer.commit()
    finally:
        await consumer.stop()
    return received


@pytest.mark.deadline(120)
def test_aiokafka_round_trip_and_resume_after_restart(broker):
    topic = unique("aiokafka")
    group = unique("aiokafka-group")
    asyncio.run(create_topic(broker.bootstrap, topic))

    asyncio.run(produce(broker.bootstrap, topic, 0, FIRST_BATCH))
    received = asyncio.run(consume(broker.bootstrap, topic, group, FIRST_BATCH))
    check_exactly_once(received, 0, FIRST_BATCH, "first consumer")
    assert len({p for _, _, p, _ in received}) == PARTITIONS, "messages did not use all partitions"

    code = broker.restart()
    assert code == 0, f"broker exited with {code} on SIGTERM (expected a clean 0)"

    asyncio.run(produce(broker.bootstrap, topic, FIRST_BATCH, SECOND_BATCH))
    resumed = asyncio.run(consume(broker.bootstrap, topic, group, SECOND_BATCH, settle_s=3.0))
    check_exactly_once(resumed, FIRST_BATCH, SECOND_BATCH, "consumer after restart")
