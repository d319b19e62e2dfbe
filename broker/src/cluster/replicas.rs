//! The partition replicas this node holds, by Raft group, and what is known of each group's
//! leadership (published by the Raft loop, read by handlers).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::partition::Partition;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupView {
    /// Node id of the leader; 0 when unknown.
    pub leader: u64,
    /// The latest leader this node knew of, kept when the leader becomes unknown (a node that
    /// starts an election forgets its leader); 0 when it never knew one.
    pub last_leader: u64,
    pub term: u64,
    pub is_leader: bool,
    /// Replicas within the in-sync lag of the leader (known on the leader only; elsewhere
    /// empty).
    pub in_sync: Vec<i32>,
    /// On the leader: it has applied an entry of its own term, so its state machine holds
    /// everything committed before the term began. False elsewhere.
    pub applied_own_term: bool,
}

#[derive(Default)]
pub struct LocalReplicas {
    partitions: RwLock<HashMap<u64, Arc<Partition>>>,
    views: RwLock<HashMap<u64, GroupView>>,
}

impl LocalReplicas {
    pub fn insert(&self, partition: Arc<Partition>) {
        self.partitions
            .write()
            .insert(partition.group_id, partition);
    }

    pub fn remove(&self, group: u64) -> Option<Arc<Partition>> {
        self.views.write().remove(&group);
        self.partitions.write().remove(&group)
    }

    pub fn get(&self, group: u64) -> Option<Arc<Partition>> {
        self.partitions.read().get(&group).cloned()
    }

    pub fn all(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().values().cloned().collect()
    }

    pub fn view(&self, group: u64) -> GroupView {
        self.views.read().get(&group).cloned().unwrap_or_default()
    }

    pub fn set_view(&self, group: u64, view: GroupView) {
        self.views.write().insert(group, view);
    }

    pub fn update_view(&self, group: u64, change: impl FnOnce(&mut GroupView)) {
        change(self.views.write().entry(group).or_default());
    }
}
