//! The bench's connection to the Docker engine: one tokio runtime for every Docker call (the
//! runner is synchronous), and the engine's API through bollard as testcontainers re-exports
//! it, for what testcontainers does not do (SIGKILL, volumes, networks, listing by label,
//! logs, CPU figures, copying data out). Containers themselves are created, started, stopped,
//! paused and removed through testcontainers.
//!
//! testcontainers reads `DOCKER_HOST` once per process. When the engine speaks an older API
//! than testcontainers does, `connect` starts the version relay (`api_relay`) once and points
//! `DOCKER_HOST` at it before testcontainers' first call.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{anyhow, Context};
use futures_util::StreamExt;
use testcontainers::bollard::query_parameters::{
    DownloadFromContainerOptionsBuilder, KillContainerOptionsBuilder, LogsOptionsBuilder,
    StatsOptionsBuilder,
};
use testcontainers::bollard::{Docker, API_DEFAULT_VERSION};

use super::api_relay::{self, EngineAddress};

/// Worker threads of the runtime Docker calls run on.
const RUNTIME_THREADS: usize = 2;
/// How long the first answer from the engine may take.
const PING_TIMEOUT_MS: u64 = 5_000;

/// The Docker engine, as the bench uses it.
pub struct DockerEngine {
    docker: Docker,
    /// Last, so every call's future is gone before it.
    runtime: tokio::runtime::Runtime,
}

/// The engine's API version, and whether testcontainers goes through the relay.
static RELAY: OnceLock<Result<Option<String>, String>> = OnceLock::new();

