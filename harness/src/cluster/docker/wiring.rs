//! Who listens where in a docker run, and who dials what.
//!
//! ```text
//! bench (host) --127.0.0.1:C_i--> [proxy container] clients-i 0.0.0.0:C_i --> node i:9092
//! node i --proxy:L_ij--> [proxy container] link-i-j 0.0.0.0:L_ij --> node j:9093
//! bench (host) --127.0.0.1:A--> proxy's Toxiproxy API (8474 inside)
//! bench (host) --127.0.0.1:M_i--> node i's /metrics and /health (9644 inside)
//! ```
//!
//! Nodes reach the proxy container by its name on the run's network; the proxies reach a node
//! by its address while it runs and are refused while it is down (`upstream`). Each `clients-i` proxy
//! listens inside the proxy container on the same port number that is published on the
//! host's loopback (`C_i`, a free host port), so node `i` advertises `127.0.0.1:C_i` and the
//! bench's clients reach it there. The `link-i-j` proxies listen only inside the proxy
//! container. Inside a node the ports are fixed: every node has its own network namespace.

use std::collections::BTreeMap;

use super::cleanup::RunIdentity;
use crate::broker_process::free_loopback_port;
use crate::cluster::all_links;
use crate::scenario::{Link, NodeId};

/// The Kafka listener inside a node container.
pub const KAFKA_PORT: u16 = 9092;
/// The Raft listener inside a node container.
pub const RAFT_PORT: u16 = 9093;
/// `/metrics` and `/health` inside a node container.
pub const METRICS_PORT: u16 = 9644;
/// The Toxiproxy API inside the proxy container.
pub const PROXY_API_PORT: u16 = 8474;
/// `link-i-j` listens on `LINK_PORT_BASE + 100 * i + j` inside the proxy container.
pub const LINK_PORT_BASE: u16 = 10_000;
/// Where a node's data volume is mounted.
pub const DATA_PATH: &str = "/data";
/// Where the shared object-store volume is mounted (the `local` object store).
pub const OBJECT_STORE_PATH: &str = "/object-store";

/// The ports and names of one docker run.
#[derive(Clone, Debug)]
pub struct Wiring {
    pub run: RunIdentity,
    pub nodes: Vec<NodeId>,
    /// Host port (= port inside the proxy container) of each node's `clients-i` proxy.
    pub client_ports: BTreeMap<NodeId, u16>,
    /// Host port of each node's metrics listener.
    pub metrics_ports: BTreeMap<NodeId, u16>,
    /// Host port of the proxy's API.
    pub proxy_api_port: u16,
}

impl Wiring {
    /// Picks free loopback ports on the host for everything that is published.
    pub fn new(run: RunIdentity, node_count: u32) -> anyhow::Result<Self> {
        let nodes: Vec<NodeId> = (1..=node_count).collect();
        let mut client_ports = BTreeMap::new();
        let mut metrics_ports = BTreeMap::new();
        for &node in &nodes {
            client_ports.insert(node, free_loopback_port()?);
            metrics_ports.insert(node, free_loopback_port()?);
        }
        Ok(Self {
            run,
            nodes,
            client_ports,
            metrics_ports,
            proxy_api_port: free_loopback_port()?,
        })
    }

    /// The container name (and network host name) of node `node`.
    pub fn node_container(&self, node: NodeId) -> String {
        self.run.container(&format!("node-{node}"))
    }

    /// The container name of the fault proxy.
    pub fn proxy_container(&self) -> String {
        self.run.container("proxy")
    }

    /// The data volume of node `node`.
    pub fn data_volume(&self, node: NodeId) -> String {
        self.run.volume(&format!("node-{node}-data"))
    }

    /// The object-store volume every node shares.
    pub fn object_store_volume(&self) -> String {
        self.run.volume("object-store")
    }

    /// Where a link's proxy listens inside the proxy container.
    pub fn proxy_port(&self, link: &Link) -> u16 {
        match *link {
            Link::Peer { from, to } => LINK_PORT_BASE + 100 * from as u16 + to as u16,
            Link::Clients { to } => self.client_ports[&to],
        }
    }

    /// Every link's proxy: (link, listen address inside the proxy container). Each starts
    /// pointing at its node as down (`upstream`).
    pub fn proxies(&self) -> Vec<(Link, String)> {
        all_links(&self.nodes)
            .into_iter()
            .map(|link| (link, format!("0.0.0.0:{}", self.proxy_port(&link))))
            .collect()
    }

    /// The links whose proxies lead to `node`: from every other node, and from the clients.
    pub fn links_into(&self, node: NodeId) -> Vec<Link> {
        all_links(&self.nodes)
            .into_iter()
            .filter(|link| match *link {
                Link::Peer { to, .. } | Link::Clients { to } => to == node,
            })
            .collect()
    }

