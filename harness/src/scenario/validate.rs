//! Checks across fields: what no single value can tell alone. Runs on a fully read scenario;
//! every problem names the key it is about (and so its line), like a reading error.

use std::collections::{BTreeMap, BTreeSet};

use super::duration::format as show;
use super::fault::{Action, Fault, FaultKind, Scope, Split};
use super::issues::Issues;
use super::model::{Acks, NodeId, Scenario, Topic};
use super::path::KeyPath;
use super::target::{PartitionRef, Target};

/// Environment the bench sets on every broker itself.
const BENCH_ENV: [&str; 7] = [
    "CHRONIK_NODE_ID",
    "CHRONIK_PEERS",
    "CHRONIK_DATA_DIR",
    "CHRONIK_LISTEN",
    "CHRONIK_ADVERTISED_ADDR",
    "CHRONIK_METRICS_LISTEN",
    "CHRONIK_RAFT_LISTEN",
];
const ELECTION_TIMEOUT_ENV: &str = "CHRONIK_RAFT_ELECTION_TIMEOUT_MS";

/// librdkafka properties a producer's own keys set, with the key that sets them.
const PRODUCER_PROPERTIES: [(&str, &str); 7] = [
    ("acks", "acks"),
    ("request.required.acks", "acks"),
    ("enable.idempotence", "idempotent"),
    ("compression.type", "compression"),
    ("compression.codec", "compression"),
    ("bootstrap.servers", "(the bench)"),
    ("metadata.broker.list", "(the bench)"),
];

pub(crate) fn validate(scenario: &Scenario, issues: &mut Issues) {
    let check = Checker {
        scenario,
        topics: scenario
            .topics
            .iter()
            .map(|topic| (topic.name.as_str(), topic))
            .collect(),
    };
    check.topics(issues);
    check.env(issues);
    check.clients(issues);
    check.faults(issues);
}

struct Checker<'s> {
    scenario: &'s Scenario,
    topics: BTreeMap<&'s str, &'s Topic>,
}