impl DockerEngine {
    /// Connects to the engine named by `DOCKER_HOST` (default: the local socket) and agrees on
    /// an API version with it. Fails with a plain message when no engine answers.
    pub fn connect() -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(RUNTIME_THREADS)
            .thread_name("docker")
            .enable_all()
            .build()?;
        let original_host = original_docker_host();
        let docker = Docker::connect_with_host(&original_host)
            .with_context(|| format!("docker not available at {original_host}"))?;
        let docker = runtime
            .block_on(async {
                tokio::time::timeout(
                    Duration::from_millis(PING_TIMEOUT_MS),
                    docker.negotiate_version(),
                )
                .await
            })
            .map_err(|_| anyhow!("docker not available at {original_host}: no answer"))?
            .with_context(|| format!("docker not available at {original_host}"))?;
        Ok(Self { docker, runtime })
    }

    /// Makes sure testcontainers can talk to this engine: when the engine is older than the
    /// API testcontainers speaks, starts the relay (once per process) and points it there.
    pub fn prepare_testcontainers(&self) -> anyhow::Result<()> {
        let engine_version = self.docker.client_version();
        let relay = RELAY.get_or_init(|| {
            if engine_version >= *API_DEFAULT_VERSION {
                return Ok(None);
            }
            start_relay(&original_docker_host(), &engine_version.to_string())
                .map(Some)
                .map_err(|error| format!("{error:#}"))
        });
        if let Err(error) = relay {
            anyhow::bail!("starting the Docker API relay: {error}");
        }
        Ok(())
    }

    /// The engine's API.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// Runs a Docker call to its end on the engine's runtime.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// The version of the API spoken with the engine, and the relay's address if testcontainers
    /// goes through it.
    pub fn describe(&self) -> String {
        let version = self.docker.client_version();
        match RELAY.get() {
            Some(Ok(Some(relay))) => format!("Docker API {version} (testcontainers via {relay})"),
            _ => format!("Docker API {version}"),
        }
    }

    /// SIGKILL to a container's process.
    pub fn kill(&self, container: &str) -> anyhow::Result<()> {
        let options = KillContainerOptionsBuilder::new().signal("SIGKILL").build();
        self.block_on(self.docker.kill_container(container, Some(options)))
            .with_context(|| format!("docker kill {container}"))
    }

    /// Whether the container's process runs (paused counts as running), and its exit code if not.
    pub fn exit_code(&self, container: &str) -> anyhow::Result<Option<i64>> {
        let inspected = self
            .block_on(self.docker.inspect_container(container, None))
            .with_context(|| format!("docker inspect {container}"))?;
        let state = inspected.state.unwrap_or_default();
        if state.running == Some(true) {
            return Ok(None);
        }
        Ok(Some(state.exit_code.unwrap_or(-1)))
    }

    /// The container's address on `network` (it changes when the container starts again).
    pub fn address_on(&self, container: &str, network: &str) -> anyhow::Result<String> {
        let inspected = self
            .block_on(self.docker.inspect_container(container, None))
            .with_context(|| format!("docker inspect {container}"))?;
        inspected
            .network_settings
            .and_then(|settings| settings.networks)
            .and_then(|mut networks| networks.remove(network))
            .and_then(|endpoint| endpoint.ip_address)
            .filter(|address| !address.is_empty())
            .with_context(|| format!("container {container} has no address on {network}"))
    }

    /// Everything the container wrote to standard output and error, in order.
    pub fn logs(&self, container: &str) -> anyhow::Result<Vec<u8>> {
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .follow(false)
            .build();
        self.block_on(async {
            let mut stream = self.docker.logs(container, Some(options));
            let mut bytes = Vec::new();
            while let Some(item) = stream.next().await {
                let item = item.with_context(|| format!("docker logs {container}"))?;
                bytes.extend_from_slice(item.as_ref());
            }
            Ok(bytes)
        })
    }

    /// CPU seconds the container's processes have used since it started (from the engine's
    /// cgroup accounting; user and system together).
    pub fn cpu_seconds(&self, container: &str) -> Option<f64> {
        let options = StatsOptionsBuilder::new()
            .stream(false)
            .one_shot(true)
            .build();
        self.block_on(async {
            let mut stream = self.docker.stats(container, Some(options));
            let stats = stream.next().await?.ok()?;
            let nanoseconds = stats.cpu_stats?.cpu_usage?.total_usage?;
            Some(nanoseconds as f64 / 1e9)
        })
    }

    /// The directory `path` of a container (running or not) as a tar archive.
    pub fn download(&self, container: &str, path: &str) -> anyhow::Result<Vec<u8>> {
        let options = DownloadFromContainerOptionsBuilder::new()
            .path(path)
            .build();
        self.block_on(async {
            let mut stream = self
                .docker
                .download_from_container(container, Some(options));
            let mut bytes = Vec::new();
            while let Some(chunk) = stream.next().await {
                bytes.extend_from_slice(
                    &chunk.with_context(|| format!("copying {path} out of {container}"))?,
                );
            }
            Ok(bytes)
        })
    }
}

/// `DOCKER_HOST` as the bench found it (before any relay), or the local socket.
fn original_docker_host() -> String {
    static ORIGINAL: OnceLock<String> = OnceLock::new();
    ORIGINAL
        .get_or_init(|| {
            std::env::var("DOCKER_HOST")
                .unwrap_or_else(|_| "unix:///var/run/docker.sock".to_string())
        })
        .clone()
}

/// Starts the relay on its own thread and points testcontainers at it; returns its address.
fn start_relay(original_host: &str, engine_version: &str) -> anyhow::Result<String> {
    let engine = EngineAddress::parse(original_host)?;
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .context("binding the Docker API relay on 127.0.0.1")?;
    listener.set_nonblocking(true)?;
    let address = listener.local_addr()?;
    let version = engine_version.to_string();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("docker-api-relay".into())
        .spawn(move || {
            runtime.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => api_relay::serve(listener, engine, version).await,
                    Err(error) => tracing::error!(%error, "the Docker API relay cannot listen"),
                }
            })
        })?;
    let host = format!("tcp://{address}");
    // Read by testcontainers at its first call, which has not happened yet in this process.
    std::env::set_var("DOCKER_HOST", &host);
    Ok(host)
}
