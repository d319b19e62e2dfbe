//! The cluster a scenario runs against, behind one interface, so that scenarios, faults,
//! checks and reports do not know which runtime runs the brokers.
//!
//! Every link passes through the fault proxy: node `i` dials node `j` through the proxy named
//! `link-i-j` (`--peers` differs per node), and clients reach node `i` through `clients-i`,
//! which is also the address node `i` advertises. A network fault is then only a call to the
//! Toxiproxy API on the right proxies; the brokers know nothing of it.

pub mod docker;
pub mod process;
pub mod raft_view;

use std::path::PathBuf;

use crate::scenario::{Link, NodeId};

pub use raft_view::RaftView;

/// What the bench believes a node is doing (it changed it last).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    Running,
    Paused,
    /// Killed, stopped, or exited on its own.
    Down,
}

/// A running cluster. Process faults act through it; network faults act on its links'
/// proxies (see `proxy_name`).
pub trait Cluster {
    /// `process` or `docker`.
    fn runtime(&self) -> &'static str;
    fn node_ids(&self) -> Vec<NodeId>;
    /// The clients' bootstrap list (through the proxies).
    fn bootstrap(&self) -> String;
    fn state(&self, node: NodeId) -> NodeState;
    /// SIGKILL.
    fn kill(&mut self, node: NodeId) -> anyhow::Result<()>;
    /// SIGTERM: a clean shutdown.
    fn stop(&mut self, node: NodeId) -> anyhow::Result<()>;
    fn pause(&mut self, node: NodeId) -> anyhow::Result<()>;
    fn resume(&mut self, node: NodeId) -> anyhow::Result<()>;
    /// Starts a down node on its data; does not wait for it to serve.
    fn start(&mut self, node: NodeId) -> anyhow::Result<()>;
    /// Kills the node, deletes its data and starts it empty.
    fn wipe(&mut self, node: NodeId) -> anyhow::Result<()>;
    /// Whether the node answers its health check.
    fn is_healthy(&self, node: NodeId) -> bool;
    /// The node's Prometheus metrics.
    fn metrics(&self, node: NodeId) -> anyhow::Result<String>;
    /// Nodes that exited since the last call although the bench did not stop them, with how.
    fn unexpected_exits(&mut self) -> Vec<(NodeId, String)>;
    /// CPU seconds (user + system) the running nodes have used so far.
    fn cpu_seconds(&self) -> f64;
    /// Copies (or moves) every node's log into `folder`; returns the files' names.
    fn collect_logs(&self, folder: &std::path::Path) -> anyhow::Result<Vec<String>>;
    /// Stops every node; deletes the data unless `keep_data`. Returns where data was kept.
    fn teardown(&mut self, keep_data: bool) -> Option<PathBuf>;
}

/// The fault proxy's name for a link.
pub fn proxy_name(link: &Link) -> String {
    match link {
        Link::Peer { from, to } => format!("link-{from}-{to}"),
        Link::Clients { to } => format!("clients-{to}"),
    }
}

/// Every link of a cluster of `nodes`: each ordered pair of nodes, and clients to each node.
pub fn all_links(nodes: &[NodeId]) -> Vec<Link> {
    let mut links = Vec::new();
    for &from in nodes {
        for &to in nodes {
            if from != to {
                links.push(Link::Peer { from, to });
            }
        }
    }
    links.extend(nodes.iter().map(|&to| Link::Clients { to }));
    links
}

/// The links touching `node`: to and from every other node, and from the clients.
pub fn links_of(node: NodeId, nodes: &[NodeId]) -> Vec<Link> {
    all_links(nodes)
        .into_iter()
        .filter(|link| match link {
            Link::Peer { from, to } => *from == node || *to == node,
            Link::Clients { to } => *to == node,
        })
        .collect()
}

/// The Raft state as the running (not paused) nodes publish it now.
pub fn raft_view(cluster: &dyn Cluster) -> RaftView {
    let mut view = RaftView::default();
    for node in cluster.node_ids() {
        if cluster.state(node) != NodeState::Running {
            continue;
        }
        if let Ok(text) = cluster.metrics(node) {
            view.add_node(node, &text);
        }
    }
    view
}
