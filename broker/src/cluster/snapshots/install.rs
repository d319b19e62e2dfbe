//! Installing a staged snapshot from inside the ready round (see `MultiRaft::handle_ready`):
//! the staged partition directory takes the replica's place, or the staged metadata replaces
//! the catalog and the committed offsets.

use std::time::Instant;

use raft::eraftpb::Snapshot;
use tracing::info;

use super::SnapshotDriver;
use crate::catalog::Catalog;
use crate::cluster::replicas::LocalReplicas;
use crate::cluster::PartitionOpener;
use crate::group::offsets::OffsetStore;
use crate::snapshot::staging::{install_partition, Staged};

/// Installs staged snapshots from inside the ready round (see `MultiRaft::handle_ready`).
pub(in crate::cluster) struct Installer<'a> {
    pub snapshots: &'a mut SnapshotDriver,
    pub replicas: &'a LocalReplicas,
    pub catalog: &'a Catalog,
    pub offsets: &'a OffsetStore,
    pub opener: &'a PartitionOpener,
}

impl Installer<'_> {
    pub fn install(&mut self, group: u64, snapshot: &Snapshot) -> Result<(), String> {
        let started = Instant::now();
        let index = snapshot.get_metadata().index;
        let state = self.snapshots.groups.entry(group).or_default();
        let staged = match state.staged.take() {
            Some(staged) if staged.index() == index => staged,
            _ => return Err(format!("no snapshot at index {index} is staged")),
        };
        state.recorded_index = state.recorded_index.max(index);
        let kind = match staged {
            Staged::Partition {
                directory,
                reused_below,
                ..
            } => {
                let old = self
                    .replicas
                    .get(group)
                    .ok_or_else(|| "no local replica to replace".to_string())?;
                let topic = self
                    .catalog
                    .topic(&old.topic)
                    .ok_or_else(|| format!("topic {} is not in the catalog", old.topic))?;
                old.retire();
                install_partition(group, index, &old, &directory, reused_below)
                    .map_err(|error| error.to_string())?;
                let (partition, applied) =
                    (self.opener)(&topic, old.index).map_err(|error| error.to_string())?;
                if applied != index {
                    return Err(format!(
                        "the installed replica reopened at index {applied}, not {index}"
                    ));
                }
                partition.publish_high_watermark();
                self.replicas.insert(partition);
                "partition"
            }
            Staged::Metadata { checkpoint, .. } => {
                checkpoint
                    .write(&self.snapshots.data_dir)
                    .map_err(|error| error.to_string())?;
                self.catalog.restore(checkpoint.image.catalog);
                self.offsets
                    .restore_replicated(&checkpoint.image.offsets, &checkpoint.image.groups);
                self.snapshots.metadata_checkpoint_index = checkpoint.index;
                self.snapshots.reconcile_replicas = true;
                "metadata"
            }
        };
        metrics::counter!("chronik_snapshots_installed_total", "kind" => kind).increment(1);
        metrics::histogram!("chronik_snapshot_install_seconds", "kind" => kind)
            .record(started.elapsed().as_secs_f64());
        info!(group, index, "snapshot installed");
        Ok(())
    }
}
