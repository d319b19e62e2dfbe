"""Shared workload and checks for the per-client tests.

Message i has key f"key-{i % 10}" and value f"value-{i}". A consumed message is recorded as
(key, value, partition, offset), both strings decoded from UTF-8.
"""

from __future__ import annotations

import collections
import re

FIRST_BATCH = 300
SECOND_BATCH = 50
PARTITIONS = 3
KEYS = 10

_VALUE = re.compile(r"value-(\d+)")


def key_of(i: int) -> str:
    return f"key-{i % KEYS}"


def value_of(i: int) -> str:
    return f"value-{i}"


def messages(start: int, count: int) -> list[tuple[str, str]]:
    return [(key_of(i), value_of(i)) for i in range(start, start + count)]


def _index(value: str) -> int:
    match = _VALUE.fullmatch(value)
    assert match, f"unexpected value {value!r}"
    return int(match.group(1))


def check_exactly_once(received, start: int, count: int, what: str) -> None:
    """Every message start..start+count-1 arrived once, no other message arrived, each with its
    own key, every key stayed on one partition, and same-key messages arrived in production
    order."""
    problems = []
    values = [value for _, value, _, _ in received]
    duplicates = sorted(
        (v for v, n in collections.Counter(values).items() if n > 1), key=_index
    )
    if duplicates:
        problems.append(f"{len(duplicates)} duplicated values, e.g. {duplicates[:5]}")
    expected = {value_of(i) for i in range(start, start + count)}
    got = set(values)
    missing = sorted(expected - got, key=_index)
    unexpected = sorted(got - expected, key=_index)
    if missing:
        problems.append(f"{len(missing)} missing, e.g. {missing[:5]}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (older or foreign), e.g. {unexpected[:5]}")
    wrong_keys = [(k, v) for k, v, _, _ in received if k != key_of(_index(v))]
    if wrong_keys:
        problems.append(f"{len(wrong_keys)} with the wrong key, e.g. {wrong_keys[:5]}")
    partitions_of_key = collections.defaultdict(set)
    order_of_key = collections.defaultdict(list)
    for key, value, partition, _ in received:
        partitions_of_key[key].add(partition)
        order_of_key[key].append(_index(value))
    split = {k: sorted(p) for k, p in partitions_of_key.items() if len(p) > 1}
    if split:
        problems.append(f"keys spread over several partitions: {split}")
    for key, order in sorted(order_of_key.items()):
        if order != sorted(order):
            problems.append(f"{key} out of production order: {order[:20]}")
    offsets_of_partition = collections.defaultdict(list)
    for _, _, partition, offset in received:
        offsets_of_partition[partition].append(offset)
    for partition, offsets in sorted(offsets_of_partition.items()):
        if offsets != sorted(offsets):
            problems.append(f"partition {partition} offsets not increasing: {offsets[:20]}")
    assert not problems, f"{what}: " + "; ".join(problems)


def check_delivery_reports(reports, count: int, what: str) -> dict[str, set[int]]:
    """`reports` is a list of (value, error, partition, offset). All succeeded, one per message,
    no two at the same (partition, offset). Returns the partitions each key went to."""
    errors = [(v, e) for v, e, _, _ in reports if e is not None]
    assert not errors, f"{what}: {len(errors)} deliveries failed, e.g. {errors[:5]}"
    assert len(reports) == count, f"{what}: {len(reports)} delivery reports for {count} messages"
    positions = collections.Counter((p, o) for _, _, p, o in reports)
    clashes = [pos for pos, n in positions.items() if n > 1]
    assert not clashes, f"{what}: several messages acknowledged at one offset: {clashes[:5]}"
    bad_offsets = [(v, p, o) for v, _, p, o in reports if o is None or o < 0]
    assert not bad_offsets, f"{what}: deliveries without an offset: {bad_offsets[:5]}"
    partitions = collections.defaultdict(set)
    for value, _, partition, _ in reports:
        partitions[key_of(_index(value))].add(partition)
    return partitions
