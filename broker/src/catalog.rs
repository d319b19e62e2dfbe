//! The topic catalog: which topics exist, their partition counts, ids and configs.
//!
//! Durable as one JSON file replaced atomically (write a temporary file, fsync, rename, fsync
//! the directory), so a crash leaves either the old or the new catalog, never a mix. With
//! replication this state moves into the metadata Raft group; the interface stays.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Longest topic name Kafka allows.
pub const MAX_TOPIC_NAME_CHARS: usize = 249;
/// Most partitions one topic may have.
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 10_000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicSpec {
    pub name: String,
    pub topic_id: Uuid,
    pub partitions: i32,
    pub replication_factor: i16,
    /// Topic-level configs that override broker defaults (`retention.ms`, `retention.bytes`,
    /// `segment.bytes`).
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("topic '{0}' already exists")]
    AlreadyExists(String),
    #[error("topic '{0}' does not exist")]
    NotFound(String),
    #[error("invalid topic name '{name}': {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("invalid partition count {count}: {reason}")]
    InvalidPartitions { count: i32, reason: &'static str },
    #[error("catalog file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("catalog file {path} is corrupt: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

pub struct Catalog {
    path: PathBuf,
    topics: RwLock<BTreeMap<String, TopicSpec>>,
}

impl Catalog {
    pub fn open(path: &Path) -> Result<Catalog, CatalogError> {
        let io = |source| CatalogError::Io {
            path: path.to_path_buf(),
            source,
        };
        let topics = match fs::read(path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| CatalogError::Corrupt {
                    path: path.to_path_buf(),
                    source,
                })?
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(error) => return Err(io(error)),
        };
        Ok(Catalog {
            path: path.to_path_buf(),
            topics: RwLock::new(topics),
        })
    }

    pub fn partition_count(&self, topic: &str) -> Option<i32> {
        self.topics.read().get(topic).map(|spec| spec.partitions)
    }

    pub fn topic(&self, name: &str) -> Option<TopicSpec> {
        self.topics.read().get(name).cloned()
    }

    pub fn topic_by_id(&self, topic_id: Uuid) -> Option<TopicSpec> {
        self.topics
            .read()
            .values()
            .find(|spec| spec.topic_id == topic_id)
            .cloned()
    }

    pub fn topics(&self) -> Vec<TopicSpec> {
        self.topics.read().values().cloned().collect()
    }

    pub fn create(&self, spec: TopicSpec) -> Result<(), CatalogError> {
        validate_topic_name(&spec.name)?;
        validate_partition_count(spec.partitions)?;
        let mut topics = self.topics.write();
        if topics.contains_key(&spec.name) {
            return Err(CatalogError::AlreadyExists(spec.name));
        }
        let mut next = topics.clone();
        next.insert(spec.name.clone(), spec);
        self.persist(&next)?;
        *topics = next;
        Ok(())
    }

    pub fn delete(&self, name: &str) -> Result<TopicSpec, CatalogError> {
        let mut topics = self.topics.write();
        let mut next = topics.clone();
        let removed = next
            .remove(name)
            .ok_or_else(|| CatalogError::NotFound(name.to_string()))?;
        self.persist(&next)?;
        *topics = next;
        Ok(removed)
    }

    /// Raises a topic's partition count; returns the old count.
    pub fn grow_partitions(&self, name: &str, count: i32) -> Result<i32, CatalogError> {
        validate_partition_count(count)?;
        let mut topics = self.topics.write();
        let mut next = topics.clone();
        let spec = next
            .get_mut(name)
            .ok_or_else(|| CatalogError::NotFound(name.to_string()))?;
        let old = spec.partitions;
        if count <= old {
            return Err(CatalogError::InvalidPartitions {
                count,
                reason: "partitions can only be added",
            });
        }
        spec.partitions = count;
        self.persist(&next)?;
        *topics = next;
        Ok(old)
    }

    fn persist(&self, topics: &BTreeMap<String, TopicSpec>) -> Result<(), CatalogError> {
        let bytes = serde_json::to_vec_pretty(topics).expect("catalog serializes");
        write_atomically(&self.path, &bytes).map_err(|source| CatalogError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

/// Replaces `path` with `bytes` so that a crash leaves the old or the new content.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let directory = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(directory)?;
    let temporary = path.with_extension("tmp");
    let mut file = fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&temporary, path)?;
    fs::File::open(directory)?.sync_all()
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

    fn spec(name: &str, partitions: i32) -> TopicSpec {
        TopicSpec {
            name: name.into(),
            topic_id: Uuid::new_v4(),
            partitions,
            replication_factor: 1,
            configs: BTreeMap::new(),
        }
    }

    #[test]
    fn topics_survive_reopen() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("catalog.json");
        let catalog = Catalog::open(&path).unwrap();
        catalog.create(spec("events", 3)).unwrap();
        catalog.create(spec("audit", 1)).unwrap();
        catalog.grow_partitions("audit", 4).unwrap();
        catalog.delete("events").unwrap();
        let reopened = Catalog::open(&path).unwrap();
        assert_eq!(reopened.partition_count("audit"), Some(4));
        assert_eq!(reopened.partition_count("events"), None);
    }

    #[test]
    fn bad_names_and_counts_are_refused() {
        let directory = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(&directory.path().join("catalog.json")).unwrap();
        assert!(matches!(
            catalog.create(spec("a/b", 1)),
            Err(CatalogError::InvalidName { .. })
        ));
        assert!(matches!(
            catalog.create(spec("..", 1)),
            Err(CatalogError::InvalidName { .. })
        ));
        assert!(matches!(
            catalog.create(spec("ok", 0)),
            Err(CatalogError::InvalidPartitions { .. })
        ));
        catalog.create(spec("ok", 2)).unwrap();
        assert!(matches!(
            catalog.create(spec("ok", 2)),
            Err(CatalogError::AlreadyExists(_))
        ));
        assert!(catalog.grow_partitions("ok", 1).is_err());
    }

    #[test]
    fn a_corrupt_catalog_is_reported_not_replaced() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("catalog.json");
        fs::write(&path, b"{ not json").unwrap();
        assert!(matches!(
            Catalog::open(&path),
            Err(CatalogError::Corrupt { .. })
        ));
        assert_eq!(fs::read(&path).unwrap(), b"{ not json");
    }
}
