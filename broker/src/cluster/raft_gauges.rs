//! The per-group Raft gauges (role, term, commit and applied index, log length, and on a
//! leader each follower's lag), registered once per group and then only set: a registry
//! lookup with freshly built labels for every gauge of every group at each publication would
//! cost a node with many partitions far more than setting a handle does. The bench reads them
//! to find leaders and to see when a restarted node has caught up.

use std::collections::{BTreeMap, HashMap};

use metrics::Gauge;
use raft::StateRole;

use super::replicas::LocalReplicas;
use crate::raft::multi_raft::MultiRaft;

struct GroupGauges {
    labels: Vec<(&'static str, String)>,
    is_leader: Gauge,
    term: Gauge,
    commit_index: Gauge,
    applied_index: Gauge,
    last_index: Gauge,
    log_entries: Gauge,
    lag_entries: BTreeMap<u64, Gauge>,
}

impl GroupGauges {
    fn register(group: u64, topic: String, partition: String) -> GroupGauges {
        let labels = vec![
            ("group", group.to_string()),
            ("topic", topic),
            ("partition", partition),
        ];
        GroupGauges {
            is_leader: metrics::gauge!("chronik_raft_is_leader", &labels),
            term: metrics::gauge!("chronik_raft_term", &labels),
            commit_index: metrics::gauge!("chronik_raft_commit_index", &labels),
            applied_index: metrics::gauge!("chronik_raft_applied_index", &labels),
            last_index: metrics::gauge!("chronik_raft_last_index", &labels),
            log_entries: metrics::gauge!("chronik_raft_log_entries", &labels),
            lag_entries: BTreeMap::new(),
            labels,
        }
    }

    fn lag_entries(&mut self, peer: u64) -> &Gauge {
        self.lag_entries.entry(peer).or_insert_with(|| {
            let mut labels = self.labels.clone();
            labels.push(("peer", peer.to_string()));
            metrics::gauge!("chronik_raft_replication_lag_entries", &labels)
        })
    }
}

#[derive(Default)]
pub(super) struct RaftGauges {
    groups: HashMap<u64, GroupGauges>,
}

impl RaftGauges {
    /// Sets every group's gauges from its Raft status. A group's labels name its partition,
    /// or `__metadata` for the metadata group.
    pub fn publish(&mut self, node_id: u64, multi: &MultiRaft, replicas: &LocalReplicas) {
        metrics::gauge!("chronik_raft_log_bytes").set(multi.store_used_bytes() as f64);
        self.groups.retain(|group, _| multi.has_group(*group));
        for group in multi.group_ids() {
            let Some(status) = multi.status(group) else {
                continue;
            };
            let gauges = self.groups.entry(group).or_insert_with(|| {
                let (topic, partition) = match replicas.get(group) {
                    Some(replica) => (replica.topic.clone(), replica.index.to_string()),
                    None => ("__metadata".to_string(), String::new()),
                };
                GroupGauges::register(group, topic, partition)
            });
            let is_leader = status.role == StateRole::Leader;
            gauges.is_leader.set(if is_leader { 1.0 } else { 0.0 });
            gauges.term.set(status.term as f64);
            gauges.commit_index.set(status.commit as f64);
            gauges.applied_index.set(status.applied as f64);
            gauges.last_index.set(status.last_index as f64);
            gauges
                .log_entries
                .set(status.last_index.saturating_sub(status.truncated_index) as f64);
            for (peer, matched) in &status.matched {
                if *peer == node_id {
                    continue;
                }
                let lag = status.last_index.saturating_sub(*matched);
                gauges.lag_entries(*peer).set(lag as f64);
            }
        }
    }
}
