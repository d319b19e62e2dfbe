//! The durable state changes of the group coordinator and the state machine they apply to.
//!
//! Every change that must survive a restart is a [`GroupEvent`]; [`OffsetState::apply`] is the
//! only way the durable state changes, on the live path and on replay alike. A replicated
//! coordinator can ship the same events through a log.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::replicated::{StoredGroup, StoredGroups};

/// A committed offset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetValue {
    pub offset: i64,
    /// -1 when the client did not send one.
    pub leader_epoch: i32,
    pub metadata: String,
    /// Wall-clock time of the commit (ms since the Unix epoch).
    pub commit_timestamp_ms: i64,
}

/// One partition's committed offset inside an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetEntry {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

impl OffsetEntry {
    pub fn value(&self) -> OffsetValue {
        OffsetValue {
            offset: self.offset,
            leader_epoch: self.leader_epoch,
            metadata: self.metadata.clone(),
            commit_timestamp_ms: self.commit_timestamp_ms,
        }
    }
}

/// A durable state change of the coordinator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event")]
pub enum GroupEvent {
    /// A group committed offsets (an OffsetCommit, or a compaction snapshot of a group).
    OffsetsCommitted {
        group: String,
        offsets: Vec<OffsetEntry>,
    },
    /// A group's membership changed: `Some` when a generation became Stable, `None` when the
    /// group became Empty. `generation` orders the changes of one group.
    GroupStateChanged {
        group: String,
        generation: i32,
        /// The metadata term of the coordinator that wrote it (0: not fenced, as in events
        /// rebuilding a snapshot); see [`GroupEvent::former_coordinator_term`].
        #[serde(default)]
        coordinator_term: u64,
        state: Option<StoredGroup>,
    },
}

impl GroupEvent {
    /// How many entries the event carries (compaction accounting): partitions, or one
    /// membership.
    pub fn entry_count(&self) -> usize {
        match self {
            GroupEvent::OffsetsCommitted { offsets, .. } => offsets.len(),
            GroupEvent::GroupStateChanged { .. } => 1,
        }
    }

    /// The term of the coordinator that wrote this group state change, when that is not
    /// `entry_term`, the term of the Raft entry it was committed in: the coordinator was
    /// deposed and its proposal forwarded to the new leader, which may already serve the
    /// group from newer state. Such a change must not be applied (as Kafka fences a deposed
    /// coordinator's writes by its epoch). A coordinator's own proposals are appended in the
    /// term it coordinates in.
    pub fn former_coordinator_term(&self, entry_term: u64) -> Option<u64> {
        match self {
            GroupEvent::GroupStateChanged {
                coordinator_term, ..
            } if *coordinator_term != 0 && *coordinator_term != entry_term => {
                Some(*coordinator_term)
            }
            _ => None,
        }
    }
}

/// Committed offsets (group → topic → partition → value) and the replicated membership of
/// Stable groups.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OffsetState {
    groups: BTreeMap<String, BTreeMap<String, BTreeMap<i32, OffsetValue>>>,
    entries: usize,
    memberships: StoredGroups,
}

/// Partitions per snapshot event, so that no journal record gets huge.
const SNAPSHOT_CHUNK: usize = 1_000;

impl OffsetState {
    pub fn apply(&mut self, event: &GroupEvent) {
        match event {
            GroupEvent::OffsetsCommitted { group, offsets } => {
                let topics = self.groups.entry(group.clone()).or_default();
                for entry in offsets {
                    let partitions = match topics.get_mut(&entry.topic) {
                        Some(partitions) => partitions,
                        None => topics.entry(entry.topic.clone()).or_default(),
                    };
                    if partitions.insert(entry.partition, entry.value()).is_none() {
                        self.entries += 1;
                    }
                }
            }
            GroupEvent::GroupStateChanged {
                group,
                generation,
                state,
                ..
            } => self.memberships.apply(group, *generation, state.as_ref()),
        }
    }

    /// The replicated membership of Stable groups.
    pub fn memberships(&self) -> &StoredGroups {
        &self.memberships
    }

