//! Launching `chronik-server` as local processes: finding the binary, free loopback ports,
//! a cluster's `--peers`, waiting for health, kill/restart, peak memory.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// How long a broker may take to become healthy.
pub const START_TIMEOUT_MS: u64 = 30_000;

/// Lines of a broker's log quoted when it exits before it serves.
const EXIT_LOG_LINES: usize = 15;

/// The last `count` lines of the file at `path`, or why they cannot be read.
fn last_lines(path: &Path, count: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(count)..].join("\n")
        }
        Err(error) => format!("(cannot read {}: {error})", path.display()),
    }
}

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

/// A free port in [`STABLE_PORTS`] on 127.0.0.1, never one this process handed out before: every
/// listener of a run (brokers', proxies') takes its port from here.
pub fn free_loopback_port() -> anyhow::Result<u16> {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut handed_out = HANDED_OUT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for attempt in 0..STABLE_PORT_ATTEMPTS {
        let port = stable_port_candidate(attempt);
        // Never the same port twice in one bench process: the first may not be bound yet.
        if !handed_out.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed_out.push(port);
            return Ok(port);
        }
    }
    anyhow::bail!("no free port in {STABLE_PORTS:?} after {STABLE_PORT_ATTEMPTS} tries")
}

/// Ports a run binds again after a restart or a heal (brokers' listeners, proxies') lie below
/// the kernel's ephemeral range (32768 and up by default): a port from that range may, while
/// its owner is down, become some outgoing connection's local port.
pub const STABLE_PORTS: std::ops::Range<u16> = 20_000..32_000;
/// Candidates tried before giving up.
pub const STABLE_PORT_ATTEMPTS: u32 = 50;

/// A port in [`STABLE_PORTS`], spread by the clock, the process and the attempt, so that
/// concurrent runs rarely try the same one.
fn stable_port_candidate(attempt: u32) -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    let mixed = nanos
        .wrapping_mul(2_654_435_761)
        .wrapping_add(std::process::id().wrapping_mul(40_503))
        .wrapping_add(attempt.wrapping_mul(7_919));
    let span = u32::from(STABLE_PORTS.end - STABLE_PORTS.start);
    STABLE_PORTS.start + (mixed % span) as u16
}

/// Everything a broker process is started with; the ports stay the same across restarts.
#[derive(Clone, Debug)]
pub struct BrokerLaunch {
    pub binary: PathBuf,
    pub node_id: u64,
    pub kafka_port: u16,
    pub metrics_port: u16,
    pub raft_port: u16,
    /// What the broker tells clients to connect to (default: its own listener).
    pub advertised_address: Option<String>,
    /// `--peers`: how this node dials each other node (possibly through a proxy).
    pub peers: String,
    /// Holds the broker's `data/` directory.
    pub directory: PathBuf,
    pub log_path: PathBuf,
    pub env: Vec<(String, String)>,
    pub extra_args: Vec<String>,
}

pub struct BrokerProcess {
    pub node_id: u64,
    pub kafka_port: u16,
    pub metrics_port: u16,
    pub raft_port: u16,
    pub directory: PathBuf,
    pub log_path: PathBuf,
    launch: BrokerLaunch,
    child: Option<Child>,
}

impl BrokerProcess {
    /// One broker: a one-node cluster.
    pub fn start(
        binary: &Path,
        directory: &Path,
        env: &[(String, String)],
    ) -> anyhow::Result<Self> {
        let mut cluster = start_cluster(binary, directory, 1, env)?;
        Ok(cluster.remove(0))
    }

    /// A broker that is not started yet (see `spawn`).
    pub fn new(launch: BrokerLaunch) -> Self {
        Self {
            node_id: launch.node_id,
            kafka_port: launch.kafka_port,
            metrics_port: launch.metrics_port,
            raft_port: launch.raft_port,
            directory: launch.directory.clone(),
            log_path: launch.log_path.clone(),
            launch,
            child: None,
        }
    }

