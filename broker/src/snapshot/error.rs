//! What can go wrong taking, fetching or installing a snapshot.

use std::path::{Path, PathBuf};

use super::manifest::ManifestError;
use super::objects::ObjectError;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Object(#[from] ObjectError),
    #[error("snapshot object {key} is corrupt: {message}")]
    Corrupt { key: String, message: String },
    #[error("snapshot manifest {key}: {source}")]
    Manifest {
        key: String,
        #[source]
        source: ManifestError,
    },
    #[error("reading group {group}'s log for a snapshot: {message}")]
    Read { group: u64, message: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("staging group {group}'s snapshot: {source}")]
    Stage {
        group: u64,
        #[source]
        source: crate::storage::StorageError,
    },
    #[error("the snapshot of group {group} is not of the kind the group needs")]
    WrongKind { group: u64 },
    #[error("snapshot work failed: {0}")]
    Task(String),
}

impl SnapshotError {
    pub fn io(path: &Path, source: std::io::Error) -> SnapshotError {
        SnapshotError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
