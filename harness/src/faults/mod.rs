//! Injecting a scenario's faults: resolving targets against the cluster at that moment,
//! acting on processes through the `Cluster` and on links through the fault proxy, ending
//! network faults when their `duration` is over, and healing everything at the end.
//!
//! Every random choice (`random`, `follower(..)`, the majorities ring and the bridge) comes from
//! one generator seeded by the scenario's seed and is drawn only when a fault needs it, so the
//! same seed makes the same choices for the same faults. What `leader(..)` names depends on the
//! cluster at that moment; the report records what each fault resolved to.
//!
//! Overlapping cuts are counted per link: a link comes back only when no partition still cuts
//! it. `heal` (and the end of the run) resets the whole proxy.

pub mod split;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rand::seq::IndexedRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::cluster::{links_of, proxy_name, raft_view, Cluster, NodeState};
use crate::network::FaultProxy;
use crate::report::FaultRecord;
use crate::scenario::{Action, Fault, FaultKind, Link, NodeId, Scope, Split, Target, Toxic};

/// How long a `leader(..)` or `follower(..)` target waits for the partition to have a leader.
pub const TARGET_WAIT_MS: u64 = 15_000;

/// A restart or wipe whose catch-up is being timed.
#[derive(Clone, Debug)]
pub struct StartedNode {
    pub node: NodeId,
    pub kind: FaultKind,
    pub started_at_ms: i64,
}

/// What undoes a network fault.
enum Undo {
    Cut(Vec<Link>),
    Toxic {
        proxies: Vec<String>,
        toxic_name: String,
    },
}

struct ActiveNetworkFault {
    record: usize,
    ends_at_ms: Option<i64>,
    undo: Undo,
}

pub struct FaultInjector {
    random: ChaCha8Rng,
    last_down: Option<NodeId>,
    last_paused: Option<NodeId>,
    /// How many active partitions cut each link.
    cuts: HashMap<Link, u32>,
    active: Vec<ActiveNetworkFault>,
    /// Every fault injected, in order.
    pub records: Vec<FaultRecord>,
    /// Restarts and wipes, for recovery timing.
    pub started_nodes: Vec<StartedNode>,
}

impl FaultInjector {
    pub fn new(seed: u64) -> Self {
        Self {
            random: ChaCha8Rng::seed_from_u64(seed),
            last_down: None,
            last_paused: None,
            cuts: HashMap::new(),
            active: Vec::new(),
            records: Vec::new(),
            started_nodes: Vec::new(),
        }
    }

    /// The network faults in effect now, described.
    pub fn current(&self) -> Vec<String> {
        self.active
            .iter()
            .map(|fault| self.records[fault.record].description.clone())
            .collect()
    }

    /// Injects `fault` now (`now_ms` from the start of the measured window).
    pub fn inject(
        &mut self,
        fault: &Fault,
        cluster: &mut dyn Cluster,
        proxy: &FaultProxy,
        now_ms: i64,
    ) -> anyhow::Result<()> {
        let record = FaultRecord {
            planned_at_ms: fault.at.as_millis() as i64,
            injected_at_ms: now_ms,
            ended_at_ms: None,
            kind: fault.kind().name().to_string(),
            description: String::new(),
            nodes: Vec::new(),
        };
        let index = self.records.len();
        self.records.push(record);
        let (description, nodes) = match &fault.action {
            Action::Process { kind, target } => {
                let node = self.resolve(target, *kind, cluster)?;
                self.act(*kind, node, cluster, now_ms)?;
                let resolved = match target {
                    Target::Node(_) => String::new(),
                    other => format!(" ({other})"),
                };
                (format!("{} node {node}{resolved}", kind.name()), vec![node])
            }
            Action::Partition { split, duration } => {
                let (cut, description) = self.cut_links(split, cluster)?;
                for link in &cut {
                    let count = self.cuts.entry(*link).or_default();
                    if *count == 0 {
                        proxy.set_enabled(&proxy_name(link), false)?;
                    }
                    *count += 1;
                }
                let mut nodes: Vec<NodeId> = cut.iter().flat_map(Link::nodes).collect();
                nodes.sort_unstable();
                nodes.dedup();
                self.active.push(ActiveNetworkFault {
                    record: index,
                    ends_at_ms: duration.map(|duration| now_ms + duration.as_millis() as i64),
                    undo: Undo::Cut(cut),
                });
                (description, nodes)
            }
            Action::Heal => {
                self.heal(proxy, now_ms)?;
                ("heal every link".to_string(), Vec::new())
            }
            Action::Toxic(toxic) => {
                let links = match &toxic.scope {
                    Scope::Links(links) => links.clone(),
                    Scope::Node(target) => {
                        let node = self.resolve(target, toxic.toxic.kind(), cluster)?;
                        links_of(node, &cluster.node_ids())
                    }
                };
                let toxic_name = format!("fault-{index}");
                let proxies: Vec<String> = links.iter().map(proxy_name).collect();
                for name in &proxies {
                    proxy.add_toxic(
                        name,
                        &toxic_name,
                        &toxic.toxic,
                        toxic.stream,
                        toxic.toxicity,
                    )?;
                }
                let mut nodes: Vec<NodeId> = links.iter().flat_map(Link::nodes).collect();
                nodes.sort_unstable();
                nodes.dedup();
                self.active.push(ActiveNetworkFault {
                    record: index,
                    ends_at_ms: toxic
                        .duration
                        .map(|duration| now_ms + duration.as_millis() as i64),
                    undo: Undo::Toxic {
                        proxies,
                        toxic_name,
                    },
                });
                let links = links
                    .iter()
                    .map(Link::to_string)
                    .collect::<Vec<_>>()
                    .join(", ");
                (
                    format!("{} on {links}", describe_toxic(&toxic.toxic)),
                    nodes,
                )
            }
        };
        let record = &mut self.records[index];
        record.description = description;
        record.nodes = nodes;
        if !matches!(fault.action, Action::Partition { .. } | Action::Toxic(_)) {
            record.ended_at_ms = Some(now_ms);
        }
        Ok(())
    }