    /// The broker's own Kafka listener.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.kafka_port)
    }

    /// The broker's data directory (what `wipe` deletes).
    pub fn data_directory(&self) -> PathBuf {
        self.directory.join("data")
    }

    /// Starts the process (without waiting for it to serve). Its standard error is appended
    /// to `log_path`. The broker gets its own process group, so a Ctrl-C meant for the bench
    /// does not reach it (the bench stops it itself), and the kernel kills it if the bench
    /// dies without tearing down (`PR_SET_PDEATHSIG`; it follows the spawning thread, so
    /// brokers are spawned from a thread that lives as long as the cluster).
    pub fn spawn(&mut self) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.directory)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)?;
        let launch = &self.launch;
        let mut command = Command::new(&launch.binary);
        command
            .arg("--data-dir")
            .arg(self.data_directory())
            .arg("--listen")
            .arg(self.bootstrap())
            .arg("--metrics-listen")
            .arg(format!("127.0.0.1:{}", self.metrics_port))
            .arg("--raft-listen")
            .arg(format!("127.0.0.1:{}", self.raft_port))
            .arg("--node-id")
            .arg(self.node_id.to_string())
            .arg("--peers")
            .arg(&launch.peers);
        if let Some(advertised) = &launch.advertised_address {
            command.arg("--advertised-addr").arg(advertised);
        }
        command
            .args(&launch.extra_args)
            .envs(
                launch
                    .env
                    .iter()
                    .map(|(key, value)| (key.as_str(), value.as_str())),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .process_group(0);
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", launch.binary.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Whether the process is running (or paused).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The exit status, if the process ended on its own since it was spawned. The process
    /// then counts as not running.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        Some(status)
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`).
    pub fn set_paused(&mut self, paused: bool) -> anyhow::Result<()> {
        let pid = self.pid().context("broker not running")?;
        let signal = if paused { libc::SIGSTOP } else { libc::SIGCONT };
        // SAFETY: kill(2) on a child we own and have not reaped.
        if unsafe { libc::kill(pid as libc::pid_t, signal) } != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        Ok(())
    }

    /// Whether `/health` answers 200 now.
    pub fn is_healthy(&self) -> bool {
        http_get(self.metrics_port, "/health").is_ok_and(|body| body.contains("ok"))
    }

    /// The broker's Prometheus metrics.
    pub fn metrics(&self) -> anyhow::Result<String> {
        http_get(self.metrics_port, "/metrics")
    }

    pub fn wait_until_healthy(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_millis(START_TIMEOUT_MS);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "broker {} exited ({status}); see {}; its last lines:\n{}",
                        self.node_id,
                        self.log_path.display(),
                        last_lines(&self.log_path, EXIT_LOG_LINES)
                    );
                }
            }
            if self.is_healthy() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "broker {} not healthy after {START_TIMEOUT_MS} ms; see {}",
            self.node_id,
            self.log_path.display()
        )
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Peak resident memory of the broker process so far (VmHWM), in bytes.
    pub fn peak_resident_bytes(&self) -> anyhow::Result<u64> {
        self.status_kib("VmHWM:").map(|kib| kib * 1024)
    }

    /// Current resident memory (VmRSS), in bytes.
    pub fn resident_bytes(&self) -> anyhow::Result<u64> {
        self.status_kib("VmRSS:").map(|kib| kib * 1024)
    }

    fn status_kib(&self, field: &str) -> anyhow::Result<u64> {
        let pid = self.pid().context("broker not running")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let line = status
            .lines()
            .find(|line| line.starts_with(field))
            .context("no such field")?;
        Ok(line.split_whitespace().nth(1).context("value")?.parse()?)
    }

    /// CPU seconds (user + system) the process has used, from `/proc/<pid>/stat`.
    pub fn cpu_seconds(&self) -> Option<f64> {
        let pid = self.pid()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name (which may hold spaces) start at field 3.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let user_ticks: f64 = fields.get(11)?.parse().ok()?;
        let system_ticks: f64 = fields.get(12)?.parse().ok()?;
        // SAFETY: sysconf has no preconditions.
        let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        Some((user_ticks + system_ticks) / ticks_per_second)
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a killed or stopped broker again on the same data and ports.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.spawn()?;
        self.wait_until_healthy()
    }

    /// SIGTERM, then SIGKILL if it does not exit in time. A paused broker is resumed first,
    /// so it can act on the signal.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // SAFETY: kill(2) on a child we own and have not reaped.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGCONT);
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill()?;
        child.wait()?;
        Ok(())
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `nodes` brokers as one cluster under `directory` (node ids 1..=nodes) and waits
/// until all serve.
pub fn start_cluster(
    binary: &Path,
    directory: &Path,
    nodes: u64,
    env: &[(String, String)],
) -> anyhow::Result<Vec<BrokerProcess>> {
    let raft_ports: Vec<u16> = (0..nodes)
        .map(|_| free_loopback_port())
        .collect::<Result<_, _>>()?;
    let peers = raft_ports
        .iter()
        .enumerate()
        .map(|(index, port)| format!("{}=127.0.0.1:{port}", index + 1))
        .collect::<Vec<_>>()
        .join(",");
    let mut brokers = Vec::new();
    for node_id in 1..=nodes {
        let node_directory = directory.join(format!("node-{node_id}"));
        brokers.push(BrokerProcess::new(BrokerLaunch {
            binary: binary.to_path_buf(),
            node_id,
            kafka_port: free_loopback_port()?,
            metrics_port: free_loopback_port()?,
            raft_port: raft_ports[node_id as usize - 1],
            advertised_address: None,
            peers: peers.clone(),
            directory: node_directory,
            log_path: directory.join(format!("node-{node_id}.log")),
            env: env.to_vec(),
            extra_args: Vec::new(),
        }));
    }
    for broker in &mut brokers {
        broker.spawn()?;
    }
    for broker in &mut brokers {
        broker.wait_until_healthy()?;
    }
    Ok(brokers)
}

pub fn bootstrap(brokers: &[BrokerProcess]) -> String {
    brokers
        .iter()
        .map(BrokerProcess::bootstrap)
        .collect::<Vec<_>>()
        .join(",")
}

/// A body from a broker's metrics listener.
pub fn http_get(port: u16, path: &str) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("malformed HTTP response")?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!("{path}: {}", head.lines().next().unwrap_or_default());
    }
    Ok(body.to_string())
}
