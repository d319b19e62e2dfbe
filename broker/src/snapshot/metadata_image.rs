//! The metadata group's snapshot: the catalog and the committed consumer-group offsets at one
//! Raft index. Every node keeps one locally (the metadata checkpoint, from which it restarts
//! without replaying the group's whole log); the metadata leader also uploads it.
//!
//! Local file `metadata-checkpoint`: "CMC1", index u64, term u64, CRC-32 of the JSON that
//! follows (u32), the JSON; all integers big-endian; replaced atomically.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::codec::{seal, unseal, Compression};
use super::error::SnapshotError;
use super::manifest::{state_key, Content, Manifest, MetadataContent};
use super::objects::SnapshotObjects;
use crate::catalog::CatalogState;
use crate::durable_file::write_atomically;
use crate::group::{GroupEvent, StoredGroup};

const FILE_NAME: &str = "metadata-checkpoint";
const MAGIC: &[u8; 4] = b"CMC1";
const HEADER_BYTES: usize = 24;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    pub catalog: CatalogState,
    pub offsets: Vec<GroupEvent>,
    /// The replicated membership of Stable consumer groups (absent in older images).
    #[serde(default)]
    pub groups: BTreeMap<String, StoredGroup>,
}

/// The metadata state at a Raft index, on this node's disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataCheckpoint {
    pub index: u64,
    pub term: u64,
    pub image: MetadataImage,
}

impl MetadataCheckpoint {
    /// The checkpoint in `directory`; `None` when there is none. A damaged one is an error:
    /// the node cannot know its metadata without it once the log was compacted.
    pub fn read(directory: &Path) -> Result<Option<MetadataCheckpoint>, SnapshotError> {
        let path = directory.join(FILE_NAME);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(SnapshotError::io(&path, error)),
        };
        let corrupt = |message: String| SnapshotError::Corrupt {
            key: path.display().to_string(),
            message,
        };
        if bytes.len() < HEADER_BYTES || &bytes[..4] != MAGIC {
            return Err(corrupt("wrong size or magic".into()));
        }
        let index = u64::from_be_bytes(bytes[4..12].try_into().expect("8 bytes"));
        let term = u64::from_be_bytes(bytes[12..20].try_into().expect("8 bytes"));
        let stored = u32::from_be_bytes(bytes[20..24].try_into().expect("4 bytes"));
        let json = &bytes[HEADER_BYTES..];
        if crc32fast::hash(json) != stored {
            return Err(corrupt("CRC does not match".into()));
        }
        let image = serde_json::from_slice(json).map_err(|error| corrupt(error.to_string()))?;
        Ok(Some(MetadataCheckpoint { index, term, image }))
    }

    pub fn write(&self, directory: &Path) -> Result<(), SnapshotError> {
        let json = serde_json::to_vec(&self.image).expect("metadata images serialize");
        let mut bytes = Vec::with_capacity(HEADER_BYTES + json.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&self.index.to_be_bytes());
        bytes.extend_from_slice(&self.term.to_be_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&json).to_be_bytes());
        bytes.extend_from_slice(&json);
        let path = directory.join(FILE_NAME);
        write_atomically(&path, &bytes).map_err(|error| SnapshotError::io(&path, error))
    }
}

/// Uploads the state object and returns the manifest (not yet written) with the bytes
/// uploaded.
pub async fn upload(
    objects: &SnapshotObjects,
    checkpoint: &MetadataCheckpoint,
    group: u64,
    voters: Vec<u64>,
    compression: Compression,
    node_id: u64,
) -> Result<(Manifest, u64), SnapshotError> {
    let json = serde_json::to_vec(&checkpoint.image).expect("metadata images serialize");
    let (stored, digest) = seal(&json, compression);
    let key = state_key(group, checkpoint.index, compression.extension());
    objects.put(&key, stored.into()).await?;
    let manifest = Manifest {
        group,
        index: checkpoint.index,
        term: checkpoint.term,
        voters,
        taken_by_node: node_id,
        taken_unix_ms: super::partition_image::unix_ms(),
        content: Content::Metadata(MetadataContent { key, digest }),
    };
    Ok((manifest, digest.stored_bytes))
}

/// Downloads and checks the state a metadata manifest names. A corrupt object is deleted
/// from the store (the next snapshot writes a new one).
pub async fn fetch(
    objects: &SnapshotObjects,
    manifest: &Manifest,
) -> Result<MetadataCheckpoint, SnapshotError> {
    let Content::Metadata(content) = &manifest.content else {
        return Err(SnapshotError::WrongKind {
            group: manifest.group,
        });
    };
    let stored = objects.get(&content.key).await?;
    let parsed = unseal(&stored, &content.digest)
        .map_err(|error| error.to_string())
        .and_then(|plain| {
            serde_json::from_slice::<MetadataImage>(&plain).map_err(|error| error.to_string())
        });
    match parsed {
        Ok(image) => Ok(MetadataCheckpoint {
            index: manifest.index,
            term: manifest.term,
            image,
        }),
        Err(message) => {
            let _ = objects.delete(&content.key).await;
            Err(SnapshotError::Corrupt {
                key: content.key.clone(),
                message,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_checkpoint_round_trips_and_rejects_damage() {
        let directory = tempfile::tempdir().unwrap();
        assert_eq!(MetadataCheckpoint::read(directory.path()).unwrap(), None);
        let checkpoint = MetadataCheckpoint {
            index: 77,
            term: 4,
            image: MetadataImage::default(),
        };
        checkpoint.write(directory.path()).unwrap();
        assert_eq!(
            MetadataCheckpoint::read(directory.path()).unwrap(),
            Some(checkpoint)
        );
        let path = directory.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            MetadataCheckpoint::read(directory.path()),
            Err(SnapshotError::Corrupt { .. })
        ));
    }
}