    /// Replaces the replicated membership with a snapshot's.
    pub fn restore_memberships(&mut self, groups: &BTreeMap<String, StoredGroup>) {
        self.memberships.restore(groups);
    }

    /// Events that rebuild this state from nothing: the offsets, then the memberships.
    pub fn snapshot(&self) -> Vec<GroupEvent> {
        let mut events = self.offset_events();
        events.extend(self.membership_events());
        events
    }

    /// The committed offsets alone, as events that rebuild them.
    pub fn offset_events(&self) -> Vec<GroupEvent> {
        let mut events = Vec::new();
        for (group, topics) in &self.groups {
            let mut offsets = Vec::new();
            for (topic, partitions) in topics {
                for (partition, value) in partitions {
                    offsets.push(OffsetEntry {
                        topic: topic.clone(),
                        partition: *partition,
                        offset: value.offset,
                        leader_epoch: value.leader_epoch,
                        metadata: value.metadata.clone(),
                        commit_timestamp_ms: value.commit_timestamp_ms,
                    });
                    if offsets.len() == SNAPSHOT_CHUNK {
                        events.push(GroupEvent::OffsetsCommitted {
                            group: group.clone(),
                            offsets: std::mem::take(&mut offsets),
                        });
                    }
                }
            }
            if !offsets.is_empty() {
                events.push(GroupEvent::OffsetsCommitted {
                    group: group.clone(),
                    offsets,
                });
            }
        }
        events
    }

    fn membership_events(&self) -> impl Iterator<Item = GroupEvent> + '_ {
        self.memberships
            .iter()
            .map(|(group, state)| GroupEvent::GroupStateChanged {
                group: group.clone(),
                generation: state.generation,
                coordinator_term: 0,
                state: Some(state.clone()),
            })
    }

    /// Number of (group, topic, partition) entries plus stored memberships (what a snapshot
    /// of the state carries, for compaction accounting).
    pub fn live_entries(&self) -> usize {
        self.entries + self.memberships.len()
    }

    pub fn has_group(&self, group: &str) -> bool {
        self.groups.contains_key(group)
    }

    pub fn group_ids(&self) -> impl Iterator<Item = &str> {
        self.groups.keys().map(String::as_str)
    }

    /// A group's committed offsets by topic.
    pub fn group(&self, group: &str) -> Option<&BTreeMap<String, BTreeMap<i32, OffsetValue>>> {
        self.groups.get(group)
    }

    pub fn get(&self, group: &str, topic: &str, partition: i32) -> Option<&OffsetValue> {
        self.groups.get(group)?.get(topic)?.get(&partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(topic: &str, partition: i32, offset: i64) -> OffsetEntry {
        OffsetEntry {
            topic: topic.into(),
            partition,
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: 1,
        }
    }

    #[test]
    fn apply_and_snapshot_round_trip() {
        let mut state = OffsetState::default();
        state.apply(&GroupEvent::OffsetsCommitted {
            group: "g".into(),
            offsets: vec![entry("t", 0, 5), entry("t", 1, 7)],
        });
        state.apply(&GroupEvent::OffsetsCommitted {
            group: "g".into(),
            offsets: vec![entry("t", 0, 9)],
        });
        assert_eq!(state.live_entries(), 2);
        assert_eq!(state.get("g", "t", 0).unwrap().offset, 9);
        let mut rebuilt = OffsetState::default();
        for event in state.snapshot() {
            rebuilt.apply(&event);
        }
        assert_eq!(rebuilt, state);
    }

    #[test]
    fn event_json_is_tagged() {
        let event = GroupEvent::OffsetsCommitted {
            group: "g".into(),
            offsets: vec![entry("t", 0, 5)],
        };
        let json = serde_json::to_string(&event).unwrap();
        assert!(json.contains("\"event\":\"OffsetsCommitted\""), "{json}");
        assert_eq!(serde_json::from_str::<GroupEvent>(&json).unwrap(), event);
    }
}