    /// Ends the network faults whose duration is over by `now_ms`.
    pub fn expire(&mut self, proxy: &FaultProxy, now_ms: i64) -> anyhow::Result<()> {
        let mut index = 0;
        while index < self.active.len() {
            if self.active[index]
                .ends_at_ms
                .is_some_and(|ends_at| ends_at <= now_ms)
            {
                let fault = self.active.remove(index);
                self.undo(fault, proxy, now_ms)?;
            } else {
                index += 1;
            }
        }
        Ok(())
    }

    /// Ends every network fault: every proxy enabled, every toxic removed.
    pub fn heal(&mut self, proxy: &FaultProxy, now_ms: i64) -> anyhow::Result<()> {
        proxy.reset()?;
        self.cuts.clear();
        for fault in std::mem::take(&mut self.active) {
            self.records[fault.record].ended_at_ms = Some(now_ms);
        }
        Ok(())
    }

    /// Resumes paused nodes and starts down ones (heal phase); returns the nodes started.
    pub fn restore_nodes(
        &mut self,
        cluster: &mut dyn Cluster,
        now_ms: i64,
    ) -> anyhow::Result<Vec<NodeId>> {
        let mut started = Vec::new();
        for node in cluster.node_ids() {
            match cluster.state(node) {
                NodeState::Running => {}
                NodeState::Paused => cluster.resume(node)?,
                NodeState::Down => {
                    cluster.start(node)?;
                    self.started_nodes.push(StartedNode {
                        node,
                        kind: FaultKind::Restart,
                        started_at_ms: now_ms,
                    });
                    started.push(node);
                }
            }
        }
        Ok(started)
    }

    fn undo(
        &mut self,
        fault: ActiveNetworkFault,
        proxy: &FaultProxy,
        now_ms: i64,
    ) -> anyhow::Result<()> {
        match fault.undo {
            Undo::Cut(links) => {
                for link in links {
                    let count = self.cuts.entry(link).or_default();
                    *count = count.saturating_sub(1);
                    if *count == 0 {
                        proxy.set_enabled(&proxy_name(&link), true)?;
                    }
                }
            }
            Undo::Toxic {
                proxies,
                toxic_name,
            } => {
                for name in proxies {
                    proxy.remove_toxic(&name, &toxic_name)?;
                }
            }
        }
        self.records[fault.record].ended_at_ms = Some(now_ms);
        Ok(())
    }

    fn act(
        &mut self,
        kind: FaultKind,
        node: NodeId,
        cluster: &mut dyn Cluster,
        now_ms: i64,
    ) -> anyhow::Result<()> {
        match kind {
            FaultKind::Kill => cluster.kill(node)?,
            FaultKind::Stop => cluster.stop(node)?,
            FaultKind::Pause => cluster.pause(node)?,
            FaultKind::Resume => cluster.resume(node)?,
            FaultKind::Restart => cluster.start(node)?,
            FaultKind::Wipe => cluster.wipe(node)?,
            other => bail!("`{}` is not a process fault", other.name()),
        }
        match kind {
            FaultKind::Kill | FaultKind::Stop | FaultKind::Wipe => self.last_down = Some(node),
            FaultKind::Pause => self.last_paused = Some(node),
            _ => {}
        }
        if matches!(kind, FaultKind::Restart | FaultKind::Wipe) {
            self.started_nodes.push(StartedNode {
                node,
                kind,
                started_at_ms: now_ms,
            });
        }
        Ok(())
    }

