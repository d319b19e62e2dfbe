//! The replicated form of a group's membership: what a new coordinator needs to carry on a
//! Stable generation without a rebalance (Kafka's group metadata record).
//!
//! The coordinator writes a [`StoredGroup`] when a generation becomes Stable (the leader's
//! assignment is in) and removes it when the group becomes Empty. Every node applies those
//! events to [`StoredGroups`]; a node that becomes coordinator materializes its groups from
//! them (see [`super::materialize`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One protocol (assignor) a member supports, with its subscription metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredProtocol {
    pub name: String,
    #[serde(with = "hex_bytes")]
    pub metadata: Vec<u8>,
}

/// A member of a Stable generation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMember {
    pub member_id: String,
    #[serde(default)]
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    /// In the member's order of preference.
    pub protocols: Vec<StoredProtocol>,
    /// What the leader assigned to this member in this generation.
    #[serde(with = "hex_bytes")]
    pub assignment: Vec<u8>,
}

/// A group's Stable generation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredGroup {
    pub generation: i32,
    pub protocol_type: String,
    pub protocol_name: String,
    pub leader: String,
    /// In join order (the first is the default leader).
    pub members: Vec<StoredMember>,
}

/// The replicated membership of every group with a Stable generation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredGroups {
    groups: BTreeMap<String, StoredGroup>,
}

impl StoredGroups {
    /// Applies a state change of `group` at `generation`: `Some` stores the generation, `None`
    /// forgets the group (it became Empty). A change older than what is stored is ignored, so
    /// a late write of an earlier generation never replaces a later one.
    pub fn apply(&mut self, group: &str, generation: i32, state: Option<&StoredGroup>) {
        if self
            .groups
            .get(group)
            .is_some_and(|stored| stored.generation > generation)
        {
            return;
        }
        match state {
            Some(state) => {
                self.groups.insert(group.to_string(), state.clone());
            }
            None => {
                self.groups.remove(group);
            }
        }
    }

    pub fn get(&self, group: &str) -> Option<&StoredGroup> {
        self.groups.get(group)
    }

    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &StoredGroup)> {
        self.groups.iter()
    }

    /// Everything, for a snapshot of the metadata group.
    pub fn export(&self) -> BTreeMap<String, StoredGroup> {
        self.groups.clone()
    }

    /// Replaces everything with a snapshot's groups.
    pub fn restore(&mut self, groups: &BTreeMap<String, StoredGroup>) {
        self.groups = groups.clone();
    }
}

/// Byte strings as lowercase hex in JSON (metadata entries and images are JSON).
mod hex_bytes {
    use std::fmt::Write;

    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        let mut text = String::with_capacity(bytes.len() * 2);
        for byte in bytes {
            let _ = write!(text, "{byte:02x}");
        }
        serializer.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.len() % 2 != 0 {
            return Err(D::Error::custom("hex text of odd length"));
        }
        (0..text.len())
            .step_by(2)
            .map(|at| {
                text.get(at..at + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                    .ok_or_else(|| D::Error::custom("not hex"))
            })
            .collect()
    }
}
