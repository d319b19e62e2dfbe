//! One container of a run (a node or the fault proxy): how it is described, and starting,
//! stopping, pausing and removing it through testcontainers.

use std::time::Duration;

use anyhow::Context;
use testcontainers::core::{ContainerPort, Mount};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use super::cleanup::RunIdentity;
use super::engine::DockerEngine;

/// How long a clean stop may take before Docker kills the process.
pub const STOP_TIMEOUT_SECONDS: i32 = 15;
/// How long creating and starting a container may take.
const STARTUP_TIMEOUT_MS: u64 = 60_000;

/// Everything a container is created with; kept to create it again (after a wipe).
#[derive(Clone, Debug)]
pub struct ContainerPlan {
    pub run: RunIdentity,
    /// `repository:tag`.
    pub image: String,
    /// Container name (how others on the network reach it).
    pub name: String,
    pub hostname: String,
    pub network: String,
    pub command: Vec<String>,
    pub env: Vec<(String, String)>,
    /// (volume, path in the container).
    pub volumes: Vec<(String, String)>,
    /// (host port on 127.0.0.1, container port).
    pub published_ports: Vec<(u16, u16)>,
}

/// A created container.
pub type Container = ContainerAsync<GenericImage>;

impl ContainerPlan {
    /// Creates and starts the container.
    pub fn start(&self, engine: &DockerEngine) -> anyhow::Result<Container> {
        let (repository, tag) = self
            .image
            .split_once(':')
            .with_context(|| format!("image `{}` has no tag", self.image))?;
        let mut request = GenericImage::new(repository, tag)
            .with_container_name(&self.name)
            .with_hostname(&self.hostname)
            .with_network(&self.network)
            .with_labels(self.run.labels())
            .with_cmd(self.command.clone())
            .with_startup_timeout(Duration::from_millis(STARTUP_TIMEOUT_MS));
        for (key, value) in &self.env {
            request = request.with_env_var(key, value);
        }
        for (volume, path) in &self.volumes {
            request = request.with_mount(Mount::volume_mount(volume, path));
        }
        for &(host_port, container_port) in &self.published_ports {
            request = request.with_mapped_port(host_port, ContainerPort::Tcp(container_port));
        }
        // Published on the loopback only: testcontainers binds every interface by default.
        let request = request.with_host_config_modifier(|host_config| {
            for bindings in host_config
                .port_bindings
                .iter_mut()
                .flat_map(|map| map.values_mut())
            {
                for binding in bindings.iter_mut().flatten() {
                    binding.host_ip = Some("127.0.0.1".to_string());
                }
            }
        });
        engine
            .block_on(request.start())
            .with_context(|| format!("starting container {}", self.name))
    }
}

/// Starts a created, stopped or killed container again.
pub fn restart(engine: &DockerEngine, container: &Container) -> anyhow::Result<()> {
    engine
        .block_on(container.start())
        .with_context(|| format!("docker start {}", container.id()))
}

/// SIGTERM, then SIGKILL after `STOP_TIMEOUT_SECONDS`.
pub fn stop(engine: &DockerEngine, container: &Container) -> anyhow::Result<()> {
    engine
        .block_on(container.stop_with_timeout(Some(STOP_TIMEOUT_SECONDS)))
        .with_context(|| format!("docker stop {}", container.id()))
}

/// `docker pause` (`true`) or `docker unpause` (`false`).
pub fn set_paused(
    engine: &DockerEngine,
    container: &Container,
    paused: bool,
) -> anyhow::Result<()> {
    let result = if paused {
        engine.block_on(container.pause())
    } else {
        engine.block_on(container.unpause())
    };
    result.with_context(|| {
        let verb = if paused { "pause" } else { "unpause" };
        format!("docker {verb} {}", container.id())
    })
}

/// Removes the container (killing it if it runs).
pub fn remove(engine: &DockerEngine, container: Container) -> anyhow::Result<()> {
    let id = container.id().to_string();
    engine
        .block_on(container.rm())
        .with_context(|| format!("docker rm {id}"))
}
