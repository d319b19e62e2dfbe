//! The docker runtime: each node a container of the local build's image (`image`), started
//! and stopped through testcontainers, on a private network of its own per run, each node with
//! its own host name and data volume; the fault proxy (the bench's own Toxiproxy-API server)
//! a container on the same network, driven through its published API exactly as the process
//! runtime drives the built-in one. `wiring` says who listens and dials where; `cleanup`
//! how a run's containers, network and volumes are found and removed.
//!
//! Faults: kill is `docker kill` (SIGKILL), stop is `docker stop` (SIGTERM, SIGKILL after
//! 15 s), restart starts the same container on the same volume, pause and resume are
//! `docker pause` / `unpause`, and wipe kills the node, removes its container, replaces its
//! volume with an empty one and starts a new container.

mod api_relay;
pub mod cleanup;
pub mod engine;
pub mod image;
mod links;
mod node;
pub mod wiring;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::{Cluster, NodeState};
use crate::broker_process::{http_get, START_TIMEOUT_MS};
use crate::network::FaultProxy;
use crate::scenario::NodeId;
use cleanup::RunIdentity;
use engine::DockerEngine;
use node::{Container, ContainerPlan};
use wiring::Wiring;

/// How often the containers' states are read for exits nobody caused. The runner asks every
/// 50 ms; an inspection per node that often would cost the engine CPU the nodes need. An exit
/// is reported at the next read, so none is missed: the run's last call comes after the
/// drain and final read, seconds after the measured window's.
const EXIT_CHECK_INTERVAL_MS: u64 = 1_000;

/// What a docker cluster is started with.
pub struct DockerClusterSpec<'a> {
    /// The chronik-server binary the image is built from (default: next to chronik-bench).
    pub broker_bin: Option<&'a Path>,
    pub nodes: u32,
    /// Receives the logs and, for a run that did not pass, each node's data (`node-N/`).
    pub directory: &'a Path,
    /// Environment for every node.
    pub env: Vec<(String, String)>,
    /// Arguments for every node.
    pub extra_args: Vec<String>,
    /// Called with what setup is doing (the image build can take a while).
    pub note: &'a mut dyn FnMut(&str),
}

struct Node {
    plan: ContainerPlan,
    container: Option<Container>,
    state: NodeState,
    metrics_port: u16,
    /// Logs of this node's removed containers (a wipe replaces the container).
    earlier_logs: Vec<u8>,
}

pub struct DockerCluster {
    wiring: Wiring,
    /// The cluster's own handle on the proxy: it points links at nodes as they start and stop.
    fault_proxy: Option<FaultProxy>,
    nodes: BTreeMap<NodeId, Node>,
    proxy: Option<Container>,
    directory: PathBuf,
    torn_down: bool,
    /// When the containers' states were last read for unexpected exits.
    last_exit_check: Option<Instant>,
    /// Last: every container handle above needs its runtime while it is dropped.
    engine: DockerEngine,
}

/// Whether a Docker engine answers; the reason if not.
pub fn engine_available() -> anyhow::Result<()> {
    DockerEngine::connect().map(|_| ())
}

impl DockerCluster {
    /// `docker pause` (or `unpause`) of a running (or paused) node.
    fn set_paused(&mut self, node_id: NodeId, paused: bool) -> anyhow::Result<()> {
        let engine = &self.engine;
        let node = node_in(&mut self.nodes, node_id)?;
        let (from, to, refusal) = if paused {
            (NodeState::Running, NodeState::Paused, "is not running")
        } else {
            (NodeState::Paused, NodeState::Running, "is not paused")
        };
        match &node.container {
            Some(container) if node.state == from => {
                node::set_paused(engine, container, paused)?;
                node.state = to;
                Ok(())
            }
            _ => bail!("node {node_id} {refusal}"),
        }
    }

