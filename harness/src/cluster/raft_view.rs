//! The cluster's Raft state as its brokers publish it on `/metrics`: who leads each partition,
//! which nodes hold a replica, and how far each follower lags. Faults resolve `leader(t/p)` and
//! `follower(t/p)` from it, and recovery is judged by it, so the bench needs no Kafka client on
//! a link it may be cutting. The brokers refresh these gauges every 250 ms (5 ticks), as often
//! as the bench polls them; the two together bound the precision of recovery times.

use std::collections::{BTreeMap, BTreeSet};

use crate::scenario::NodeId;

/// The broker's bound on an in-sync follower's lag (`IN_SYNC_LAG_ENTRIES`): a replica this close
/// to its leader counts as caught up.
pub const CAUGHT_UP_LAG_ENTRIES: u64 = 1000;

/// One node's gauges for one Raft group.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupGauges {
    /// `__metadata` for the metadata group.
    pub topic: String,
    /// Empty for the metadata group.
    pub partition: String,
    pub is_leader: bool,
    pub term: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    /// On a leader: each follower's lag in entries.
    pub lag_entries: BTreeMap<NodeId, u64>,
}

/// Gauges of every node that answered, by node and Raft group id.
#[derive(Clone, Debug, Default)]
pub struct RaftView {
    pub nodes: BTreeMap<NodeId, BTreeMap<u64, GroupGauges>>,
}

impl RaftView {
    /// Adds one node's `/metrics` text.
    pub fn add_node(&mut self, node: NodeId, metrics_text: &str) {
        let groups = self.nodes.entry(node).or_default();
        for line in metrics_text.lines() {
            let Some(sample) = Sample::parse(line) else {
                continue;
            };
            let Some(group) = sample
                .label("group")
                .and_then(|group| group.parse::<u64>().ok())
            else {
                continue;
            };
            let gauges = groups.entry(group).or_default();
            if let Some(topic) = sample.label("topic") {
                gauges.topic = topic.to_string();
            }
            if let Some(partition) = sample.label("partition") {
                gauges.partition = partition.to_string();
            }
            let value = sample.value.max(0.0) as u64;
            match sample.name {
                "chronik_raft_is_leader" => gauges.is_leader = value == 1,
                "chronik_raft_term" => gauges.term = value,
                "chronik_raft_commit_index" => gauges.commit_index = value,
                "chronik_raft_applied_index" => gauges.applied_index = value,
                "chronik_raft_replication_lag_entries" => {
                    if let Some(peer) = sample.label("peer").and_then(|peer| peer.parse().ok()) {
                        gauges.lag_entries.insert(peer, value);
                    }
                }
                _ => {}
            }
        }
    }

    /// The group id of a topic's partition, as any node reports it.
    pub fn group_of(&self, topic: &str, partition: u32) -> Option<u64> {
        let partition = partition.to_string();
        self.nodes.values().find_map(|groups| {
            groups
                .iter()
                .find(|(_, gauges)| gauges.topic == topic && gauges.partition == partition)
                .map(|(group, _)| *group)
        })
    }

    /// The node that leads `group` in the highest term any node claims leadership in.
    pub fn leader(&self, group: u64) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter_map(|(node, groups)| {
                let gauges = groups.get(&group)?;
                gauges.is_leader.then_some((gauges.term, *node))
            })
            .max()
            .map(|(_, node)| node)
    }

    /// The nodes that hold a replica of `group`.
    pub fn replicas(&self, group: u64) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, groups)| groups.contains_key(&group))
            .map(|(node, _)| *node)
            .collect()
    }

    /// The leader of a topic's partition.
    pub fn partition_leader(&self, topic: &str, partition: u32) -> Option<NodeId> {
        self.leader(self.group_of(topic, partition)?)
    }

    /// The followers of a topic's partition (its replicas but the leader), in id order.
    pub fn partition_followers(&self, topic: &str, partition: u32) -> Vec<NodeId> {
        let Some(group) = self.group_of(topic, partition) else {
            return Vec::new();
        };
        let leader = self.leader(group);
        self.replicas(group)
            .into_iter()
            .filter(|node| Some(*node) != leader)
            .collect()
    }

    /// Whether `node` has caught up: every group it holds, or whose leader counts it as a
    /// follower, has a leader, and `node` has applied to within the in-sync lag of that
    /// leader's commit index (or leads it). Its own applied index is read from its own gauges,
    /// so a restarted or wiped node is judged by what it reports now, not by what a leader
    /// remembered of it before. A node that did not answer is not caught up.
    pub fn is_caught_up(&self, node: NodeId) -> bool {
        let Some(own) = self.nodes.get(&node) else {
            return false;
        };
        let mut groups: BTreeSet<u64> = own.keys().copied().collect();
        for node_groups in self.nodes.values() {
            for (group, gauges) in node_groups {
                if gauges.is_leader && gauges.lag_entries.contains_key(&node) {
                    groups.insert(*group);
                }
            }
        }
        groups.into_iter().all(|group| match self.leader(group) {
            Some(leader) if leader == node => true,
            Some(leader) => {
                let leader_gauges = &self.nodes[&leader][&group];
                let lag_ok = leader_gauges
                    .lag_entries
                    .get(&node)
                    .is_none_or(|lag| *lag <= CAUGHT_UP_LAG_ENTRIES);
                own.get(&group).is_some_and(|mine| {
                    mine.applied_index + CAUGHT_UP_LAG_ENTRIES >= leader_gauges.commit_index
                }) && lag_ok
            }
            None => false,
        })
    }

    /// Groups with no leader among the answering nodes (named `topic/partition`).
    pub fn leaderless(&self) -> Vec<String> {
        let mut groups: BTreeMap<u64, &GroupGauges> = BTreeMap::new();
        for node_groups in self.nodes.values() {
            for (group, gauges) in node_groups {
                groups.entry(*group).or_insert(gauges);
            }
        }
        groups
            .into_iter()
            .filter(|(group, _)| self.leader(*group).is_none())
            .map(|(_, gauges)| format!("{}/{}", gauges.topic, gauges.partition))
            .collect()
    }
}

