"""Hostile bytes on raw sockets. One broker takes all of it (module scope); after every test it
must still be alive and answer ApiVersions on a fresh connection."""

from __future__ import annotations

import random
import socket
import struct
import time

import pytest

API_VERSIONS = 18
UNSUPPORTED_VERSION = 35
IO_TIMEOUT_S = 5.0


# ---------------------------------------------------------------------------- encoding helpers

def nullable_string(text: str | None) -> bytes:
    if text is None:
        return struct.pack(">h", -1)
    data = text.encode()
    return struct.pack(">h", len(data)) + data


def header_v1(api_key: int, version: int, correlation_id: int, client_id: str | None = "compat") -> bytes:
    return struct.pack(">hhi", api_key, version, correlation_id) + nullable_string(client_id)


def header_v2(api_key: int, version: int, correlation_id: int, client_id: str | None = "compat") -> bytes:
    return header_v1(api_key, version, correlation_id, client_id) + b"\x00"  # no tagged fields


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def uvarint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def compact_string(text: str) -> bytes:
    data = text.encode()
    return uvarint(len(data) + 1) + data


def api_versions_request(version: int, correlation_id: int) -> bytes:
    if version >= 3:
        body = compact_string("compat-test") + compact_string("1.0") + b"\x00"
        return frame(header_v2(API_VERSIONS, version, correlation_id) + body)
    return frame(header_v1(API_VERSIONS, version, correlation_id))


# ---------------------------------------------------------------------------- socket helpers

def connect(broker) -> socket.socket:
    sock = socket.create_connection((broker.host, broker.port), timeout=IO_TIMEOUT_S)
    sock.settimeout(IO_TIMEOUT_S)
    return sock


def recv_exact(sock: socket.socket, count: int) -> bytes:
    data = bytearray()
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(data)} of {count} bytes")
        data.extend(chunk)
    return bytes(data)


def read_response(sock: socket.socket) -> bytes:
    (size,) = struct.unpack(">i", recv_exact(sock, 4))
    assert 4 <= size < 16 * 1024 * 1024, f"implausible response size {size}"
    return recv_exact(sock, size)


