//! Restoring at start-up: the metadata state, and the local partition replicas a node opens,
//! come from the object store when the disk is empty or behind its compacted Raft log.
//!
//! A replica that needs a snapshot is staged in the background (at most the snapshot work
//! bound at once, so a wiped node holding several partitions downloads them side by side),
//! then swapped in on the Raft loop and its group started. Meanwhile the loop goes on: the
//! metadata group and the groups already started keep electing, committing and serving.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use tracing::{error, info, warn};

use super::super::raft_loop::RaftLoop;
use super::super::Command;
use super::SnapshotEvent;
use crate::catalog::{TopicSpec, METADATA_GROUP_ID};
use crate::partition::Partition;
use crate::snapshot::error::SnapshotError;
use crate::snapshot::metadata_image::MetadataCheckpoint;
use crate::snapshot::staging::{install_partition, raft_snapshot, stage_newest, Staged};

/// A replica opened behind what its group's Raft log still holds, or empty on an empty disk.
struct PendingRestore {
    topic: TopicSpec,
    index: i32,
    group: u64,
    partition: Arc<Partition>,
    applied: u64,
    /// The compacted Raft log ends here: an older snapshot cannot serve.
    min_index: u64,
    /// The group's Raft log is empty too: a restore also seeds it.
    pristine: bool,
}

/// The replicas waiting for a snapshot: queued, then staging.
#[derive(Default)]
pub(super) struct Restores {
    queued: VecDeque<PendingRestore>,
    staging: HashMap<u64, PendingRestore>,
}

impl Restores {
    fn contains(&self, group: u64) -> bool {
        self.staging.contains_key(&group)
            || self.queued.iter().any(|restore| restore.group == group)
    }
}

impl RaftLoop {
    /// Opens the local replicas of `wanted` (topic, partition index) and starts their groups.
    /// Replicas on an empty disk, or behind their compacted log, are restored from their
    /// groups' newest usable snapshots first, in the background. Blocking I/O (the opening).
    pub(in crate::cluster) fn open_local_replicas(&mut self, wanted: &[(TopicSpec, i32)]) {
        for (topic, index) in wanted {
            let group = topic.assignments[*index as usize].group_id;
            let (partition, applied) = match (self.opener)(topic, *index) {
                Ok(opened) => opened,
                Err(open_error) => {
                    error!(topic = %topic.name, index, %open_error, "could not open a partition replica");
                    continue;
                }
            };
            self.replicas.insert(partition.clone());
            match self.restore_floor(group, applied) {
                Some((min_index, pristine)) => {
                    self.snapshots.restores.queued.push_back(PendingRestore {
                        topic: topic.clone(),
                        index: *index,
                        group,
                        partition,
                        applied,
                        min_index,
                        pristine,
                    })
                }
                None => self.start_partition_group(topic, *index, applied),
            }
        }
        self.start_restores();
    }

    /// Whether `group`'s replica waits for a snapshot before its group starts.
    fn is_restoring(&self, group: u64) -> bool {
        self.snapshots.restores.contains(group)
    }

    /// When the replica at `applied` needs a snapshot: the lowest index one may have, and
    /// whether the group's Raft log is empty. `None` when the replica can go on from its log.
    fn restore_floor(&self, group: u64, applied: u64) -> Option<(u64, bool)> {
        let pristine = self.multi.is_pristine(group).unwrap_or(false);
        let truncated = self.multi.truncated_index(group).unwrap_or(0);
        let needed = if pristine {
            applied == 0
        } else {
            applied < truncated
        };
        needed.then_some((truncated, pristine))
    }

    /// Starts staging queued restores while the snapshot work bound allows; each reports
    /// back as [`SnapshotEvent::RestoreStaged`].
    pub(super) fn start_restores(&mut self) {
        while self.snapshots.can_start_work() {
            let Some(restore) = self.snapshots.restores.queued.pop_front() else {
                return;
            };
            let (group, min_index) = (restore.group, restore.min_index);
            let objects = self.snapshots.objects.clone();
            let commands = self.snapshots.commands.clone();
            let area = self.staging_area(group);
            self.snapshots.running += 1;
            self.snapshots.restores.staging.insert(group, restore);
            self.snapshots.runtime.spawn(async move {
                let result = stage_newest(&objects, group, min_index, &area).await;
                let event = SnapshotEvent::RestoreStaged {
                    group,
                    result: result.map(|staged| staged.map(Box::new)),
                };
                let _ = commands.send_async(Command::Snapshot(event)).await;
            });
        }
    }

    /// A restore's snapshot is staged (or none could be): swaps it in and starts the group,
    /// unless the catalog no longer places the partition here.
    pub(super) fn on_restore_staged(
        &mut self,
        group: u64,
        staged: Result<Option<Box<Staged>>, SnapshotError>,
    ) {
        self.snapshots.running = self.snapshots.running.saturating_sub(1);
        let restore = self.snapshots.restores.staging.remove(&group);
        match restore.filter(|restore| self.still_placed_here(restore)) {
            Some(restore) => match self
                .finish_restore(&restore, staged.map(|staged| staged.map(|boxed| *boxed)))
            {
                Ok(applied) => self.start_partition_group(&restore.topic, restore.index, applied),
                Err(restore_error) => {
                    error!(topic = %restore.topic.name, index = restore.index, %restore_error, "the replica is behind its compacted raft log and no snapshot could be restored; the group is not started here");
                }
            },
            None => {
                if let Ok(Some(staged)) = staged {
                    staged.discard();
                }
            }
        }
    }