/// One Prometheus text-format sample: `name{label="value",...} value`.
struct Sample<'a> {
    name: &'a str,
    labels: Vec<(&'a str, &'a str)>,
    value: f64,
}

impl<'a> Sample<'a> {
    fn parse(line: &'a str) -> Option<Self> {
        if line.starts_with('#') {
            return None;
        }
        let (head, value) = line.rsplit_once(' ')?;
        let value = value.parse().ok()?;
        let (name, labels) = match head.split_once('{') {
            Some((name, rest)) => (name, rest.strip_suffix('}')?),
            None => (head, ""),
        };
        let labels = labels
            .split(',')
            .filter(|pair| !pair.is_empty())
            .filter_map(|pair| {
                let (key, value) = pair.split_once('=')?;
                Some((key, value.trim_matches('"')))
            })
            .collect();
        Some(Self {
            name,
            labels,
            value,
        })
    }

    fn label(&self, key: &str) -> Option<&'a str> {
        self.labels
            .iter()
            .find(|(name, _)| *name == key)
            .map(|(_, value)| *value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEADER: &str = r#"# TYPE chronik_raft_is_leader gauge
chronik_raft_is_leader{group="3",topic="events",partition="0"} 1
chronik_raft_term{group="3",topic="events",partition="0"} 4
chronik_raft_replication_lag_entries{group="3",topic="events",partition="0",peer="2"} 12
chronik_raft_replication_lag_entries{group="3",topic="events",partition="0",peer="3"} 5000
chronik_raft_is_leader{group="0",topic="__metadata",partition=""} 0
chronik_raft_term{group="0",topic="__metadata",partition=""} 2
"#;
    const FOLLOWER: &str = r#"chronik_raft_is_leader{group="3",topic="events",partition="0"} 0
chronik_raft_term{group="3",topic="events",partition="0"} 4
chronik_raft_is_leader{group="0",topic="__metadata",partition=""} 1
chronik_raft_term{group="0",topic="__metadata",partition=""} 2
chronik_raft_replication_lag_entries{group="0",topic="__metadata",partition="",peer="1"} 0
"#;

    fn view() -> RaftView {
        let mut view = RaftView::default();
        view.add_node(1, LEADER);
        view.add_node(2, FOLLOWER);
        view.add_node(3, FOLLOWER);
        view
    }

    #[test]
    fn finds_leaders_and_followers_of_a_partition() {
        let view = view();
        assert_eq!(view.group_of("events", 0), Some(3));
        assert_eq!(view.partition_leader("events", 0), Some(1));
        assert_eq!(view.partition_followers("events", 0), vec![2, 3]);
        assert_eq!(
            view.leader(0),
            Some(3),
            "the highest term wins; ties by node id"
        );
        assert_eq!(view.group_of("events", 1), None);
        assert!(view.leaderless().is_empty());
    }

    #[test]
    fn a_node_is_caught_up_when_every_leader_sees_it_in_sync() {
        let view = view();
        assert!(
            view.is_caught_up(1),
            "leads events/0, in sync on the metadata group"
        );
        assert!(!view.is_caught_up(3), "5000 entries behind on events/0");
        assert!(!view.is_caught_up(4), "did not answer");
    }

    #[test]
    fn a_wiped_node_is_judged_by_what_it_reports_now() {
        let leader = r#"chronik_raft_is_leader{group="3",topic="events",partition="0"} 1
chronik_raft_term{group="3",topic="events",partition="0"} 4
chronik_raft_commit_index{group="3",topic="events",partition="0"} 90000
chronik_raft_replication_lag_entries{group="3",topic="events",partition="0",peer="2"} 0
"#;
        let mut view = RaftView::default();
        view.add_node(1, leader);
        view.add_node(2, "");
        assert!(
            !view.is_caught_up(2),
            "holds nothing yet, though the leader's gauge still says lag 0"
        );
        view.add_node(
            2,
            r#"chronik_raft_applied_index{group="3",topic="events",partition="0"} 10
"#,
        );
        assert!(!view.is_caught_up(2), "89990 entries behind the commit");
        view.add_node(
            2,
            r#"chronik_raft_applied_index{group="3",topic="events",partition="0"} 89500
"#,
        );
        assert!(view.is_caught_up(2));
    }

    #[test]
    fn a_stale_leader_in_a_lower_term_is_not_the_leader() {
        let mut view = view();
        view.add_node(
            2,
            r#"chronik_raft_is_leader{group="3",topic="events",partition="0"} 1
chronik_raft_term{group="3",topic="events",partition="0"} 5
"#,
        );
        assert_eq!(view.partition_leader("events", 0), Some(2));
    }
}
