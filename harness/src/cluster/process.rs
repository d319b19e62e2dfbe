//! The process runtime: each node a local `chronik-server` on free loopback ports, with its own
//! data directory under the run's folder, its links through the fault proxy.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use super::{all_links, proxy_name, Cluster, NodeState};
use crate::broker_process::{free_loopback_port, BrokerLaunch, BrokerProcess};
use crate::network::FaultProxy;
use crate::scenario::{Link, NodeId};

/// What a process cluster is started with.
pub struct ProcessClusterSpec<'a> {
    pub binary: &'a Path,
    pub nodes: u32,
    /// Holds `node-N/` (data) and `node-N.log` for each node.
    pub directory: &'a Path,
    /// Environment for every node.
    pub env: Vec<(String, String)>,
    /// Arguments for every node.
    pub extra_args: Vec<String>,
}

struct Node {
    process: BrokerProcess,
    state: NodeState,
}

pub struct ProcessCluster {
    nodes: BTreeMap<NodeId, Node>,
    /// `clients-i` proxy addresses, by node.
    client_addresses: BTreeMap<NodeId, String>,
    directory: PathBuf,
}

impl ProcessCluster {
    /// Creates every link's proxy, then starts the nodes; returns once all of them serve.
    pub fn start(spec: ProcessClusterSpec<'_>, proxy: &FaultProxy) -> anyhow::Result<Self> {
        let node_ids: Vec<NodeId> = (1..=spec.nodes).collect();
        let mut kafka_ports = BTreeMap::new();
        let mut raft_ports = BTreeMap::new();
        for node in &node_ids {
            kafka_ports.insert(*node, free_loopback_port()?);
            raft_ports.insert(*node, free_loopback_port()?);
        }
        let mut proxy_addresses: HashMap<Link, String> = HashMap::new();
        for link in all_links(&node_ids) {
            let upstream = match link {
                Link::Peer { to, .. } => format!("127.0.0.1:{}", raft_ports[&to]),
                Link::Clients { to } => format!("127.0.0.1:{}", kafka_ports[&to]),
            };
            let address = create_link_proxy(proxy, &proxy_name(&link), &upstream)
                .with_context(|| format!("creating the fault proxy for {link}"))?;
            proxy_addresses.insert(link, address.to_string());
        }
        let mut nodes = BTreeMap::new();
        for &node in &node_ids {
            let peers = node_ids
                .iter()
                .map(|&other| {
                    let address = if other == node {
                        format!("127.0.0.1:{}", raft_ports[&node])
                    } else {
                        proxy_addresses[&Link::Peer {
                            from: node,
                            to: other,
                        }]
                            .clone()
                    };
                    format!("{other}={address}")
                })
                .collect::<Vec<_>>()
                .join(",");
            let process = BrokerProcess::new(BrokerLaunch {
                binary: spec.binary.to_path_buf(),
                node_id: node as u64,
                kafka_port: kafka_ports[&node],
                metrics_port: free_loopback_port()?,
                raft_port: raft_ports[&node],
                advertised_address: Some(proxy_addresses[&Link::Clients { to: node }].clone()),
                peers,
                directory: spec.directory.join(format!("node-{node}")),
                log_path: spec.directory.join(format!("node-{node}.log")),
                env: spec.env.clone(),
                extra_args: spec.extra_args.clone(),
            });
            nodes.insert(
                node,
                Node {
                    process,
                    state: NodeState::Down,
                },
            );
        }
        let client_addresses = node_ids
            .iter()
            .map(|&node| (node, proxy_addresses[&Link::Clients { to: node }].clone()))
            .collect();
        let mut cluster = Self {
            nodes,
            client_addresses,
            directory: spec.directory.to_path_buf(),
        };
        for node in &node_ids {
            cluster.start(*node)?;
        }
        for node in cluster.nodes.values_mut() {
            node.process.wait_until_healthy()?;
        }
        Ok(cluster)
    }

    fn node(&mut self, node: NodeId) -> anyhow::Result<&mut Node> {
        self.nodes
            .get_mut(&node)
            .with_context(|| format!("there is no node {node}"))
    }
}

