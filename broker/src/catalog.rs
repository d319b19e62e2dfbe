//! The cluster catalog: topics (ids, partition placement, configs) and the brokers' client
//! addresses. It is the state machine of the metadata Raft group: it changes only by applying
//! committed [`MetadataCommand`]s, in log order, on every node, so every node holds the same
//! catalog. Being deterministic is its whole contract: no clocks, no randomness, no I/O.

use std::collections::BTreeMap;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Longest topic name Kafka allows.
pub const MAX_TOPIC_NAME_CHARS: usize = 249;
/// Most partitions one topic may have.
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 10_000;
/// The metadata group's Raft group id; partition groups are numbered from 1.
pub const METADATA_GROUP_ID: u64 = 0;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionAssignment {
    /// The partition's Raft group, unique for the life of the cluster (a re-created topic gets
    /// new groups, so its old replicas can never be mistaken for the new ones).
    pub group_id: u64,
    /// Replica node ids; the first is the preferred leader.
    pub replicas: Vec<i32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicSpec {
    pub name: String,
    pub topic_id: Uuid,
    pub replication_factor: i16,
    /// Topic-level configs that override broker defaults (`retention.ms`, `retention.bytes`,
    /// `segment.bytes`).
    pub configs: BTreeMap<String, String>,
    /// One per partition, by index.
    pub assignments: Vec<PartitionAssignment>,
}

impl TopicSpec {
    pub fn partitions(&self) -> i32 {
        self.assignments.len() as i32
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerAddress {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
}

/// A change to the catalog, as proposed to the metadata group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataCommand {
    RegisterBroker(BrokerAddress),
    CreateTopic {
        name: String,
        topic_id: Uuid,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
    },
    DeleteTopic {
        name: String,
    },
    CreatePartitions {
        name: String,
        count: i32,
    },
    /// Committed consumer-group offsets; applied to the group offset state, not the catalog.
    GroupOffsets(crate::group::GroupEvent),
}

/// What applying a command changed, for the node to act on (open or drop local replicas).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CatalogChange {
    Nothing,
    PartitionsCreated {
        topic: TopicSpec,
        indexes: std::ops::Range<i32>,
    },
    TopicDeleted(TopicSpec),
}

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum CatalogError {
    #[error("topic '{0}' already exists")]
    AlreadyExists(String),
    #[error("topic '{0}' does not exist")]
    NotFound(String),
    #[error("invalid topic name '{name}': {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("invalid partition count {count}: {reason}")]
    InvalidPartitions { count: i32, reason: &'static str },
    #[error("replication factor {factor} is not between 1 and the {nodes} node(s) of the cluster")]
    InvalidReplicationFactor { factor: i16, nodes: usize },
    #[error("group state written by the coordinator of term {written_term}, committed in term {entry_term}")]
    FormerGroupCoordinator { written_term: u64, entry_term: u64 },
}

/// Everything the catalog holds; a snapshot of the metadata group carries it whole.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogState {
    topics: BTreeMap<String, TopicSpec>,
    brokers: BTreeMap<i32, BrokerAddress>,
    /// The last partition group id handed out.
    last_group_id: u64,
    /// Partitions placed so far; rotates the first replica so leaders spread over the nodes.
    placed_partitions: u64,
}

pub struct Catalog {
    /// Every voter of the metadata group, sorted: where replicas can go.
    nodes: Vec<i32>,
    state: RwLock<CatalogState>,
}

impl Catalog {
    pub fn new(nodes: &[i32]) -> Catalog {
        let mut nodes = nodes.to_vec();
        nodes.sort_unstable();
        nodes.dedup();
        Catalog {
            nodes,
            state: RwLock::new(CatalogState::default()),
        }
    }

    pub fn nodes(&self) -> &[i32] {
        &self.nodes
    }

    /// A copy of the whole state, for a snapshot of the metadata group.
    pub fn export(&self) -> CatalogState {
        self.state.read().clone()
    }

    /// Replaces the whole state with a snapshot's.
    pub fn restore(&self, state: CatalogState) {
        *self.state.write() = state;
    }

    pub fn partition_count(&self, topic: &str) -> Option<i32> {
        self.state
            .read()
            .topics
            .get(topic)
            .map(TopicSpec::partitions)
    }

    pub fn topic(&self, name: &str) -> Option<TopicSpec> {
        self.state.read().topics.get(name).cloned()
    }

    pub fn topic_by_id(&self, topic_id: Uuid) -> Option<TopicSpec> {
        self.state
            .read()
            .topics
            .values()
            .find(|spec| spec.topic_id == topic_id)
            .cloned()
    }

    pub fn topics(&self) -> Vec<TopicSpec> {
        self.state.read().topics.values().cloned().collect()
    }

    pub fn brokers(&self) -> Vec<BrokerAddress> {
        self.state.read().brokers.values().cloned().collect()
    }

    pub fn broker(&self, node_id: i32) -> Option<BrokerAddress> {
        self.state.read().brokers.get(&node_id).cloned()
    }

    /// Checks a command against the current state without applying it (to refuse early,
    /// before proposing). Applying re-checks, since the state may change in between.
    pub fn check(&self, command: &MetadataCommand) -> Result<(), CatalogError> {
        let mut state = self.state.read().clone();
        self.apply_to(&mut state, command).map(|_| ())
    }

    pub fn apply(&self, command: &MetadataCommand) -> Result<CatalogChange, CatalogError> {
        let mut state = self.state.write();
        self.apply_to(&mut state, command)
    }

    fn apply_to(
        &self,
        state: &mut CatalogState,
        command: &MetadataCommand,
    ) -> Result<CatalogChange, CatalogError> {
        match command {
            MetadataCommand::GroupOffsets(_) => Ok(CatalogChange::Nothing),
            MetadataCommand::RegisterBroker(address) => {
                state.brokers.insert(address.node_id, address.clone());
                Ok(CatalogChange::Nothing)
            }
            MetadataCommand::CreateTopic {
                name,
                topic_id,
                partitions,
                replication_factor,
                configs,
            } => {
                validate_topic_name(name)?;
                validate_partition_count(*partitions)?;
                if *replication_factor < 1 || *replication_factor as usize > self.nodes.len() {
                    return Err(CatalogError::InvalidReplicationFactor {
                        factor: *replication_factor,
                        nodes: self.nodes.len(),
                    });
                }
                if state.topics.contains_key(name) {
                    return Err(CatalogError::AlreadyExists(name.clone()));
                }
                let mut spec = TopicSpec {
                    name: name.clone(),
                    topic_id: *topic_id,
                    replication_factor: *replication_factor,
                    configs: configs.clone(),
                    assignments: Vec::new(),
                };
                self.place(state, &mut spec, *partitions);
                state.topics.insert(name.clone(), spec.clone());
                Ok(CatalogChange::PartitionsCreated {
                    topic: spec,
                    indexes: 0..*partitions,
                })
            }
            MetadataCommand::DeleteTopic { name } => {
                let spec = state
                    .topics
                    .remove(name)
                    .ok_or_else(|| CatalogError::NotFound(name.clone()))?;
                Ok(CatalogChange::TopicDeleted(spec))
            }
            MetadataCommand::CreatePartitions { name, count } => {
                validate_partition_count(*count)?;
                let mut spec = state
                    .topics
                    .get(name)
                    .cloned()
                    .ok_or_else(|| CatalogError::NotFound(name.clone()))?;
                let old = spec.partitions();
                if *count <= old {
                    return Err(CatalogError::InvalidPartitions {
                        count: *count,
                        reason: "partitions can only be added",
                    });
                }
                self.place(state, &mut spec, *count);
                state.topics.insert(name.clone(), spec.clone());
                Ok(CatalogChange::PartitionsCreated {
                    topic: spec,
                    indexes: old..*count,
                })
            }
        }
    }

    /// Adds assignments until the topic has `count` partitions: each gets a new group id and
    /// `replication_factor` consecutive nodes, starting one node further for every partition
    /// placed in the cluster, so preferred leaders spread evenly.
    fn place(&self, state: &mut CatalogState, spec: &mut TopicSpec, count: i32) {
        let factor = spec.replication_factor as usize;
        while spec.partitions() < count {
            state.last_group_id += 1;
            let start = (state.placed_partitions % self.nodes.len() as u64) as usize;
            state.placed_partitions += 1;
            let replicas = (0..factor)
                .map(|k| self.nodes[(start + k) % self.nodes.len()])
                .collect();
            spec.assignments.push(PartitionAssignment {
                group_id: state.last_group_id,
                replicas,
            });
        }
    }
}

pub fn validate_topic_name(name: &str) -> Result<(), CatalogError> {
    let invalid = |reason| {
        Err(CatalogError::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("empty");
    }
    if name == "." || name == ".." {
        return invalid("'.' and '..' are not topic names");
    }
    if name.chars().count() > MAX_TOPIC_NAME_CHARS {
        return invalid("longer than 249 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
    {
        return invalid("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

fn validate_partition_count(count: i32) -> Result<(), CatalogError> {
    if count < 1 {
        return Err(CatalogError::InvalidPartitions {
            count,
            reason: "at least one",
        });
    }
    if count > MAX_PARTITIONS_PER_TOPIC {
        return Err(CatalogError::InvalidPartitions {
            count,
            reason: "at most 10000",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(name: &str, partitions: i32, replication_factor: i16) -> MetadataCommand {
        MetadataCommand::CreateTopic {
            name: name.into(),
            topic_id: Uuid::from_u128(7),
            partitions,
            replication_factor,
            configs: BTreeMap::new(),
        }
    }

    #[test]
    fn placement_spreads_preferred_leaders_and_group_ids_are_never_reused() {
        let catalog = Catalog::new(&[3, 1, 2]);
        catalog.apply(&create("events", 6, 3)).unwrap();
        let spec = catalog.topic("events").unwrap();
        let leaders: Vec<i32> = spec.assignments.iter().map(|a| a.replicas[0]).collect();
        assert_eq!(leaders, vec![1, 2, 3, 1, 2, 3]);
        assert!(spec.assignments.iter().all(|a| a.replicas.len() == 3));
        catalog
            .apply(&MetadataCommand::DeleteTopic {
                name: "events".into(),
            })
            .unwrap();
        catalog.apply(&create("events", 1, 1)).unwrap();
        assert_eq!(catalog.topic("events").unwrap().assignments[0].group_id, 7);
    }

    #[test]
    fn the_same_commands_give_the_same_catalog_on_every_node() {
        let commands = [
            create("a", 3, 2),
            create("b", 2, 1),
            MetadataCommand::CreatePartitions {
                name: "a".into(),
                count: 5,
            },
            MetadataCommand::DeleteTopic { name: "b".into() },
        ];
        let one = Catalog::new(&[1, 2, 3]);
        let two = Catalog::new(&[1, 2, 3]);
        for command in &commands {
            assert_eq!(one.apply(command), two.apply(command));
        }
        assert_eq!(one.topics(), two.topics());
    }

    #[test]
    fn bad_commands_are_refused_and_change_nothing() {
        let catalog = Catalog::new(&[1, 2, 3]);
        assert!(matches!(
            catalog.apply(&create("a/b", 1, 1)),
            Err(CatalogError::InvalidName { .. })
        ));
        assert!(matches!(
            catalog.apply(&create("..", 1, 1)),
            Err(CatalogError::InvalidName { .. })
        ));
        assert!(matches!(
            catalog.apply(&create("ok", 0, 1)),
            Err(CatalogError::InvalidPartitions { .. })
        ));
        assert!(matches!(
            catalog.apply(&create("ok", 1, 4)),
            Err(CatalogError::InvalidReplicationFactor {
                factor: 4,
                nodes: 3
            })
        ));
        catalog.apply(&create("ok", 2, 1)).unwrap();
        assert_eq!(
            catalog.apply(&create("ok", 2, 1)),
            Err(CatalogError::AlreadyExists("ok".into()))
        );
        let shrink = MetadataCommand::CreatePartitions {
            name: "ok".into(),
            count: 1,
        };
        assert!(catalog.apply(&shrink).is_err());
        assert_eq!(catalog.partition_count("ok"), Some(2));
    }
}