    /// The node a target names now. `random` picks among the nodes the action applies to.
    fn resolve(
        &mut self,
        target: &Target,
        kind: FaultKind,
        cluster: &dyn Cluster,
    ) -> anyhow::Result<NodeId> {
        match target {
            Target::Node(node) => Ok(*node),
            Target::Killed => self
                .last_down
                .context("`killed`: no node has been killed, stopped or wiped yet"),
            Target::Paused => self
                .last_paused
                .context("`paused`: no node has been paused yet"),
            Target::Random => {
                let wanted = match kind {
                    FaultKind::Restart => NodeState::Down,
                    FaultKind::Resume => NodeState::Paused,
                    _ => NodeState::Running,
                };
                let mut candidates: Vec<NodeId> = cluster
                    .node_ids()
                    .into_iter()
                    .filter(|node| cluster.state(*node) == wanted)
                    .collect();
                if candidates.is_empty() {
                    candidates = cluster.node_ids();
                }
                candidates
                    .choose(&mut self.random)
                    .copied()
                    .context("the cluster has no nodes")
            }
            Target::Leader(partition) => wait_for(|| {
                raft_view(cluster).partition_leader(&partition.topic, partition.partition)
            })
            .with_context(|| format!("`{target}`: {partition} has no leader")),
            Target::Follower(partition) => {
                let followers = wait_for(|| {
                    let view = raft_view(cluster);
                    view.partition_leader(&partition.topic, partition.partition)?;
                    let followers = view.partition_followers(&partition.topic, partition.partition);
                    (!followers.is_empty()).then_some(followers)
                })
                .with_context(|| format!("`{target}`: {partition} has no leader and follower"))?;
                Ok(*followers
                    .choose(&mut self.random)
                    .expect("followers are not empty"))
            }
        }
    }

    /// The links a partition cuts, and its description.
    fn cut_links(
        &mut self,
        split: &Split,
        cluster: &dyn Cluster,
    ) -> anyhow::Result<(Vec<Link>, String)> {
        let nodes = cluster.node_ids();
        let show = |group: &[NodeId]| format!("{group:?}");
        Ok(match split {
            Split::Groups(groups) => (
                split::groups(&nodes, groups),
                format!(
                    "partition {}",
                    groups
                        .iter()
                        .map(|g| show(g))
                        .collect::<Vec<_>>()
                        .join(" | ")
                ),
            ),
            Split::IsolateLeader(partition) => {
                let leader = self.resolve(
                    &Target::Leader(partition.clone()),
                    FaultKind::Partition,
                    cluster,
                )?;
                let rest: Vec<NodeId> = nodes.iter().copied().filter(|n| *n != leader).collect();
                (
                    split::groups(&nodes, &[vec![leader], rest.clone()]),
                    format!(
                        "partition [{leader}] | {} (isolate leader of {partition})",
                        show(&rest)
                    ),
                )
            }
            Split::MajoritiesRing => {
                let (cut, ring) = split::majorities_ring(&nodes, &mut self.random);
                (cut, format!("partition majorities ring {}", show(&ring)))
            }
            Split::Bridge => {
                let (cut, first, second, bridge) = split::bridge(&nodes, &mut self.random);
                (
                    cut,
                    format!(
                        "partition {} | {} (bridge node {bridge})",
                        show(&first),
                        show(&second)
                    ),
                )
            }
        })
    }
}

/// A toxic and its attributes, as a scenario would write them.
fn describe_toxic(toxic: &Toxic) -> String {
    let milliseconds = |duration: &Duration| format!("{}ms", duration.as_millis());
    match toxic {
        Toxic::Latency { latency, jitter } => format!(
            "latency {} ± {}",
            milliseconds(latency),
            milliseconds(jitter)
        ),
        Toxic::Bandwidth { rate } => format!("bandwidth {rate} KB/s"),
        Toxic::Timeout { timeout } => format!("timeout {}", milliseconds(timeout)),
        Toxic::ResetPeer { timeout } => format!("reset_peer after {}", milliseconds(timeout)),
        Toxic::SlowClose { delay } => format!("slow_close {}", milliseconds(delay)),
        Toxic::Slicer {
            average_size,
            size_variation,
            delay,
        } => format!(
            "slicer {average_size} ± {size_variation} bytes, {}us apart",
            delay.as_micros()
        ),
        Toxic::LimitData { bytes } => format!("limit_data {bytes} bytes"),
    }
}

