//! What a run creates in Docker, how it is named and labelled, and how it is removed.
//!
//! Every container, network and volume of a run carries the label `chronik.run=<run id>` and
//! `chronik.bench-pid=<pid>` (the bench process that made it). The cluster removes its run's
//! resources at teardown and in `Drop` (so a panic removes them too; Ctrl-C ends the run
//! through the runner's normal teardown). A bench killed outright cannot clean up: the next
//! docker run removes every run whose bench process no longer exists (`remove_leftovers`).

use std::collections::HashMap;

use anyhow::Context;
use testcontainers::bollard::models::{
    ContainerSummary, Network, NetworkCreateRequest, Volume, VolumeCreateRequest,
};
use testcontainers::bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder,
};
use testcontainers::bollard::Docker;

use super::engine::DockerEngine;

/// Names the run a resource belongs to.
pub const RUN_LABEL: &str = "chronik.run";
/// The process id of the bench that created a resource.
pub const BENCH_PID_LABEL: &str = "chronik.bench-pid";

/// One run's identity in Docker: `<pid>-<random>`, unique on the machine.
#[derive(Clone, Debug)]
pub struct RunIdentity {
    pub id: String,
}

impl RunIdentity {
    pub fn new() -> Self {
        Self {
            id: format!("{}-{:08x}", std::process::id(), rand::random::<u32>()),
        }
    }

    /// The labels every resource of the run carries.
    pub fn labels(&self) -> HashMap<String, String> {
        HashMap::from([
            (RUN_LABEL.to_string(), self.id.clone()),
            (BENCH_PID_LABEL.to_string(), std::process::id().to_string()),
        ])
    }

    /// The run's private network.
    pub fn network(&self) -> String {
        format!("chronik-{}", self.id)
    }

    /// A container's name, which is also how other containers on the network reach it.
    pub fn container(&self, role: &str) -> String {
        format!("chronik-{}-{role}", self.id)
    }

    /// A volume's name.
    pub fn volume(&self, role: &str) -> String {
        format!("chronik-{}-{role}", self.id)
    }
}

impl Default for RunIdentity {
    fn default() -> Self {
        Self::new()
    }
}

/// The names of a set of resources, by kind.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub containers: Vec<String>,
    pub networks: Vec<String>,
    pub volumes: Vec<String>,
}

impl Resources {
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty() && self.networks.is_empty() && self.volumes.is_empty()
    }
}

/// Creates the run's bridge network.
pub fn create_network(engine: &DockerEngine, run: &RunIdentity) -> anyhow::Result<()> {
    let request = NetworkCreateRequest {
        name: run.network(),
        driver: Some("bridge".into()),
        labels: Some(run.labels()),
        ..Default::default()
    };
    engine
        .block_on(engine.docker().create_network(request))
        .with_context(|| format!("creating network {}", run.network()))?;
    Ok(())
}

/// Creates an empty labelled volume.
pub fn create_volume(engine: &DockerEngine, run: &RunIdentity, name: &str) -> anyhow::Result<()> {
    let request = VolumeCreateRequest {
        name: Some(name.to_string()),
        labels: Some(run.labels()),
        ..Default::default()
    };
    engine
        .block_on(engine.docker().create_volume(request))
        .with_context(|| format!("creating volume {name}"))?;
    Ok(())
}

/// Removes one volume (its containers must be gone).
pub fn remove_volume(engine: &DockerEngine, name: &str) -> anyhow::Result<()> {
    let options = RemoveVolumeOptionsBuilder::new().force(true).build();
    engine
        .block_on(engine.docker().remove_volume(name, Some(options)))
        .with_context(|| format!("removing volume {name}"))
}

/// What the engine lists as carrying `label` (`key` or `key=value`).
struct Listed {
    containers: Vec<ContainerSummary>,
    networks: Vec<Network>,
    volumes: Vec<Volume>,
}

async fn list_labelled(docker: &Docker, label: &str) -> anyhow::Result<Listed> {
    let filters = HashMap::from([("label".to_string(), vec![label.to_string()])]);
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .context("listing containers")?;
    let networks = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::new().filters(&filters).build(),
        ))
        .await
        .context("listing networks")?;
    let volumes = docker
        .list_volumes(Some(
            ListVolumesOptionsBuilder::new().filters(&filters).build(),
        ))
        .await
        .context("listing volumes")?
        .volumes
        .unwrap_or_default();
    Ok(Listed {
        containers,
        networks,
        volumes,
    })
}