    /// Builds (or reuses) the image, removes what dead benches left behind, creates the run's
    /// network and volumes, starts the fault proxy and every link's proxy, then the nodes;
    /// returns once every node serves, with the handle on the proxy's API.
    pub fn start(spec: DockerClusterSpec<'_>) -> anyhow::Result<(Self, FaultProxy)> {
        let engine = DockerEngine::connect()?;
        engine.prepare_testcontainers()?;
        let removed = cleanup::remove_leftovers(&engine)?;
        if !removed.is_empty() {
            (spec.note)(&format!(
                "setup: removed docker resources left by ended runs {}",
                removed.join(", ")
            ));
        }
        (spec.note)("setup: building the image of the local build (or reusing it)");
        let image = image::ensure_image(&engine, spec.broker_bin)?;
        (spec.note)(&format!(
            "setup: image {} ({}); {}",
            image.tag,
            if image.built { "built" } else { "reused" },
            engine.describe()
        ));
        let wiring = Wiring::new(RunIdentity::new(), spec.nodes)?;
        let mut cluster = Self {
            wiring: wiring.clone(),
            fault_proxy: None,
            nodes: BTreeMap::new(),
            proxy: None,
            directory: spec.directory.to_path_buf(),
            torn_down: false,
            last_exit_check: None,
            engine,
        };
        std::fs::create_dir_all(&cluster.directory)
            .with_context(|| format!("creating {}", cluster.directory.display()))?;
        let run = &wiring.run;
        cleanup::create_network(&cluster.engine, run)?;
        let object_store = wiring.object_store_volume();
        cleanup::create_volume(&cluster.engine, run, &object_store)?;
        let proxy_plan = ContainerPlan {
            run: run.clone(),
            image: image.tag.clone(),
            name: wiring.proxy_container(),
            hostname: "proxy".into(),
            network: run.network(),
            command: wiring.proxy_command(),
            env: Vec::new(),
            volumes: Vec::new(),
            published_ports: wiring.proxy_published_ports(),
        };
        cluster.proxy = Some(proxy_plan.start(&cluster.engine)?);
        let fault_proxy = links::connect_to_proxy(&wiring, &proxy_plan.name)?;
        if let Err(error) = links::create_link_proxies(&fault_proxy, &wiring) {
            return Err(error.context(cluster.proxy_container_state()));
        }
        cluster.fault_proxy = Some(links::connect_to_proxy(&wiring, &proxy_plan.name)?);
        for &node in &wiring.nodes {
            let data = wiring.data_volume(node);
            cleanup::create_volume(&cluster.engine, run, &data)?;
            let plan = ContainerPlan {
                run: run.clone(),
                image: image.tag.clone(),
                name: wiring.node_container(node),
                hostname: format!("node-{node}"),
                network: run.network(),
                command: wiring.node_command(node, &spec.extra_args),
                env: spec.env.clone(),
                volumes: vec![
                    (data, wiring::DATA_PATH.to_string()),
                    (object_store.clone(), wiring::OBJECT_STORE_PATH.to_string()),
                ],
                published_ports: vec![(wiring.metrics_ports[&node], wiring::METRICS_PORT)],
            };
            cluster.nodes.insert(
                node,
                Node {
                    plan,
                    container: None,
                    state: NodeState::Down,
                    metrics_port: wiring.metrics_ports[&node],
                    earlier_logs: Vec::new(),
                },
            );
        }
        for node in wiring.nodes.clone() {
            cluster.start(node)?;
        }
        for node in wiring.nodes.clone() {
            cluster.wait_until_healthy(node)?;
        }
        Ok((cluster, fault_proxy))
    }

    /// The run's id (its resources carry the label `chronik.run=<id>`).
    pub fn run_id(&self) -> &str {
        &self.wiring.run.id
    }

    /// Points the proxies of every link into `node` at its address, or (`None`) at a port
    /// that refuses connections while it is down.
    fn point_links_at(&self, node: NodeId, address: Option<&str>) -> anyhow::Result<()> {
        let proxy = self
            .fault_proxy
            .as_ref()
            .context("the fault proxy is not connected")?;
        links::point_links_at(proxy, &self.wiring, node, address)
    }

