//! Fetching snapshots from the object store into a staging area, where they are checked
//! before anything is installed, and swapping a staged partition directory into place.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use raft::eraftpb::{ConfState, Snapshot};
use tracing::error;

use super::error::SnapshotError;
use super::manifest::{self, Content, Manifest};
use super::metadata_image::{self, MetadataCheckpoint};
use super::objects::SnapshotObjects;
use super::partition_image;
use crate::partition::checkpoint::Checkpoint;
use crate::partition::Partition;

/// A snapshot downloaded and checked, ready to install.
pub enum Staged {
    Partition {
        manifest: Manifest,
        encoded: Vec<u8>,
        directory: PathBuf,
        /// The local replica supplies the log below this offset (see
        /// [`partition_image::complete_from_replica`]).
        reused_below: Option<i64>,
    },
    Metadata {
        manifest: Manifest,
        encoded: Vec<u8>,
        checkpoint: MetadataCheckpoint,
    },
}

impl Staged {
    pub fn index(&self) -> u64 {
        match self {
            Staged::Partition { manifest, .. } | Staged::Metadata { manifest, .. } => {
                manifest.index
            }
        }
    }

    /// Drops a staged snapshot that will not be installed (a newer one replaced it).
    pub fn discard(self) {
        if let Staged::Partition { directory, .. } = self {
            let _ = std::fs::remove_dir_all(directory);
        }
    }

    /// Discards the snapshot staged in `slot` once its group has applied up to its index:
    /// raft-rs never installs a snapshot at or below its commit, so the log overtook it and
    /// its files (up to a whole replica) would only take space. Returns whether it did.
    pub fn discard_if_overtaken(slot: &mut Option<Staged>, applied: u64) -> bool {
        match slot.take_if(|staged| staged.index() <= applied) {
            Some(overtaken) => {
                overtaken.discard();
                true
            }
            None => false,
        }
    }

    pub fn raft_snapshot(&self) -> Snapshot {
        match self {
            Staged::Partition {
                manifest, encoded, ..
            }
            | Staged::Metadata {
                manifest, encoded, ..
            } => raft_snapshot(manifest, encoded.clone()),
        }
    }
}

/// raft-rs's snapshot for a manifest: its index, term and voters, the manifest as data.
pub fn raft_snapshot(manifest: &Manifest, encoded: Vec<u8>) -> Snapshot {
    let mut snapshot = Snapshot {
        data: encoded.into(),
        ..Snapshot::default()
    };
    let metadata = snapshot.mut_metadata();
    metadata.index = manifest.index;
    metadata.term = manifest.term;
    metadata.set_conf_state(ConfState::from((manifest.voters.clone(), vec![])));
    snapshot
}

/// Where a group's snapshots are staged, and the local replica they are to replace, if any:
/// what that replica already holds is copied rather than downloaded.
#[derive(Clone)]
pub struct StagingArea {
    pub directory: PathBuf,
    pub replica: Option<Arc<Partition>>,
}

/// Numbers staging attempts, so that no two ever share a directory.
static STAGING_ATTEMPTS: AtomicU64 = AtomicU64::new(0);

impl StagingArea {
    /// A directory of its own under the area for one staging of the snapshot at `index`. A
    /// staged snapshot waits there for the Raft loop to install it while a newer one (or an
    /// older one standing in for a bad one) is already being fetched: sharing a directory, the
    /// second staging would empty the first under its install.
    fn attempt_directory(&self, index: u64) -> PathBuf {
        let attempt = STAGING_ATTEMPTS.fetch_add(1, Ordering::Relaxed);
        self.directory.join(format!("{index:020}-{attempt}"))
    }
}

/// Stages the snapshot a leader sent; when it fails its checks, the newest older one that
/// passes them.
pub async fn stage_with_fallback(
    objects: &SnapshotObjects,
    manifest: Manifest,
    encoded: Vec<u8>,
    area: &StagingArea,
) -> Result<Staged, SnapshotError> {
    let group = manifest.group;
    let index = manifest.index;
    match stage(objects, manifest, encoded, area).await {
        Ok(staged) => Ok(staged),
        Err(first_error) => {
            error!(group, index, %first_error, "snapshot unusable; trying older snapshots of the group");
            match stage_newest_below(objects, group, 0, Some(index), area).await? {
                Some(staged) => Ok(staged),
                None => Err(first_error),
            }
        }
    }
}