/// The resources carrying `label` (`key=value`).
pub async fn labelled(docker: &Docker, label: &str) -> anyhow::Result<Resources> {
    let listed = list_labelled(docker, label).await?;
    Ok(Resources {
        containers: listed
            .containers
            .into_iter()
            .filter_map(|container| container.id)
            .collect(),
        networks: listed
            .networks
            .into_iter()
            .filter_map(|network| network.name)
            .collect(),
        volumes: listed
            .volumes
            .into_iter()
            .map(|volume| volume.name)
            .collect(),
    })
}

/// Removes every container (with its anonymous volumes), network and volume carrying
/// `label`, in that order; returns what could not be removed.
pub async fn remove_labelled(docker: &Docker, label: &str) -> anyhow::Result<Resources> {
    let found = labelled(docker, label).await?;
    let force = RemoveContainerOptionsBuilder::new()
        .force(true)
        .v(true)
        .build();
    for container in &found.containers {
        let _ = docker
            .remove_container(container, Some(force.clone()))
            .await;
    }
    for network in &found.networks {
        let _ = docker.remove_network(network).await;
    }
    let force_volume = RemoveVolumeOptionsBuilder::new().force(true).build();
    for volume in &found.volumes {
        let _ = docker
            .remove_volume(volume, Some(force_volume.clone()))
            .await;
    }
    labelled(docker, label).await
}

/// The resources carrying `label` (`key=value`), from synchronous code.
pub fn resources_labelled(engine: &DockerEngine, label: &str) -> anyhow::Result<Resources> {
    engine.block_on(labelled(engine.docker(), label))
}

/// Removes everything of the run `run_id`; an error names what is left.
pub fn remove_run(engine: &DockerEngine, run_id: &str) -> anyhow::Result<()> {
    let label = format!("{RUN_LABEL}={run_id}");
    let left = engine.block_on(remove_labelled(engine.docker(), &label))?;
    if !left.is_empty() {
        anyhow::bail!("left behind by run {run_id}: {left:?}");
    }
    Ok(())
}

/// Removes the resources of runs whose bench process no longer exists; returns their run ids.
pub fn remove_leftovers(engine: &DockerEngine) -> anyhow::Result<Vec<String>> {
    let docker = engine.docker();
    let mut abandoned: Vec<String> = Vec::new();
    engine.block_on(async {
        let listed = list_labelled(docker, RUN_LABEL).await?;
        let labels = (listed.containers.into_iter())
            .filter_map(|container| container.labels)
            .chain(
                listed
                    .networks
                    .into_iter()
                    .filter_map(|network| network.labels),
            )
            .chain(listed.volumes.into_iter().map(|volume| volume.labels));
        for labels in labels {
            let (Some(run), Some(pid)) = (labels.get(RUN_LABEL), labels.get(BENCH_PID_LABEL))
            else {
                continue;
            };
            if !process_exists(pid) && !abandoned.contains(run) {
                abandoned.push(run.clone());
            }
        }
        for run in &abandoned {
            remove_labelled(docker, &format!("{RUN_LABEL}={run}")).await?;
        }
        anyhow::Ok(())
    })?;
    Ok(abandoned)
}

/// Whether a process with this id runs on this machine.
fn process_exists(pid: &str) -> bool {
    pid.parse::<u32>()
        .is_ok_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_names_its_resources_after_its_id_and_labels_them() {
        let run = RunIdentity {
            id: "42-0000abcd".into(),
        };
        assert_eq!(run.network(), "chronik-42-0000abcd");
        assert_eq!(run.container("node-1"), "chronik-42-0000abcd-node-1");
        assert_eq!(run.volume("node-1-data"), "chronik-42-0000abcd-node-1-data");
        assert_eq!(run.labels()[RUN_LABEL], "42-0000abcd");
        assert_eq!(
            run.labels()[BENCH_PID_LABEL],
            std::process::id().to_string()
        );
    }

    #[test]
    fn only_a_live_process_counts_as_existing() {
        assert!(process_exists(&std::process::id().to_string()));
        assert!(!process_exists("not-a-pid"));
        // Above the kernel's pid_max (at most 2^22).
        assert!(!process_exists("99999999"));
    }
}
