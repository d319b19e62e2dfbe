"""kcat (Debian's package, librdkafka inside) as a subprocess: metadata, keyed produce,
every compression codec, consume from the beginning, offset lookup by timestamp."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time

import pytest

from conftest import unique

KCAT = shutil.which("kcat")
CODECS = ["gzip", "snappy", "lz4", "zstd"]

def kcat(broker, *args, input_text: str | None = None, timeout: float = 30) -> str:
    assert KCAT is not None, "kcat is not installed (ci/install-deps installs it)"
    command = [KCAT, "-b", broker.bootstrap, "-X", "socket.timeout.ms=10000", *args]
    result = subprocess.run(
        command,
        input=input_text.encode() if input_text is not None else None,
        stdin=None if input_text is not None else subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
    )
    stdout = result.stdout.decode("utf-8", "replace")
    stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 0, (
        f"{' '.join(command)} exited {result.returncode}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    )
    return stdout


def consume_all(broker, topic: str, fmt: str = "%k:%s\\n") -> list[str]:
    # -e: exit at the end of every partition; -f: key:value per line.
    out = kcat(broker, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", fmt)
    return out.splitlines()


def produce_lines(broker, topic: str, lines: list[str], *extra: str) -> None:
    kcat(broker, "-P", "-t", topic, *extra, input_text="".join(line + "\n" for line in lines))


def test_metadata_lists_topic(broker):
    topic = unique("kcat-meta")
    produce_lines(broker, topic, ["a", "b"])  # auto-creates the topic (1 partition)
    listing = kcat(broker, "-L")
    assert f'topic "{topic}"' in listing, listing
    assert re.search(rf'topic "{re.escape(topic)}" with 1 partitions', listing), listing
    assert "broker 1 at 127.0.0.1:" in listing, listing

    described = json.loads(kcat(broker, "-L", "-J", "-t", topic))
    topics = {t["topic"]: t for t in described["topics"]}
    assert topic in topics, described
    partitions = topics[topic]["partitions"]
    assert [p["partition"] for p in partitions] == [0], described
    assert partitions[0]["leader"] == described["brokers"][0]["id"], described
    assert "error" not in topics[topic] or not topics[topic]["error"], described


def test_keyed_produce_and_consume_exactly(broker):
    topic = unique("kcat-keys")
    lines = [f"key-{i % 7}:value {i} with spaces, ünïcødé and : colons" for i in range(200)]
    produce_lines(broker, topic, lines, "-K:")
    assert consume_all(broker, topic) == lines

    # Keys and values read back separately match as well.
    keys = consume_all(broker, topic, fmt="%k\\n")
    assert keys == [line.split(":", 1)[0] for line in lines]
    offsets = consume_all(broker, topic, fmt="%p %o\\n")
    assert offsets == [f"0 {i}" for i in range(len(lines))]


@pytest.mark.parametrize("codec", CODECS)
def test_compressed_produce_round_trips(broker, codec):
    topic = unique(f"kcat-{codec}")
    # Compressible, and large enough that librdkafka batches many messages per request.
    lines = [f"k{i % 5}:{codec}-{i}-" + "abcdefgh" * (i % 50) for i in range(500)]
    produce_lines(broker, topic, lines, "-K:", "-z", codec, "-X", "linger.ms=50")
    assert consume_all(broker, topic) == lines


def _offset_at(broker, topic: str, timestamp_ms: int) -> int:
    out = kcat(broker, "-Q", "-t", f"{topic}:0:{timestamp_ms}")
    match = re.search(rf"{re.escape(topic)} \[0\] offset (-?\d+)", out)
    assert match, f"unexpected kcat -Q output: {out!r}"
    return int(match.group(1))


def test_offset_lookup_by_timestamp(broker):
    topic = unique("kcat-times")
    produce_lines(broker, topic, [f"early-{i}" for i in range(5)])
    time.sleep(0.05)
    middle_ms = int(time.time() * 1000)
    time.sleep(0.05)
    produce_lines(broker, topic, [f"late-{i}" for i in range(7)])

    assert _offset_at(broker, topic, 0) == 0
    assert _offset_at(broker, topic, middle_ms) == 5
    # No message at or after a timestamp far in the future: Kafka answers offset -1.
    assert _offset_at(broker, topic, int(time.time() * 1000) + 3_600_000) == -1
    # The special timestamps: -1 latest (the log end), -2 earliest.
    assert _offset_at(broker, topic, -1) == 12
    assert _offset_at(broker, topic, -2) == 0