impl Checker<'_> {
    fn nodes(&self) -> NodeId {
        self.scenario.cluster.nodes
    }

    /// "node 5 does not exist: the cluster has 3 nodes (1 to 3)", or `None` if it does.
    fn missing_node(&self, node: NodeId) -> Option<String> {
        let nodes = self.nodes();
        let range = if nodes == 1 {
            "1".to_string()
        } else {
            format!("1 to {nodes}")
        };
        let plural = if nodes == 1 { "" } else { "s" };
        (node > nodes).then(|| {
            format!("node {node} does not exist: the cluster has {nodes} node{plural} ({range})")
        })
    }

    fn topics(&self, issues: &mut Issues) {
        let path = KeyPath::root().key("topics");
        for (index, topic) in self.scenario.topics.iter().enumerate() {
            let here = path.index(index);
            if let Some(first) = self.scenario.topics[..index]
                .iter()
                .position(|other| other.name == topic.name)
            {
                let message = format!(
                    "topic `{}` is already declared at topics[{first}]",
                    topic.name
                );
                issues.at_value(&here.key("name"), message);
            }
            if topic.replication_factor > self.nodes() {
                let message = format!(
                    "replication_factor {} is above cluster.nodes ({}): each replica needs its own node",
                    topic.replication_factor,
                    self.nodes()
                );
                issues.at_value(&here.key("replication_factor"), message);
            }
        }
    }

    fn env(&self, issues: &mut Issues) {
        let cluster = &self.scenario.cluster;
        let path = KeyPath::root().key("cluster").key("env");
        for name in cluster.env.keys() {
            if BENCH_ENV.contains(&name.as_str()) {
                let message = format!("`{name}` is set by the bench for each node; leave it out");
                issues.at_key(&path.key(name), message);
            } else if name == ELECTION_TIMEOUT_ENV && cluster.election_timeout.is_some() {
                let message =
                    format!("`{name}` is set by cluster.election_timeout; give it there only");
                issues.at_key(&path.key(name), message);
            }
        }
    }

    /// `None` if the topic is declared, else why not.
    fn undeclared(&self, topic: &str) -> Option<String> {
        if self.topics.contains_key(topic) {
            return None;
        }
        let declared: Vec<&str> = self.topics.keys().copied().collect();
        Some(format!(
            "topic `{topic}` is not declared in `topics` (declared: {})",
            if declared.is_empty() {
                "none".to_string()
            } else {
                declared.join(", ")
            }
        ))
    }

    fn clients(&self, issues: &mut Issues) {
        let workload = &self.scenario.workload;
        let path = KeyPath::root().key("workload");
        for (index, producer) in workload.producers.iter().enumerate() {
            let here = path.key("producers").index(index);
            if let Some(message) = self.undeclared(&producer.topic) {
                issues.at_value(&here.key("topic"), message);
            }
            if let Some(stop_after) = producer.stop_after {
                if stop_after > workload.duration {
                    let message = format!(
                        "producers stop within the measured window; {} is past workload.duration ({})",
                        show(stop_after),
                        show(workload.duration)
                    );
                    issues.at_value(&here.key("stop_after"), message);
                }
            }
            if producer.idempotent && producer.acks != Acks::All {
                let message = "an idempotent producer needs acks: all (librdkafka refuses others)";
                issues.at_value(&here.key("acks"), message);
            }
            for name in producer.config.keys() {
                if let Some((_, owner)) = PRODUCER_PROPERTIES.iter().find(|(key, _)| key == name) {
                    let message = format!("`{name}` is set by {owner}; leave it out of `config`");
                    issues.at_key(&here.key("config").key(name), message);
                }
            }
        }
        for (index, consumer) in workload.consumers.iter().enumerate() {
            if let Some(message) = self.undeclared(&consumer.topic) {
                let here = path.key("consumers").index(index);
                issues.at_value(&here.key("topic"), message);
            }
        }
    }

    /// Why `partition` does not exist, or `None` if it does.
    fn missing_partition(&self, partition: &PartitionRef) -> Option<String> {
        let Some(topic) = self.topics.get(partition.topic.as_str()) else {
            return self.undeclared(&partition.topic);
        };
        (partition.partition >= topic.partitions).then(|| {
            format!(
                "partition {} does not exist: topic `{}` has {} partitions (0 to {})",
                partition.partition,
                topic.name,
                topic.partitions,
                topic.partitions - 1
            )
        })
    }

    fn faults(&self, issues: &mut Issues) {
        let window = self.scenario.workload.duration;
        let path = KeyPath::root().key("faults");
        let mut history = History::default();
        for (index, fault) in self.scenario.faults.iter().enumerate() {
            let here = path.index(index);
            if fault.at >= window {
                let message = format!(
                    "{} is not within workload.duration ({}): faults fire inside the measured window",
                    show(fault.at),
                    show(window)
                );
                issues.at_value(&here.key("at"), message);
            }
            if let Some(previous) = index.checked_sub(1).map(|i| &self.scenario.faults[i]) {
                if fault.at < previous.at {
                    let message = format!(
                        "faults are listed in time order: {} is before faults[{}].at ({})",
                        show(fault.at),
                        index - 1,
                        show(previous.at)
                    );
                    issues.at_value(&here.key("at"), message);
                }
            }
            if let Some(duration) = network_duration(fault) {
                let end = fault.at + duration;
                if end > window && fault.at < window {
                    let message = format!(
                        "the fault would last until {}, past workload.duration ({})",
                        show(end),
                        show(window)
                    );
                    issues.at_value(&here.key("duration"), message);
                }
            }
            self.action(fault, &here, &history, issues);
            history.record(fault.kind());
        }
    }

    fn action(&self, fault: &Fault, here: &KeyPath, history: &History, issues: &mut Issues) {
        match &fault.action {
            Action::Process { target, .. } => {
                self.target(target, &here.key("target"), history, issues);
            }
            Action::Partition { split, .. } => self.split(split, here, issues),
            Action::Heal => {}
            Action::Toxic(toxic) => match &toxic.scope {
                Scope::Node(target) => self.target(target, &here.key("node"), history, issues),
                Scope::Links(links) => {
                    for (index, link) in links.iter().enumerate() {
                        let missing = link
                            .nodes()
                            .into_iter()
                            .find_map(|node| self.missing_node(node));
                        if let Some(message) = missing {
                            let path = here.key("links").index(index);
                            issues.at_value(&path, format!("`{link}`: {message}"));
                        }
                    }
                }
            },
        }
    }

    fn target(&self, target: &Target, path: &KeyPath, history: &History, issues: &mut Issues) {
        let problem = match target {
            Target::Node(node) => self.missing_node(*node),
            Target::Leader(partition) => self.missing_partition(partition),
            Target::Follower(partition) => self.missing_partition(partition).or_else(|| {
                let topic = self.topics[partition.topic.as_str()];
                (topic.replication_factor < 2).then(|| {
                    format!(
                        "topic `{}` has replication_factor 1: its partitions have no followers",
                        topic.name
                    )
                })
            }),
            Target::Random => None,
            Target::Killed => (!history.down).then(|| {
                "`killed` is the node most recently killed, stopped or wiped, and no earlier fault does that"
                    .to_string()
            }),
            Target::Paused => (!history.paused).then(|| {
                "`paused` is the node most recently paused, and no earlier fault pauses one".to_string()
            }),
        };
        if let Some(message) = problem {
            issues.at_value(path, message);
        }
    }

    fn split(&self, split: &Split, here: &KeyPath, issues: &mut Issues) {
        let (needed, why) = match split {
            Split::Groups(groups) => return self.groups(groups, &here.key("groups"), issues),
            Split::IsolateLeader(partition) => {
                if let Some(message) = self.missing_partition(partition) {
                    return issues.at_value(&here.key("mode"), message);
                }
                (2, "isolating a leader")
            }
            Split::MajoritiesRing => (4, "a majorities ring (on 3 it is the full mesh)"),
            Split::Bridge => (3, "a bridge"),
        };
        if self.nodes() < needed {
            let message = format!(
                "{why} needs at least {needed} nodes; the cluster has {}",
                self.nodes()
            );
            issues.at_value(&here.key("mode"), message);
        }
    }

    fn groups(&self, groups: &[Vec<NodeId>], path: &KeyPath, issues: &mut Issues) {
        let mut seen = BTreeSet::new();
        for (group_index, group) in groups.iter().enumerate() {
            for (index, &node) in group.iter().enumerate() {
                let here = path.index(group_index).index(index);
                if let Some(message) = self.missing_node(node) {
                    issues.at_value(&here, message);
                } else if !seen.insert(node) {
                    issues.at_value(&here, format!("node {node} is in more than one group"));
                }
            }
        }
        if let Some(left_out) = (1..=self.nodes()).find(|node| !seen.contains(node)) {
            let message =
                format!("node {left_out} is in no group; list every node in exactly one group");
            issues.at_value(path, message);
        }
    }
}

/// What earlier faults did, for `killed` and `paused`.
#[derive(Default)]
struct History {
    down: bool,
    paused: bool,
}

impl History {
    fn record(&mut self, kind: FaultKind) {
        match kind {
            FaultKind::Kill | FaultKind::Stop | FaultKind::Wipe => self.down = true,
            FaultKind::Pause => self.paused = true,
            _ => {}
        }
    }
}

fn network_duration(fault: &Fault) -> Option<std::time::Duration> {
    match &fault.action {
        Action::Partition { duration, .. } => *duration,
        Action::Toxic(toxic) => toxic.duration,
        _ => None,
    }
}