    /// Whether the catalog still places `restore`'s partition, as the same group, here.
    fn still_placed_here(&self, restore: &PendingRestore) -> bool {
        let node = self.node_id as i32;
        self.catalog
            .topic(&restore.topic.name)
            .and_then(|topic| topic.assignments.get(restore.index as usize).cloned())
            .is_some_and(|assignment| {
                assignment.group_id == restore.group && assignment.replicas.contains(&node)
            })
    }

    /// Swaps a staged snapshot in for the replica and returns the applied index the group
    /// starts from. An empty group with no snapshot anywhere starts empty.
    fn finish_restore(
        &mut self,
        restore: &PendingRestore,
        staged: Result<Option<Staged>, SnapshotError>,
    ) -> Result<u64, SnapshotError> {
        let group = restore.group;
        let Some(Staged::Partition {
            manifest,
            encoded,
            directory,
            reused_below,
        }) = staged?
        else {
            if restore.pristine {
                return Ok(restore.applied);
            }
            return Err(SnapshotError::Task(format!(
                "no snapshot of group {group} at or after index {} in {}",
                restore.min_index,
                self.snapshots.objects.describe()
            )));
        };
        let partition = &restore.partition;
        partition.retire();
        install_partition(group, manifest.index, partition, &directory, reused_below)?;
        let (reopened, reopened_applied) = (self.opener)(&restore.topic, restore.index)
            .map_err(|error| SnapshotError::Task(error.to_string()))?;
        if reopened_applied != manifest.index {
            return Err(SnapshotError::Task(format!(
                "the restored replica of group {group} reopened at index {reopened_applied}, not {}",
                manifest.index
            )));
        }
        self.replicas.insert(reopened);
        if restore.pristine {
            self.multi
                .restore_group(group, raft_snapshot(&manifest, encoded))
                .map_err(|error| SnapshotError::Task(error.to_string()))?;
        }
        info!(
            group,
            index = manifest.index,
            "replica restored from the object store"
        );
        Ok(reopened_applied)
    }

    fn start_partition_group(&mut self, topic: &TopicSpec, index: i32, applied: u64) {
        let assignment = &topic.assignments[index as usize];
        let group = assignment.group_id;
        let voters: Vec<u64> = assignment.replicas.iter().map(|id| *id as u64).collect();
        if let Err(raft_error) = self.multi.create_group(group, &voters, applied) {
            error!(group, %raft_error, "could not start the partition's raft group");
            return;
        }
        if voters == [self.node_id] {
            self.multi.campaign(group);
        }
    }

    /// At start-up: the metadata state from the local checkpoint, or on an empty disk from
    /// the newest metadata snapshot in the object store. Returns the index it reflects.
    pub(in crate::cluster) fn restore_metadata(&mut self) -> anyhow::Result<u64> {
        let directory = self.snapshots.data_dir.clone();
        if let Some(checkpoint) = MetadataCheckpoint::read(&directory)? {
            self.catalog.restore(checkpoint.image.catalog);
            self.offsets
                .restore_replicated(&checkpoint.image.offsets, &checkpoint.image.groups);
            self.snapshots.metadata_checkpoint_index = checkpoint.index;
            info!(
                index = checkpoint.index,
                "metadata restored from the local checkpoint"
            );
            return Ok(checkpoint.index);
        }
        let pristine = self.multi.is_pristine(METADATA_GROUP_ID)?;
        if !pristine || !self.snapshots.settings.enabled {
            anyhow::ensure!(
                !self.snapshots.settings.require_restore,
                "--restore needs an empty data directory and snapshots enabled"
            );
            return Ok(0);
        }
        let objects = self.snapshots.objects.clone();
        let area = self.staging_area(METADATA_GROUP_ID);
        let staged =
            self.snapshots
                .runtime
                .block_on(stage_newest(&objects, METADATA_GROUP_ID, 0, &area))?;
        let Some(Staged::Metadata {
            manifest,
            encoded,
            checkpoint,
        }) = staged
        else {
            anyhow::ensure!(
                !self.snapshots.settings.require_restore,
                "--restore: the object store {} holds no metadata snapshot",
                objects.describe()
            );
            return Ok(0);
        };
        checkpoint.write(&directory)?;
        self.catalog.restore(checkpoint.image.catalog.clone());
        self.offsets
            .restore_replicated(&checkpoint.image.offsets, &checkpoint.image.groups);
        self.snapshots.metadata_checkpoint_index = checkpoint.index;
        self.multi
            .restore_group(METADATA_GROUP_ID, raft_snapshot(&manifest, encoded))?;
        info!(
            index = checkpoint.index,
            store = %objects.describe(),
            "metadata restored from the object store"
        );
        Ok(checkpoint.index)
    }

    /// Opens replicas the catalog assigns here that are not open, and drops those of groups
    /// the catalog no longer has (after a metadata snapshot replaced the catalog).
    pub(in crate::cluster) fn reconcile_replicas(&mut self) {
        let topics = self.catalog.topics();
        let mut wanted = std::collections::HashSet::new();
        let mut missing = Vec::new();
        for topic in &topics {
            for (index, assignment) in topic.assignments.iter().enumerate() {
                if !assignment.replicas.contains(&(self.node_id as i32)) {
                    continue;
                }
                wanted.insert(assignment.group_id);
                if !self.multi.has_group(assignment.group_id)
                    && !self.is_restoring(assignment.group_id)
                {
                    missing.push((topic.clone(), index as i32));
                }
            }
        }
        self.open_local_replicas(&missing);
        let stale: Vec<u64> = self
            .multi
            .group_ids()
            .filter(|group| *group != METADATA_GROUP_ID && !wanted.contains(group))
            .collect();
        for group in stale {
            if let Some(partition) = self.replicas.remove(group) {
                partition.delete_files();
            }
            if let Err(store_error) = self.multi.remove_group(group) {
                warn!(group, %store_error, "could not drop a deleted partition's raft log");
            }
        }
    }
}