    fn wait_until_healthy(&mut self, node: NodeId) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_millis(START_TIMEOUT_MS);
        while Instant::now() < deadline {
            if self.is_healthy(node) {
                return Ok(());
            }
            if let Some((_, status)) = self
                .unexpected_exits()
                .into_iter()
                .find(|(exited, _)| *exited == node)
            {
                bail!("node {node} exited ({status}): {}", self.tail_of_logs(node));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!(
            "node {node} not healthy after {START_TIMEOUT_MS} ms: {}",
            self.tail_of_logs(node)
        )
    }

    /// The last lines a node's container wrote, for an error message.
    fn tail_of_logs(&self, node: NodeId) -> String {
        last_lines(&self.logs_of(node))
    }

    /// Whether the fault proxy container runs, and its last lines, for an error message.
    fn proxy_container_state(&self) -> String {
        let Some(proxy) = &self.proxy else {
            return "the fault proxy container was not started".into();
        };
        let state = match self.engine.exit_code(proxy.id()) {
            Ok(None) => "runs".to_string(),
            Ok(Some(code)) => format!("exited ({code})"),
            Err(error) => format!("cannot be inspected ({error:#})"),
        };
        let logs = match self.engine.logs(proxy.id()) {
            Ok(logs) => last_lines(&logs),
            Err(error) => format!("(logs unavailable: {error:#})"),
        };
        format!("the fault proxy container {state}; its last lines: {logs}")
    }

    /// Everything node `node`'s containers wrote, oldest first.
    fn logs_of(&self, node: NodeId) -> Vec<u8> {
        let Some(node) = self.nodes.get(&node) else {
            return Vec::new();
        };
        let mut logs = node.earlier_logs.clone();
        if let Some(container) = &node.container {
            match self.engine.logs(container.id()) {
                Ok(current) => logs.extend(current),
                Err(error) => logs.extend(format!("(logs unavailable: {error:#})\n").bytes()),
            }
        }
        logs
    }

    /// Kills a node's process, resuming it first if paused (Docker refuses to kill a paused
    /// container's process, as the process runtime's SIGKILL would not wait either).
    fn kill_container(&mut self, node_id: NodeId) -> anyhow::Result<()> {
        let engine = &self.engine;
        let node = node_in(&mut self.nodes, node_id)?;
        let Some(container) = &node.container else {
            return Ok(());
        };
        if node.state == NodeState::Paused {
            node::set_paused(engine, container, false)?;
        }
        if engine.exit_code(container.id())?.is_none() {
            engine.kill(container.id())?;
        }
        node.state = NodeState::Down;
        self.point_links_at(node_id, None)
    }

    /// Copies every node's `/data` into `directory/node-N/` (the containers are stopped).
    fn copy_data_out(&self) -> anyhow::Result<()> {
        for (id, node) in &self.nodes {
            let Some(container) = &node.container else {
                continue;
            };
            let archive = self.engine.download(container.id(), wiring::DATA_PATH)?;
            let target = self.directory.join(format!("node-{id}"));
            std::fs::create_dir_all(&target)?;
            tar::Archive::new(archive.as_slice())
                .unpack(&target)
                .with_context(|| format!("unpacking node {id}'s data into {}", target.display()))?;
        }
        Ok(())
    }

    /// Removes every container, the network and the volumes of the run.
    fn remove_everything(&mut self) -> anyhow::Result<()> {
        let mut containers: Vec<Container> = self
            .nodes
            .values_mut()
            .filter_map(|node| node.container.take())
            .collect();
        containers.extend(self.proxy.take());
        for container in containers {
            let _ = node::remove(&self.engine, container);
        }
        self.torn_down = true;
        cleanup::remove_run(&self.engine, &self.wiring.run.id)
    }
}

impl Cluster for DockerCluster {
    fn runtime(&self) -> &'static str {
        "docker"
    }

    fn node_ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    fn bootstrap(&self) -> String {
        self.wiring.bootstrap()
    }

    fn state(&self, node: NodeId) -> NodeState {
        self.nodes
            .get(&node)
            .map_or(NodeState::Down, |node| node.state)
    }

    fn kill(&mut self, node: NodeId) -> anyhow::Result<()> {
        self.kill_container(node)
    }

    fn stop(&mut self, node_id: NodeId) -> anyhow::Result<()> {
        let engine = &self.engine;
        let node = node_in(&mut self.nodes, node_id)?;
        let Some(container) = &node.container else {
            return Ok(());
        };
        if node.state == NodeState::Paused {
            node::set_paused(engine, container, false)?;
        }
        node.state = NodeState::Down;
        node::stop(engine, container)?;
        self.point_links_at(node_id, None)
    }

    fn pause(&mut self, node_id: NodeId) -> anyhow::Result<()> {
        self.set_paused(node_id, true)
    }

    fn resume(&mut self, node_id: NodeId) -> anyhow::Result<()> {
        self.set_paused(node_id, false)
    }

    fn start(&mut self, node_id: NodeId) -> anyhow::Result<()> {
        let engine = &self.engine;
        let node = node_in(&mut self.nodes, node_id)?;
        if node.state != NodeState::Down {
            bail!("node {node_id} is already running");
        }
        let container = match node.container.take() {
            Some(container) => {
                let restarted = node::restart(engine, &container);
                node.container = Some(container);
                restarted?;
                node.container.as_ref().expect("just put back")
            }
            None => node.container.insert(node.plan.start(engine)?),
        };
        node.state = NodeState::Running;
        let address = engine.address_on(container.id(), &self.wiring.run.network())?;
        self.point_links_at(node_id, Some(&address))
    }

