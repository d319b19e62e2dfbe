//! The snapshot manifest: what one snapshot of one Raft group is made of, and the object
//! names of everything a snapshot writes.
//!
//! A manifest is written last, after every object it names; a snapshot exists once its
//! manifest does. Layout of the object: "CSM1", CRC-32 (IEEE) of the JSON that follows (u32
//! big-endian), the JSON. It also travels as the data of Raft's snapshot message, so a
//! follower learns from the message exactly which objects to fetch and how to check them.
//!
//! Object names, under the store's prefix (`group` and offsets zero-padded to 20 digits, so
//! that names sort in numeric order):
//!
//! * `groups/<group>/snapshots/<index>.manifest`
//! * `groups/<group>/chunks/<start offset>-<end offset>.<ext>`: a partition's record batches
//!   `[start, end)` exactly as its log holds them. Replicas hold byte-identical logs, so a
//!   chunk written by one leader serves every later snapshot of the group, whoever takes it.
//! * `groups/<group>/state/<index>.<ext>`: the metadata group's state at `index`.

use serde::{Deserialize, Serialize};

use super::codec::ObjectDigest;

const MAGIC: &[u8; 4] = b"CSM1";
const HEADER_BYTES: usize = 8;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub group: u64,
    /// The Raft index the snapshot reflects, and that entry's term.
    pub index: u64,
    pub term: u64,
    /// The group's voters at `index`.
    pub voters: Vec<u64>,
    /// The node that took it, and when (for people reading the store).
    pub taken_by_node: u64,
    pub taken_unix_ms: u64,
    pub content: Content,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Content {
    Partition(PartitionContent),
    Metadata(MetadataContent),
}

/// A partition at the snapshot's index: its log from `log_start_offset` to `log_end_offset`
/// (which is also its high watermark there: only committed, applied data is in a snapshot).
/// The idempotent-producer state is part of the log (every idempotent batch carries producer
/// id, epoch and sequence) and is rebuilt from the chunks' batch headers on install, exactly
/// as at start-up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionContent {
    pub topic: String,
    pub partition: i32,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    /// Contiguous, in offset order; the first starts at or below `log_start_offset`, the last
    /// ends at `log_end_offset`. Empty when the log is.
    pub chunks: Vec<Chunk>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    pub key: String,
    pub start_offset: i64,
    pub end_offset: i64,
    pub digest: ObjectDigest,
}

/// The metadata group at the snapshot's index: catalog and committed group offsets, in one
/// object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataContent {
    pub key: String,
    pub digest: ObjectDigest,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("snapshot manifest of {0} bytes is shorter than its header")]
    TooShort(usize),
    #[error("snapshot manifest has the wrong magic")]
    Magic,
    #[error(
        "snapshot manifest CRC does not match (stored {stored:#010x}, computed {computed:#010x})"
    )]
    Checksum { stored: u32, computed: u32 },
    #[error("snapshot manifest does not parse: {0}")]
    Parse(String),
}

impl Manifest {
    pub fn encode(&self) -> Vec<u8> {
        let json = serde_json::to_vec(self).expect("manifests serialize");
        let mut bytes = Vec::with_capacity(HEADER_BYTES + json.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&crc32fast::hash(&json).to_be_bytes());
        bytes.extend_from_slice(&json);
        bytes
    }

    pub fn decode(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        if bytes.len() < HEADER_BYTES {
            return Err(ManifestError::TooShort(bytes.len()));
        }
        if &bytes[..4] != MAGIC {
            return Err(ManifestError::Magic);
        }
        let stored = u32::from_be_bytes(bytes[4..8].try_into().expect("4 bytes"));
        let json = &bytes[HEADER_BYTES..];
        let computed = crc32fast::hash(json);
        if stored != computed {
            return Err(ManifestError::Checksum { stored, computed });
        }
        serde_json::from_slice(json).map_err(|error| ManifestError::Parse(error.to_string()))
    }

    pub fn key(&self) -> String {
        manifest_key(self.group, self.index)
    }

    /// Every object the snapshot needs besides the manifest.
    pub fn object_keys(&self) -> Vec<String> {
        match &self.content {
            Content::Partition(partition) => partition
                .chunks
                .iter()
                .map(|chunk| chunk.key.clone())
                .collect(),
            Content::Metadata(metadata) => vec![metadata.key.clone()],
        }
    }
}

pub fn group_prefix(group: u64) -> String {
    format!("groups/{group:020}/")
}

pub fn manifests_prefix(group: u64) -> String {
    format!("{}snapshots/", group_prefix(group))
}

pub fn manifest_key(group: u64, index: u64) -> String {
    format!("{}{index:020}.manifest", manifests_prefix(group))
}

pub fn chunk_key(group: u64, start_offset: i64, end_offset: i64, extension: &str) -> String {
    format!(
        "{}chunks/{start_offset:020}-{end_offset:020}.{extension}",
        group_prefix(group)
    )
}

pub fn state_key(group: u64, index: u64, extension: &str) -> String {
    format!("{}state/{index:020}.{extension}", group_prefix(group))
}

/// The index a manifest key names, for keys under [`manifests_prefix`].
pub fn index_of_manifest_key(key: &str) -> Option<u64> {
    let name = key.rsplit('/').next()?;
    name.strip_suffix(".manifest")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::codec::{seal, Compression};

    fn sample() -> Manifest {
        let (_, digest) = seal(b"batches", Compression::Zstd);
        Manifest {
            group: 7,
            index: 1200,
            term: 3,
            voters: vec![1, 2, 3],
            taken_by_node: 2,
            taken_unix_ms: 1_700_000_000_000,
            content: Content::Partition(PartitionContent {
                topic: "events".into(),
                partition: 4,
                log_start_offset: 0,
                log_end_offset: 10,
                chunks: vec![Chunk {
                    key: chunk_key(7, 0, 10, "zst"),
                    start_offset: 0,
                    end_offset: 10,
                    digest,
                }],
            }),
        }
    }

    #[test]
    fn round_trips_and_detects_damage() {
        let manifest = sample();
        let bytes = manifest.encode();
        assert_eq!(Manifest::decode(&bytes), Ok(manifest.clone()));
        let mut flipped = bytes.clone();
        let last = flipped.len() - 2;
        flipped[last] ^= 0x20;
        assert!(matches!(
            Manifest::decode(&flipped),
            Err(ManifestError::Checksum { .. })
        ));
        assert_eq!(
            Manifest::decode(&bytes[..5]),
            Err(ManifestError::TooShort(5))
        );
        assert_eq!(Manifest::decode(b"XXXXXXXXXX"), Err(ManifestError::Magic));
    }

    #[test]
    fn keys_sort_numerically_and_parse_back() {
        let manifest = sample();
        assert_eq!(
            manifest.key(),
            "groups/00000000000000000007/snapshots/00000000000000001200.manifest"
        );
        assert_eq!(index_of_manifest_key(&manifest.key()), Some(1200));
        assert!(manifest_key(7, 99) < manifest_key(7, 1200));
        assert_eq!(
            manifest.object_keys(),
            vec![
                "groups/00000000000000000007/chunks/00000000000000000000-00000000000000000010.zst"
            ]
        );
    }
}