def wait_closed(sock: socket.socket, timeout: float = IO_TIMEOUT_S) -> bool:
    """True when the peer closes (EOF or reset) within `timeout`; data is read and dropped."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    return False


def parse_api_versions_v0(payload: bytes) -> tuple[int, int, dict[int, tuple[int, int]]]:
    """(correlation_id, error_code, {api_key: (min, max)}) of a v0 (or v1/v2 prefix) body."""
    correlation_id, error_code, count = struct.unpack_from(">ihi", payload, 0)
    assert 0 <= count < 1000, f"implausible api count {count}"
    apis = {}
    offset = 10
    for _ in range(count):
        key, low, high = struct.unpack_from(">hhh", payload, offset)
        apis[key] = (low, high)
        offset += 6
    return correlation_id, error_code, apis


def read_uvarint(payload: bytes, offset: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = payload[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, offset
        shift += 7


def parse_api_versions_v3(payload: bytes) -> tuple[int, int, dict[int, tuple[int, int]]]:
    # ApiVersions responses keep response header v0 (no tagged fields) even when flexible.
    correlation_id, error_code = struct.unpack_from(">ih", payload, 0)
    count_plus_one, offset = read_uvarint(payload, 6)
    apis = {}
    for _ in range(count_plus_one - 1):
        key, low, high = struct.unpack_from(">hhh", payload, offset)
        offset += 6
        tags, offset = read_uvarint(payload, offset)
        assert tags == 0, "unexpected tagged fields in an ApiVersion entry"
        apis[key] = (low, high)
    return correlation_id, error_code, apis


def assert_answers_api_versions(broker) -> None:
    assert broker.is_alive(), f"broker process died (exit code {broker.process.returncode})"
    with connect(broker) as sock:
        sock.sendall(api_versions_request(0, 4242))
        correlation_id, error_code, apis = parse_api_versions_v0(read_response(sock))
    assert correlation_id == 4242
    assert error_code == 0
    assert API_VERSIONS in apis and apis[API_VERSIONS][0] == 0, apis
    assert broker.is_alive()


# ---------------------------------------------------------------------------- tests

def test_api_versions_v0_and_v3_answer(module_broker):
    with connect(module_broker) as sock:
        sock.sendall(api_versions_request(0, 1))
        correlation_id, error_code, apis = parse_api_versions_v0(read_response(sock))
        assert (correlation_id, error_code) == (1, 0)
        for key in (0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 19, 20, 22, 32, 37, 60):
            assert key in apis, f"api {key} missing from ApiVersions: {sorted(apis)}"
        # Same connection, flexible v3.
        sock.sendall(api_versions_request(3, 2))
        correlation_id, error_code, apis_v3 = parse_api_versions_v3(read_response(sock))
        assert (correlation_id, error_code) == (2, 0)
        assert apis_v3 == apis


def test_api_versions_unsupported_version_gets_error_35_and_the_list(module_broker):
    with connect(module_broker) as sock:
        sock.sendall(frame(header_v2(API_VERSIONS, 99, 77) + compact_string("x") + compact_string("1") + b"\x00"))
        correlation_id, error_code, apis = parse_api_versions_v0(read_response(sock))
        assert correlation_id == 77
        assert error_code == UNSUPPORTED_VERSION, f"error code {error_code}, expected 35"
        assert API_VERSIONS in apis, f"the error response must carry the API list, got {apis}"
        low, high = apis[API_VERSIONS]
        assert low == 0 and high >= 3, apis
        # The connection stays usable: the client retries with a version from the list.
        sock.sendall(api_versions_request(high, 78))
        correlation_id, error_code, _ = parse_api_versions_v3(read_response(sock))
        assert (correlation_id, error_code) == (78, 0)
    assert_answers_api_versions(module_broker)


def test_frame_over_100_mib_closes_connection(module_broker):
    with connect(module_broker) as sock:
        sock.sendall(struct.pack(">i", 100 * 1024 * 1024 + 1) + b"\x00" * 1024)
        assert wait_closed(sock), "broker kept a connection that announced a 100 MiB + 1 frame"
    with connect(module_broker) as sock:
        sock.sendall(struct.pack(">i", 0x7FFFFFFF) + b"\x00" * 16)
        assert wait_closed(sock), "broker kept a connection that announced a 2 GiB frame"
    assert_answers_api_versions(module_broker)


def test_negative_frame_size_closes_connection(module_broker):
    for size in (-1, -2**31):
        with connect(module_broker) as sock:
            sock.sendall(struct.pack(">i", size) + b"\x01\x02\x03\x04")
            assert wait_closed(sock), f"broker kept a connection after frame size {size}"
    assert_answers_api_versions(module_broker)


def test_truncated_frame_then_close(module_broker):
    request = api_versions_request(0, 5)
    for cut in (1, 3, 4, 7, len(request) - 1):
        with connect(module_broker) as sock:
            sock.sendall(request[:cut])
        # A big frame announced, half sent, then closed.
        with connect(module_broker) as sock:
            sock.sendall(struct.pack(">i", 1_000_000) + b"\xab" * 100_000)
    assert_answers_api_versions(module_broker)


def test_tiny_and_header_only_frames(module_broker):
    for payload in (b"", b"\x00", b"\x00\x12", b"\x00\x12\x00", b"\x00\x12\x00\x00\x00\x00"):
        with connect(module_broker) as sock:
            sock.sendall(frame(payload))
            assert wait_closed(sock), f"broker kept a connection after undecodable frame {payload!r}"
    # A header whose client_id length runs past the frame.
    with connect(module_broker) as sock:
        sock.sendall(frame(struct.pack(">hhih", API_VERSIONS, 0, 9, 500) + b"ab"))
        assert wait_closed(sock)
    assert_answers_api_versions(module_broker)


def test_unknown_api_key_closes_connection(module_broker):
    for api_key in (9999, -5, 67):
        with connect(module_broker) as sock:
            sock.sendall(frame(header_v1(api_key, 0, 11)))
            # Kafka closes the connection for an API it does not know.
            assert wait_closed(sock), f"no close after unknown api key {api_key}"
    assert_answers_api_versions(module_broker)


# (api_key, version, flexible) of requests the broker supports, each given garbage bodies.
GARBAGE_TARGETS = [
    (0, 3, False),    # Produce
    (0, 9, True),
    (1, 4, False),    # Fetch
    (1, 12, True),
    (2, 1, False),    # ListOffsets
    (3, 1, False),    # Metadata
    (3, 12, True),
    (8, 2, False),    # OffsetCommit
    (9, 1, False),    # OffsetFetch
    (10, 0, False),   # FindCoordinator
    (11, 0, False),   # JoinGroup
    (14, 0, False),   # SyncGroup
    (19, 2, False),   # CreateTopics
    (19, 5, True),
    (20, 1, False),   # DeleteTopics
    (22, 0, False),   # InitProducerId
    (32, 1, False),   # DescribeConfigs
    (37, 0, False),   # CreatePartitions
    (60, 0, True),    # DescribeCluster
]


@pytest.mark.deadline(150)
@pytest.mark.parametrize("api_key,version,flexible", GARBAGE_TARGETS,
                         ids=[f"api{k}v{v}" for k, v, _ in GARBAGE_TARGETS])
def test_garbage_bodies(module_broker, api_key, version, flexible):
    """Random bytes after a valid header: the broker may answer (with this correlation id) or
    close the connection; it must not die. A body that happens to decode as a long poll may
    leave the connection waiting, which is also fine."""
    rng = random.Random(api_key * 1000 + version)
    outcomes = []
    for attempt in range(6):
        correlation_id = 1000 + attempt
        header = (header_v2 if flexible else header_v1)(api_key, version, correlation_id)
        length = rng.choice([1, 2, 5, 17, 64, 300])
        if attempt == 0:
            body = b""
        elif attempt == 1:
            body = b"\xff" * length  # every count and length field -1
        elif attempt == 2:
            body = b"\x7f" * length  # every count and length field huge
        else:
            body = bytes(rng.getrandbits(8) for _ in range(length))
        with connect(module_broker) as sock:
            sock.sendall(frame(header + body))
            sock.settimeout(2.0)
            try:
                (size,) = struct.unpack(">i", recv_exact(sock, 4))
                assert 4 <= size < 64 * 1024 * 1024, f"implausible response size {size}"
                payload = recv_exact(sock, size)
                (answered_id,) = struct.unpack_from(">i", payload, 0)
                assert answered_id == correlation_id, (
                    f"response to correlation id {correlation_id} carried {answered_id}")
                outcomes.append("answered")
            except (ConnectionError, OSError) as error:
                if isinstance(error, socket.timeout):
                    outcomes.append("no answer in 2 s")
                else:
                    outcomes.append("closed")
        assert module_broker.is_alive(), (
            f"broker died on api {api_key} v{version} body {body.hex()} (outcomes {outcomes})")
    print(f"api {api_key} v{version}: {outcomes}")
    assert_answers_api_versions(module_broker)


def string(text: str) -> bytes:
    data = text.encode()
    return struct.pack(">h", len(data)) + data


def read_string(payload: bytes, offset: int) -> tuple[str | None, int]:
    (length,) = struct.unpack_from(">h", payload, offset)
    offset += 2
    if length < 0:
        return None, offset
    return payload[offset:offset + length].decode("utf-8", "replace"), offset + length


def metadata_v1_topic_errors(broker, names: list[str]) -> dict[str, int]:
    """Metadata v1 (auto-creation implied) for `names`: {topic name: error code}."""
    body = struct.pack(">i", len(names)) + b"".join(string(n) for n in names)
    with connect(broker) as sock:
        sock.sendall(frame(header_v1(3, 1, 31) + body))
        payload = read_response(sock)
    offset = 0
    (correlation_id, broker_count) = struct.unpack_from(">ii", payload, offset)
    assert correlation_id == 31
    offset += 8
    for _ in range(broker_count):
        offset += 4  # node id
        _, offset = read_string(payload, offset)  # host
        offset += 4  # port
        _, offset = read_string(payload, offset)  # rack
    offset += 4  # controller id
    (topic_count,) = struct.unpack_from(">i", payload, offset)
    offset += 4
    errors = {}
    for _ in range(topic_count):
        (error_code,) = struct.unpack_from(">h", payload, offset)
        name, offset = read_string(payload, offset + 2)
        offset += 1  # is_internal
        (partition_count,) = struct.unpack_from(">i", payload, offset)
        offset += 4
        for _ in range(partition_count):
            offset += 2 + 4 + 4  # error code, index, leader
            for _ in range(2):  # replicas, isr
                (count,) = struct.unpack_from(">i", payload, offset)
                offset += 4 + 4 * max(count, 0)
        errors[name] = error_code
    return errors


def create_topics_v2_errors(broker, topics: list[tuple[str, int]]) -> dict[str, int]:
    """CreateTopics v2 for (name, partitions) pairs: {topic name: error code}."""
    body = struct.pack(">i", len(topics))
    for name, partitions in topics:
        body += string(name) + struct.pack(">ihii", partitions, 1, 0, 0)  # no assignments, configs
    body += struct.pack(">ib", 10000, 0)  # timeout, validate_only
    with connect(broker) as sock:
        sock.sendall(frame(header_v1(19, 2, 32) + body))
        payload = read_response(sock)
    correlation_id, _throttle, count = struct.unpack_from(">iii", payload, 0)
    assert correlation_id == 32
    offset = 12
    errors = {}
    for _ in range(count):
        name, offset = read_string(payload, offset)
        (error_code,) = struct.unpack_from(">h", payload, offset)
        _, offset = read_string(payload, offset + 2)  # error message
        errors[name] = error_code
    return errors


INVALID_TOPIC_EXCEPTION = 17
INVALID_PARTITIONS = 37
BAD_TOPIC_NAMES = ["", ".", "..", "../../escape-a", "../escape-b", "a/b", "with space",
                   "x" * 250, "t\u00fcrkish", "semi;colon", "nul\x00byte"]


def _escaped_paths(data_dir) -> list[str]:
    """Anything named like the invalid topics anywhere under the broker's temp root."""
    root = data_dir.parent
    return sorted(str(p.relative_to(root)) for p in root.rglob("*escape*"))