impl Cluster for ProcessCluster {
    fn runtime(&self) -> &'static str {
        "process"
    }

    fn node_ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    fn bootstrap(&self) -> String {
        self.client_addresses
            .values()
            .cloned()
            .collect::<Vec<_>>()
            .join(",")
    }

    fn state(&self, node: NodeId) -> NodeState {
        self.nodes
            .get(&node)
            .map_or(NodeState::Down, |node| node.state)
    }

    fn kill(&mut self, node: NodeId) -> anyhow::Result<()> {
        let node = self.node(node)?;
        node.process.kill();
        node.state = NodeState::Down;
        Ok(())
    }

    fn stop(&mut self, node: NodeId) -> anyhow::Result<()> {
        let node = self.node(node)?;
        node.state = NodeState::Down;
        node.process.stop()
    }

    fn pause(&mut self, node: NodeId) -> anyhow::Result<()> {
        let node = self.node(node)?;
        if node.state != NodeState::Running {
            bail!("node {} is not running", node.process.node_id);
        }
        node.process.set_paused(true)?;
        node.state = NodeState::Paused;
        Ok(())
    }

    fn resume(&mut self, node: NodeId) -> anyhow::Result<()> {
        let node = self.node(node)?;
        if node.state != NodeState::Paused {
            bail!("node {} is not paused", node.process.node_id);
        }
        node.process.set_paused(false)?;
        node.state = NodeState::Running;
        Ok(())
    }

    fn start(&mut self, node: NodeId) -> anyhow::Result<()> {
        let node = self.node(node)?;
        if node.state != NodeState::Down {
            bail!("node {} is already running", node.process.node_id);
        }
        node.process.spawn()?;
        node.state = NodeState::Running;
        Ok(())
    }

    fn wipe(&mut self, node_id: NodeId) -> anyhow::Result<()> {
        let node = self.node(node_id)?;
        node.process.kill();
        node.state = NodeState::Down;
        let data = node.process.data_directory();
        if data.exists() {
            std::fs::remove_dir_all(&data)
                .with_context(|| format!("deleting {}", data.display()))?;
        }
        self.start(node_id)
    }

    fn is_healthy(&self, node: NodeId) -> bool {
        self.nodes
            .get(&node)
            .is_some_and(|node| node.state == NodeState::Running && node.process.is_healthy())
    }

    fn metrics(&self, node: NodeId) -> anyhow::Result<String> {
        let node = self
            .nodes
            .get(&node)
            .with_context(|| format!("there is no node {node}"))?;
        node.process.metrics()
    }

    fn unexpected_exits(&mut self) -> Vec<(NodeId, String)> {
        let mut exits = Vec::new();
        for (id, node) in &mut self.nodes {
            if node.state == NodeState::Down {
                continue;
            }
            if let Some(status) = node.process.exited() {
                node.state = NodeState::Down;
                exits.push((*id, status.to_string()));
            }
        }
        exits
    }

    fn cpu_seconds(&self) -> f64 {
        self.nodes
            .values()
            .filter_map(|node| node.process.cpu_seconds())
            .sum()
    }

    fn collect_logs(&self, folder: &Path) -> anyhow::Result<Vec<String>> {
        let mut names = Vec::new();
        for node in self.nodes.values() {
            let name = format!("node-{}.log", node.process.node_id);
            if node.process.log_path.exists() && node.process.log_path != folder.join(&name) {
                std::fs::copy(&node.process.log_path, folder.join(&name))?;
            }
            names.push(name);
        }
        Ok(names)
    }

    fn teardown(&mut self, keep_data: bool) -> Option<PathBuf> {
        for node in self.nodes.values_mut() {
            node.process.kill();
            node.state = NodeState::Down;
        }
        if keep_data {
            return Some(self.directory.clone());
        }
        // The logs were collected into the report folder first.
        let _ = std::fs::remove_dir_all(&self.directory);
        None
    }
}

impl Drop for ProcessCluster {
    fn drop(&mut self) {
        for node in self.nodes.values_mut() {
            node.process.kill();
        }
    }
}

/// Creates a link's proxy on a port from [`free_loopback_port`] (healing binds it again), so it
/// never takes a port already handed to a broker that has not bound it yet.
fn create_link_proxy(
    proxy: &FaultProxy,
    name: &str,
    upstream: &str,
) -> anyhow::Result<std::net::SocketAddr> {
    let mut last_error = None;
    for _ in 0..crate::broker_process::STABLE_PORT_ATTEMPTS {
        let port = free_loopback_port()?;
        match proxy.create_proxy(name, &format!("127.0.0.1:{port}"), upstream) {
            Ok(address) => return Ok(address),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no free port for proxy {name}")))
}