    fn wipe(&mut self, node_id: NodeId) -> anyhow::Result<()> {
        self.kill_container(node_id)?;
        let logs = self.logs_of(node_id);
        let run = self.wiring.run.clone();
        let volume = self.wiring.data_volume(node_id);
        let node = node_in(&mut self.nodes, node_id)?;
        node.earlier_logs = logs;
        if let Some(container) = node.container.take() {
            node::remove(&self.engine, container)?;
        }
        cleanup::remove_volume(&self.engine, &volume)?;
        cleanup::create_volume(&self.engine, &run, &volume)?;
        self.start(node_id)
    }

    fn is_healthy(&self, node: NodeId) -> bool {
        self.nodes.get(&node).is_some_and(|node| {
            node.state == NodeState::Running
                && http_get(node.metrics_port, "/health").is_ok_and(|body| body.contains("ok"))
        })
    }

    fn metrics(&self, node: NodeId) -> anyhow::Result<String> {
        let node = self
            .nodes
            .get(&node)
            .with_context(|| format!("there is no node {node}"))?;
        http_get(node.metrics_port, "/metrics")
    }

    fn unexpected_exits(&mut self) -> Vec<(NodeId, String)> {
        let mut exits = Vec::new();
        let interval = Duration::from_millis(EXIT_CHECK_INTERVAL_MS);
        if self
            .last_exit_check
            .is_some_and(|checked| checked.elapsed() < interval)
        {
            return exits;
        }
        self.last_exit_check = Some(Instant::now());
        for (id, node) in &mut self.nodes {
            let Some(container) = &node.container else {
                continue;
            };
            if node.state == NodeState::Down {
                continue;
            }
            if let Ok(Some(code)) = self.engine.exit_code(container.id()) {
                node.state = NodeState::Down;
                exits.push((*id, format!("container exited with code {code}")));
            }
        }
        for (node, _) in &exits {
            if let Err(error) = self.point_links_at(*node, None) {
                eprintln!("{error:#}");
            }
        }
        exits
    }

    /// From the engine's cgroup accounting of the containers up now (a restarted container
    /// counts from its restart, as a restarted process does in the process runtime).
    fn cpu_seconds(&self) -> f64 {
        self.nodes
            .values()
            .filter(|node| node.state != NodeState::Down)
            .filter_map(|node| node.container.as_ref())
            .filter_map(|container| self.engine.cpu_seconds(container.id()))
            .sum()
    }

    fn collect_logs(&self, folder: &Path) -> anyhow::Result<Vec<String>> {
        let mut names = Vec::new();
        for &node in self.nodes.keys() {
            let name = format!("node-{node}.log");
            std::fs::write(folder.join(&name), self.logs_of(node))?;
            names.push(name);
        }
        Ok(names)
    }

    fn teardown(&mut self, keep_data: bool) -> Option<PathBuf> {
        for node in self.node_ids() {
            let _ = self.kill_container(node);
        }
        let kept = if keep_data {
            match self.copy_data_out() {
                Ok(()) => Some(self.directory.clone()),
                Err(error) => {
                    eprintln!("copying the nodes' data out of their volumes: {error:#}");
                    None
                }
            }
        } else {
            None
        };
        if let Err(error) = self.remove_everything() {
            eprintln!("removing the run's containers, network and volumes: {error:#}");
        }
        if kept.is_none() {
            let _ = std::fs::remove_dir_all(&self.directory);
        }
        kept
    }
}

impl Drop for DockerCluster {
    fn drop(&mut self) {
        if !self.torn_down {
            if let Err(error) = self.remove_everything() {
                eprintln!("removing the run's containers, network and volumes: {error:#}");
            }
        }
    }
}

/// The node `node` of a cluster's `nodes` (a free function, so the engine stays borrowable).
/// The last lines of a container's logs, on one line.
fn last_lines(logs: &[u8]) -> String {
    let text = String::from_utf8_lossy(logs);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

fn node_in(nodes: &mut BTreeMap<NodeId, Node>, node: NodeId) -> anyhow::Result<&mut Node> {
    nodes
        .get_mut(&node)
        .with_context(|| format!("there is no node {node}"))
}