/// Polls `probe` until it answers or `TARGET_WAIT_MS` passes.
fn wait_for<T>(mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + Duration::from_millis(TARGET_WAIT_MS);
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Cluster;
    use std::path::{Path, PathBuf};

    /// A cluster that only records states: enough for choosing targets.
    struct StateOnlyCluster {
        states: Vec<NodeState>,
    }

    impl Cluster for StateOnlyCluster {
        fn runtime(&self) -> &'static str {
            "test"
        }
        fn node_ids(&self) -> Vec<NodeId> {
            (1..=self.states.len() as NodeId).collect()
        }
        fn bootstrap(&self) -> String {
            String::new()
        }
        fn state(&self, node: NodeId) -> NodeState {
            self.states[node as usize - 1]
        }
        fn kill(&mut self, node: NodeId) -> anyhow::Result<()> {
            self.states[node as usize - 1] = NodeState::Down;
            Ok(())
        }
        fn stop(&mut self, node: NodeId) -> anyhow::Result<()> {
            self.kill(node)
        }
        fn pause(&mut self, node: NodeId) -> anyhow::Result<()> {
            self.states[node as usize - 1] = NodeState::Paused;
            Ok(())
        }
        fn resume(&mut self, node: NodeId) -> anyhow::Result<()> {
            self.start(node)
        }
        fn start(&mut self, node: NodeId) -> anyhow::Result<()> {
            self.states[node as usize - 1] = NodeState::Running;
            Ok(())
        }
        fn wipe(&mut self, node: NodeId) -> anyhow::Result<()> {
            self.start(node)
        }
        fn is_healthy(&self, node: NodeId) -> bool {
            self.state(node) == NodeState::Running
        }
        fn metrics(&self, _: NodeId) -> anyhow::Result<String> {
            anyhow::bail!("no metrics")
        }
        fn unexpected_exits(&mut self) -> Vec<(NodeId, String)> {
            Vec::new()
        }
        fn cpu_seconds(&self) -> f64 {
            0.0
        }
        fn collect_logs(&self, _: &Path) -> anyhow::Result<Vec<String>> {
            Ok(Vec::new())
        }
        fn teardown(&mut self, _: bool) -> Option<PathBuf> {
            None
        }
    }

    /// Kills and restarts `random` nodes; returns the nodes chosen.
    fn random_choices(seed: u64) -> Vec<NodeId> {
        let mut cluster = StateOnlyCluster {
            states: vec![NodeState::Running; 5],
        };
        let mut injector = FaultInjector::new(seed);
        let mut chosen = Vec::new();
        for round in 0..8 {
            let kind = if round % 2 == 0 {
                FaultKind::Kill
            } else {
                FaultKind::Restart
            };
            let node = injector
                .resolve(&Target::Random, kind, &cluster)
                .expect("a node");
            injector.act(kind, node, &mut cluster, round).expect("acts");
            chosen.push(node);
        }
        chosen
    }

    #[test]
    fn the_same_seed_chooses_the_same_random_targets() {
        assert_eq!(random_choices(42), random_choices(42));
        let all_seeds_alike = (0..20).all(|seed| random_choices(seed) == random_choices(42));
        assert!(!all_seeds_alike, "the seed has no effect");
    }

    #[test]
    fn random_restarts_pick_a_down_node_and_killed_names_the_last_one() {
        let mut cluster = StateOnlyCluster {
            states: vec![NodeState::Running; 3],
        };
        let mut injector = FaultInjector::new(1);
        injector.act(FaultKind::Kill, 2, &mut cluster, 0).unwrap();
        let restarted = injector
            .resolve(&Target::Random, FaultKind::Restart, &cluster)
            .unwrap();
        assert_eq!(restarted, 2, "the only down node");
        let killed = injector
            .resolve(&Target::Killed, FaultKind::Restart, &cluster)
            .unwrap();
        assert_eq!(killed, 2);
        assert!(injector
            .resolve(&Target::Paused, FaultKind::Resume, &cluster)
            .is_err());
        assert_eq!(injector.started_nodes.len(), 0, "a kill starts nothing");
        injector
            .act(FaultKind::Restart, 2, &mut cluster, 5)
            .unwrap();
        assert_eq!(injector.started_nodes[0].started_at_ms, 5);
    }
}
