//! Launching `chronik-server` as a local process: finding the binary, free loopback ports,
//! waiting for health, reading its peak memory.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// How long a broker may take to become healthy.
pub const START_TIMEOUT_MS: u64 = 30_000;

/// `--broker-bin`, else `CHRONIK_SERVER_BIN`, else `chronik-server` next to this executable.
pub fn find_broker_binary(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    if let Some(path) = std::env::var_os("CHRONIK_SERVER_BIN") {
        return Ok(PathBuf::from(path));
    }
    let beside = std::env::current_exe()?.with_file_name("chronik-server");
    if beside.exists() {
        return Ok(beside);
    }
    bail!(
        "chronik-server not found next to {}; build it (cargo build --release -p chronik-server) \
         or pass --broker-bin / set CHRONIK_SERVER_BIN",
        std::env::current_exe()?.display()
    )
}

pub fn free_loopback_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub struct BrokerProcess {
    pub kafka_port: u16,
    pub metrics_port: u16,
    pub log_path: PathBuf,
    child: Child,
}

impl BrokerProcess {
    pub fn start(binary: &Path, data_dir: &Path, env: &[(String, String)]) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir)?;
        let kafka_port = free_loopback_port()?;
        let metrics_port = free_loopback_port()?;
        let raft_port = free_loopback_port()?;
        let log_path = data_dir.join("broker.log");
        let log = std::fs::File::create(&log_path)?;
        let child = Command::new(binary)
            .arg("--data-dir")
            .arg(data_dir.join("data"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{kafka_port}"))
            .arg("--metrics-listen")
            .arg(format!("127.0.0.1:{metrics_port}"))
            .arg("--raft-listen")
            .arg(format!("127.0.0.1:{raft_port}"))
            .envs(
                env.iter()
                    .map(|(key, value)| (key.as_str(), value.as_str())),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut process = BrokerProcess {
            kafka_port,
            metrics_port,
            log_path,
            child,
        };
        process.wait_until_healthy()?;
        Ok(process)
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.kafka_port)
    }

    fn wait_until_healthy(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_millis(START_TIMEOUT_MS);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "broker exited during start-up ({status}); see {}",
                    self.log_path.display()
                );
            }
            if http_get(self.metrics_port, "/health").is_ok_and(|body| body.contains("ok")) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "broker not healthy after {START_TIMEOUT_MS} ms; see {}",
            self.log_path.display()
        )
    }

    /// Peak resident memory of the broker process so far (VmHWM), in bytes.
    pub fn peak_resident_bytes(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let line = status
            .lines()
            .find(|line| line.starts_with("VmHWM:"))
            .context("no VmHWM in /proc status")?;
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .context("VmHWM value")?
            .parse()?;
        Ok(kib * 1024)
    }

    /// SIGTERM, then SIGKILL if it does not exit in time.
    pub fn stop(mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A body from the broker's metrics listener.
pub fn http_get(port: u16, path: &str) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (_, body) = response
        .split_once("\r\n\r\n")
        .context("malformed HTTP response")?;
    Ok(body.to_string())
}