def test_invalid_topic_names_are_refused_not_created(module_broker):
    errors = metadata_v1_topic_errors(module_broker, BAD_TOPIC_NAMES)
    wrong = {n: errors.get(n) for n in BAD_TOPIC_NAMES if errors.get(n) != INVALID_TOPIC_EXCEPTION}
    assert not wrong, f"Metadata v1 auto-create: expected error 17 for each, got {wrong}"
    errors = create_topics_v2_errors(module_broker, [(n, 1) for n in BAD_TOPIC_NAMES])
    wrong = {n: errors.get(n) for n in BAD_TOPIC_NAMES if errors.get(n) != INVALID_TOPIC_EXCEPTION}
    assert not wrong, f"CreateTopics v2: expected error 17 for each, got {wrong}"
    escaped = _escaped_paths(module_broker.data_dir)
    assert not escaped, f"invalid topic names reached the file system: {escaped}"
    listed = metadata_v1_topic_errors(module_broker, [])  # v1 empty list: no topics
    assert not any("escape" in (n or "") for n in listed), listed
    assert_answers_api_versions(module_broker)


def test_create_topics_bad_partition_counts(module_broker):
    errors = create_topics_v2_errors(
        module_broker, [("zero-partitions", 0), ("negative-partitions", -5),
                        ("million-partitions", 1_000_000)])
    assert errors["zero-partitions"] == INVALID_PARTITIONS, errors
    assert errors["negative-partitions"] == INVALID_PARTITIONS, errors
    # Kafka has no fixed cap, but creating a million partitions on request is a denial of
    # service; any error is fine, success is not.
    assert errors["million-partitions"] != 0, errors
    assert_answers_api_versions(module_broker)


def test_many_connections_opened_and_dropped(module_broker):
    sockets = [connect(module_broker) for _ in range(200)]
    for index, sock in enumerate(sockets):
        if index % 2:
            sock.sendall(api_versions_request(0, index)[:6])
        sock.close()
    assert_answers_api_versions(module_broker)


def test_broker_still_alive_after_everything(module_broker):
    assert_answers_api_versions(module_broker)
    with connect(module_broker) as sock:
        # Pipelined requests are answered in order on one connection.
        sock.sendall(b"".join(api_versions_request(0, i) for i in range(20)))
        ids = [parse_api_versions_v0(read_response(sock))[0] for _ in range(20)]
    assert ids == list(range(20))
