"""Fixtures for the real-client compatibility suite.

Each test gets a `chronik-server` running as a real process on free loopback ports with a
fresh data directory. The binary comes from $CHRONIK_SERVER_BIN, by default
<repo>/target/debug/chronik-server (build it with
`cargo build -p chronik-server --bin chronik-server`).

A failing test gets the broker's stderr log attached to its report ("broker stderr").
Every test runs under a deadline (default 60 s, `@pytest.mark.deadline(seconds)` to change),
enforced with SIGALRM, so a hung client fails the test instead of the whole CI run.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

# broker/tests/clients/conftest.py -> repo root is three levels above this directory.
REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_BIN = REPO_ROOT / "target" / "debug" / "chronik-server"

STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
DEFAULT_DEADLINE_S = 60.0
LOG_TAIL_BYTES = 64 * 1024


def server_binary() -> Path:
    return Path(os.environ.get("CHRONIK_SERVER_BIN", str(DEFAULT_BIN)))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unique(prefix: str) -> str:
    """A topic or group name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Broker:
    """One chronik-server process; `restart()` keeps the data dir and the ports."""

    def __init__(self, binary: Path, data_dir: Path, log_dir: Path):
        self.binary = binary
        self.data_dir = data_dir
        self.log_dir = log_dir
        self.port = free_port()
        self.metrics_port = free_port()
        while self.metrics_port == self.port:
            self.metrics_port = free_port()
        self.raft_port = free_port()
        while self.raft_port in (self.port, self.metrics_port):
            self.raft_port = free_port()
        self.process: subprocess.Popen | None = None
        self.starts = 0
        self.log_paths: list[Path] = []

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/health"

    def args(self) -> list[str]:
        return [
            str(self.binary),
            "--data-dir", str(self.data_dir),
            "--listen", self.bootstrap,
            "--metrics-listen", f"127.0.0.1:{self.metrics_port}",
            "--raft-listen", f"127.0.0.1:{self.raft_port}",
        ]

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        if not self.binary.is_file():
            pytest.fail(
                f"broker binary {self.binary} not found; build it with "
                "`cargo build -p chronik-server --bin chronik-server` or set CHRONIK_SERVER_BIN",
                pytrace=False,
            )
        self.starts += 1
        log_path = self.log_dir / f"broker-{self.starts}.log"
        self.log_paths.append(log_path)
        env = dict(os.environ)
        env.setdefault("CHRONIK_LOG", "info")
        env["NO_COLOR"] = "1"  # plain text in the log attached to failing tests
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.args(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        port_open = health_ok = False
        last_error = "not tried"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"broker exited with code {self.process.returncode} during start-up\n"
                    + self.log_text()
                )
            if not port_open:
                try:
                    with socket.create_connection((self.host, self.port), timeout=1):
                        port_open = True
                except OSError as error:
                    last_error = f"kafka port: {error}"
            if port_open and not health_ok:
                try:
                    with urllib.request.urlopen(self.health_url, timeout=2) as response:
                        health_ok = response.status == 200
                        last_error = f"/health answered {response.status}"
                except (urllib.error.URLError, OSError) as error:
                    last_error = f"/health: {error}"
            if port_open and health_ok:
                return
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(
            f"broker not ready after {STARTUP_TIMEOUT_S}s ({last_error})\n" + self.log_text()
        )

    def stop(self) -> int | None:
        """SIGTERM, wait up to 10 s, then SIGKILL. Returns the exit code (None if not started)."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self) -> int | None:
        """Graceful stop and start again on the same data dir and ports.

        Returns the exit code of the stopped process; a clean SIGTERM shutdown is 0.
        """
        code = self.stop()
        self.start()
        return code

    def is_alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self, tail_bytes: int = LOG_TAIL_BYTES) -> str:
        parts = []
        for path in self.log_paths:
            try:
                data = path.read_bytes()
            except OSError:
                continue
            if len(data) > tail_bytes:
                data = b"...(truncated)...\n" + data[-tail_bytes:]
            parts.append(f"===== {path.name} =====\n{data.decode('utf-8', 'replace')}")
        return "\n".join(parts)


def _make_broker():
    tmp = tempfile.TemporaryDirectory(prefix="chronik-clients-")
    root = Path(tmp.name)
    (root / "data").mkdir()
    broker = Broker(server_binary(), root / "data", root)
    return tmp, broker


@pytest.fixture
def broker():
    """A fresh broker for one test."""
    tmp, instance = _make_broker()
    try:
        instance.start()
        yield instance
    finally:
        try:
            instance.stop()
        finally:
            instance.kill()
            tmp.cleanup()


@pytest.fixture(scope="module")
def module_broker():
    """One broker shared by every test of a module (tests that pile abuse onto one process)."""
    tmp, instance = _make_broker()
    try:
        instance.start()
        yield instance
    finally:
        try:
            instance.stop()
        finally:
            instance.kill()
            tmp.cleanup()


class DeadlineExceeded(Exception):
    pass


@pytest.fixture(autouse=True)
def _deadline(request):
    marker = request.node.get_closest_marker("deadline")
    seconds = float(marker.args[0]) if marker else DEFAULT_DEADLINE_S

    def expired(signum, frame):
        raise DeadlineExceeded(f"test exceeded its deadline of {seconds:.0f}s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    for name in ("broker", "module_broker"):
        instance = item.funcargs.get(name) if hasattr(item, "funcargs") else None
        if isinstance(instance, Broker):
            state = "alive" if instance.is_alive() else (
                f"exited with {instance.process.returncode}" if instance.process else "never started"
            )
            report.sections.append(
                (f"broker stderr ({report.when}; process {state})", instance.log_text())
            )