    /// Where a link's proxy sends to: the node's address on the run's network while it runs
    /// (`node_address`), and a port nothing listens on inside the proxy container while it is
    /// down, so a connection is refused at once, as it is by a dead process's port. Addresses,
    /// not container names: the engine's resolver would ask the host's name servers about
    /// the name of a stopped container.
    pub fn upstream(link: &Link, node_address: Option<&str>) -> String {
        let port = match link {
            Link::Peer { .. } => RAFT_PORT,
            Link::Clients { .. } => KAFKA_PORT,
        };
        format!("{}:{port}", node_address.unwrap_or("127.0.0.1"))
    }

    /// Node `node`'s `--peers`: every other node through its link's proxy.
    pub fn peers(&self, node: NodeId) -> String {
        self.nodes
            .iter()
            .map(|&other| {
                let address = if other == node {
                    format!("{}:{RAFT_PORT}", self.node_container(node))
                } else {
                    let link = Link::Peer {
                        from: node,
                        to: other,
                    };
                    format!("{}:{}", self.proxy_container(), self.proxy_port(&link))
                };
                format!("{other}={address}")
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// What node `node` tells clients to connect to.
    pub fn advertised_address(&self, node: NodeId) -> String {
        format!("127.0.0.1:{}", self.client_ports[&node])
    }

    /// The clients' bootstrap list.
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(|&node| self.advertised_address(node))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The broker's command line in node `node`'s container.
    pub fn node_command(&self, node: NodeId, extra_args: &[String]) -> Vec<String> {
        let mut command = vec![
            super::image::SERVER_PATH.to_string(),
            "--data-dir".into(),
            format!("{DATA_PATH}/data"),
            "--listen".into(),
            format!("0.0.0.0:{KAFKA_PORT}"),
            "--advertised-addr".into(),
            self.advertised_address(node),
            "--raft-listen".into(),
            format!("0.0.0.0:{RAFT_PORT}"),
            "--metrics-listen".into(),
            format!("0.0.0.0:{METRICS_PORT}"),
            "--node-id".into(),
            node.to_string(),
            "--peers".into(),
            self.peers(node),
        ];
        command.extend(extra_args.iter().cloned());
        command
    }

    /// The fault proxy's command line.
    pub fn proxy_command(&self) -> Vec<String> {
        vec![
            super::image::BENCH_PATH.to_string(),
            "toxiproxy".into(),
            "--listen".into(),
            format!("0.0.0.0:{PROXY_API_PORT}"),
        ]
    }

    /// The ports the proxy container publishes on the host: (host port, container port).
    pub fn proxy_published_ports(&self) -> Vec<(u16, u16)> {
        let mut ports = vec![(self.proxy_api_port, PROXY_API_PORT)];
        ports.extend(self.client_ports.values().map(|&port| (port, port)));
        ports
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wiring() -> Wiring {
        Wiring {
            run: RunIdentity { id: "7-x".into() },
            nodes: vec![1, 2, 3],
            client_ports: BTreeMap::from([(1, 21001), (2, 21002), (3, 21003)]),
            metrics_ports: BTreeMap::from([(1, 22001), (2, 22002), (3, 22003)]),
            proxy_api_port: 23000,
        }
    }

    #[test]
    fn a_node_dials_every_peer_through_the_proxy_of_that_link() {
        assert_eq!(
            wiring().peers(2),
            "1=chronik-7-x-proxy:10201,2=chronik-7-x-node-2:9093,3=chronik-7-x-proxy:10203"
        );
    }

    #[test]
    fn every_link_has_a_proxy_to_the_right_listener() {
        let wiring = wiring();
        let proxies = wiring.proxies();
        assert_eq!(proxies.len(), 3 * 2 + 3);
        let listen = |link: Link| {
            proxies
                .iter()
                .find(|(candidate, _)| *candidate == link)
                .map(|(_, listen)| listen.clone())
                .unwrap()
        };
        assert_eq!(listen(Link::Peer { from: 3, to: 1 }), "0.0.0.0:10301");
        assert_eq!(listen(Link::Clients { to: 2 }), "0.0.0.0:21002");
        let into_1 = wiring.links_into(1);
        assert_eq!(into_1.len(), 3);
        assert!(into_1.contains(&Link::Peer { from: 2, to: 1 }));
        assert!(into_1.contains(&Link::Clients { to: 1 }));
        let peer = Link::Peer { from: 3, to: 1 };
        assert_eq!(
            Wiring::upstream(&peer, Some("172.20.0.3")),
            "172.20.0.3:9093"
        );
        assert_eq!(
            Wiring::upstream(&Link::Clients { to: 1 }, None),
            "127.0.0.1:9092"
        );
    }

    #[test]
    fn clients_reach_each_node_on_the_published_port_it_advertises() {
        let wiring = wiring();
        assert_eq!(
            wiring.bootstrap(),
            "127.0.0.1:21001,127.0.0.1:21002,127.0.0.1:21003"
        );
        assert!(wiring
            .proxy_published_ports()
            .contains(&(21002, wiring.proxy_port(&Link::Clients { to: 2 }))));
        let command = wiring.node_command(2, &[]);
        let advertised = command
            .iter()
            .position(|argument| argument == "--advertised-addr")
            .unwrap();
        assert_eq!(command[advertised + 1], "127.0.0.1:21002");
    }
}