/// Stages the newest snapshot of `group` at or after `min_index` that passes its checks.
pub async fn stage_newest(
    objects: &SnapshotObjects,
    group: u64,
    min_index: u64,
    area: &StagingArea,
) -> Result<Option<Staged>, SnapshotError> {
    stage_newest_below(objects, group, min_index, None, area).await
}

async fn stage_newest_below(
    objects: &SnapshotObjects,
    group: u64,
    min_index: u64,
    below_index: Option<u64>,
    area: &StagingArea,
) -> Result<Option<Staged>, SnapshotError> {
    let mut keys: Vec<(u64, String)> = objects
        .list(&manifest::manifests_prefix(group))
        .await?
        .into_iter()
        .filter_map(|object| Some((manifest::index_of_manifest_key(&object.key)?, object.key)))
        .filter(|(index, _)| *index >= min_index && below_index.is_none_or(|below| *index < below))
        .collect();
    keys.sort_unstable();
    for (_, key) in keys.into_iter().rev() {
        let attempt = async {
            let encoded = objects.get(&key).await?.to_vec();
            let manifest =
                Manifest::decode(&encoded).map_err(|source| SnapshotError::Manifest {
                    key: key.clone(),
                    source,
                })?;
            stage(objects, manifest, encoded, area).await
        };
        match attempt.await {
            Ok(staged) => return Ok(Some(staged)),
            Err(error) => error!(group, %key, %error, "snapshot unusable; trying an older one"),
        }
    }
    Ok(None)
}

async fn stage(
    objects: &SnapshotObjects,
    manifest: Manifest,
    encoded: Vec<u8>,
    area: &StagingArea,
) -> Result<Staged, SnapshotError> {
    match &manifest.content {
        Content::Partition(_) => {
            let replica = area.replica.as_ref();
            let directory = area.attempt_directory(manifest.index);
            let reused_below =
                match partition_image::stage(objects, &manifest, &directory, replica).await {
                    Ok(reused_below) => reused_below,
                    Err(error) => {
                        let _ = std::fs::remove_dir_all(&directory);
                        return Err(error);
                    }
                };
            Ok(Staged::Partition {
                manifest,
                encoded,
                directory,
                reused_below,
            })
        }
        Content::Metadata(_) => {
            let checkpoint = metadata_image::fetch(objects, &manifest).await?;
            Ok(Staged::Metadata {
                manifest,
                encoded,
                checkpoint,
            })
        }
    }
}

/// Replaces the (retired) `replica`'s directory by the staged one of the snapshot at `index`,
/// completed first with what the replica supplies (`reused_below`). A staged directory whose
/// checkpoint does not vouch for exactly that index is refused, never swapped in: the
/// replica would reopen behind the index Raft resumes from, and diverge.
pub fn install_partition(
    group: u64,
    index: u64,
    replica: &Partition,
    staged: &Path,
    reused_below: Option<i64>,
) -> Result<(), SnapshotError> {
    let checkpoint = Checkpoint::read(staged).map_err(|error| SnapshotError::io(staged, error))?;
    if checkpoint.applied_index != index {
        return Err(SnapshotError::Read {
            group,
            message: format!(
                "the staged snapshot in {} vouches for index {}, not {index}",
                staged.display(),
                checkpoint.applied_index
            ),
        });
    }
    if let Some(below) = reused_below {
        partition_image::complete_from_replica(group, replica, staged, below)?;
    }
    swap_in(replica.directory(), staged)
}

/// Replaces the directory `live` by `staged`: the old one is moved aside, the staged one
/// renamed into place, the parent synced, the old one deleted.
pub fn swap_in(live: &Path, staged: &Path) -> Result<(), SnapshotError> {
    let aside = live.with_extension("replaced");
    let _ = std::fs::remove_dir_all(&aside);
    if live.exists() {
        std::fs::rename(live, &aside).map_err(|error| SnapshotError::io(live, error))?;
    }
    if let Some(parent) = live.parent() {
        std::fs::create_dir_all(parent).map_err(|error| SnapshotError::io(parent, error))?;
    }
    std::fs::rename(staged, live).map_err(|error| SnapshotError::io(staged, error))?;
    if let Some(parent) = live.parent() {
        std::fs::File::open(parent)
            .and_then(|directory| directory.sync_all())
            .map_err(|error| SnapshotError::io(parent, error))?;
    }
    let _ = std::fs::remove_dir_all(&aside);
    Ok(())
}
