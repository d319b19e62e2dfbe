//! Snapshots on the Raft loop: when each group is snapshotted, how a snapshot becomes a
//! record every replica holds, how far each replica may compact its log, and how a follower
//! fetches, checks and installs a snapshot its leader sends.
//!
//! Taking (the group's leader; for the metadata group, every node keeps a local checkpoint
//! and the leader uploads it): the state at the applied index is cut on this thread (nothing
//! moves under it here), uploaded in the background, and its manifest written last. Then the
//! leader proposes a `SnapshotTaken` entry carrying the manifest; every replica applying it
//! records the snapshot in its Raft store and compacts its log up to
//! min(the snapshot before it, what its own state machine has made durable). Only the proposer
//! deletes snapshots past retention, after its record is applied.
//!
//! Installing (a follower the leader sends a snapshot): the message carries only the
//! manifest. The follower holds the message back, downloads and checks every object into a
//! staging area in the background, and only then steps the message into Raft; the ready
//! round hands the snapshot to [`Installer::install`], which swaps the staged state in
//! before the Raft log is replaced. A snapshot that fails its checks is reported, its bad
//! objects deleted, and an older snapshot of the group tried instead; failing all, the
//! follower waits for the leader to send one again.

mod install;
mod restore;

pub(super) use install::Installer;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use raft::eraftpb::Message;
use raft::StateRole;
use tracing::{error, info, warn};

use super::raft_loop::RaftLoop;
use super::Command;
use crate::catalog::METADATA_GROUP_ID;
use crate::snapshot::error::SnapshotError;
use crate::snapshot::manifest::Manifest;
use crate::snapshot::metadata_image::{self, MetadataCheckpoint, MetadataImage};
use crate::snapshot::objects::SnapshotObjects;
use crate::snapshot::partition_image::{self, PartitionCut};
use crate::snapshot::policy::{furthest_behind_first, DueGroup, SinceSnapshot, SnapshotSettings};
use crate::snapshot::retention::enforce_retention;
use crate::snapshot::staging::{raft_snapshot, stage_with_fallback, Staged, StagingArea};

/// Ticks between checks of which groups are due for a snapshot or a compaction.
pub const SNAPSHOT_CHECK_EVERY_TICKS: u64 = 20;
/// A leader that sent a snapshot this many times without the follower taking it takes a new
/// one (which uploads again any object a follower found corrupt and deleted).
pub const SENDS_BEFORE_NEW_SNAPSHOT: u32 = 30;
/// Under the data directory: where snapshots are downloaded and checked before installing.
const STAGING_DIRECTORY: &str = "snapshot-staging";

/// What the background snapshot work reports back to the Raft loop.
pub(crate) enum SnapshotEvent {
    Uploaded {
        group: u64,
        manifest: Vec<u8>,
    },
    UploadFailed {
        group: u64,
        error: String,
    },
    Staged {
        group: u64,
        result: Result<Box<Staged>, String>,
    },
    MetadataCheckpointed {
        index: u64,
        result: Result<(), String>,
    },
    /// A replica opened behind its compacted log (or on an empty disk) has its snapshot.
    RestoreStaged {
        group: u64,
        result: Result<Option<Box<Staged>>, SnapshotError>,
    },
}

#[derive(Default)]
struct GroupSnapshots {
    /// Index of the snapshot recorded in the Raft store (0: none).
    recorded_index: u64,
    recorded_at: Option<Instant>,
    /// Entry bytes applied since the last snapshot was cut.
    applied_bytes: u64,
    /// When the last data entry was applied.
    applied_at: Option<Instant>,
    uploading: bool,
    fetching: bool,
    staged: Option<Staged>,
    /// The leader's snapshot message, held until its snapshot is staged.
    held: Option<Message>,
    /// Snapshot messages sent for this group since its last snapshot.
    sends: u32,
}

pub(crate) struct SnapshotDriver {
    pub settings: SnapshotSettings,
    pub objects: SnapshotObjects,
    pub runtime: tokio::runtime::Handle,
    pub commands: flume::Sender<Command>,
    pub data_dir: PathBuf,
    started: Instant,
    groups: HashMap<u64, GroupSnapshots>,
    /// Uploads and downloads in the background now.
    running: u64,
    metadata_checkpoint_index: u64,
    metadata_checkpointing: bool,
    /// A metadata snapshot was installed: local replicas must follow the new catalog.
    pub reconcile_replicas: bool,
    /// Replicas waiting for their snapshot before their groups start (see `restore`).
    restores: restore::Restores,
}

impl SnapshotDriver {
    pub fn new(
        settings: SnapshotSettings,
        objects: SnapshotObjects,
        runtime: tokio::runtime::Handle,
        commands: flume::Sender<Command>,
        data_dir: PathBuf,
    ) -> SnapshotDriver {
        // What a previous process staged was never installed (staged snapshots live in memory
        // until their install); it only takes space now.
        let _ = std::fs::remove_dir_all(data_dir.join(STAGING_DIRECTORY));
        SnapshotDriver {
            settings,
            objects,
            runtime,
            commands,
            data_dir,
            started: Instant::now(),
            groups: HashMap::new(),
            running: 0,
            metadata_checkpoint_index: 0,
            metadata_checkpointing: false,
            reconcile_replicas: false,
            restores: restore::Restores::default(),
        }
    }

    /// Counts applied entry bytes towards the group's byte threshold.
    pub fn note_applied(&mut self, group: u64, bytes: u64) {
        let state = self.groups.entry(group).or_default();
        state.applied_bytes += bytes;
        state.applied_at = Some(Instant::now());
    }

    fn staging_directory(&self, group: u64) -> PathBuf {
        self.data_dir
            .join(STAGING_DIRECTORY)
            .join(format!("g{group}"))
    }

    /// How far behind a follower may be and still hold back the leader's compaction: two
    /// snapshot intervals; one further behind gets a snapshot rather than the log.
    fn follower_lag_limit_entries(&self) -> u64 {
        self.settings.log_threshold_entries.saturating_mul(2)
    }

    fn can_start_work(&self) -> bool {
        self.running < self.settings.max_concurrent
    }

    fn is_due(&self, state: &GroupSnapshots, last_index: u64, applied: u64) -> bool {
        if state.sends >= SENDS_BEFORE_NEW_SNAPSHOT && applied >= last_index && applied > 0 {
            return true;
        }
        if applied <= last_index {
            return false;
        }
        self.settings.is_due(&SinceSnapshot {
            entries: applied - last_index,
            data_bytes: state.applied_bytes,
            elapsed: state.recorded_at.unwrap_or(self.started).elapsed(),
            quiet: state
                .applied_at
                .map_or(Duration::ZERO, |applied_at| applied_at.elapsed()),
        })
    }
}

impl RaftLoop {
    /// Where `group`'s snapshots are staged; a partition's local replica lends what it holds.
    fn staging_area(&self, group: u64) -> StagingArea {
        StagingArea {
            directory: self.snapshots.staging_directory(group),
            replica: self.replicas.get(group),
        }
    }

    fn snapshot_state(&mut self, group: u64) -> &mut GroupSnapshots {
        let multi = &self.multi;
        self.snapshots.groups.entry(group).or_insert_with(|| {
            let recorded_index = multi
                .recorded_snapshot(group)
                .ok()
                .flatten()
                .map_or(0, |snapshot| snapshot.get_metadata().index);
            GroupSnapshots {
                recorded_index,
                ..GroupSnapshots::default()
            }
        })
    }

    /// Every few ticks: compact what may be compacted, start the snapshots that are due.
    pub(super) fn snapshot_turn(&mut self) {
        if !self.snapshots.settings.enabled {
            return;
        }
        let groups: Vec<u64> = self.multi.group_ids().collect();
        let mut due_partitions = Vec::new();
        for group in groups {
            self.compact_group(group);
            let Some(status) = self.multi.status(group) else {
                continue;
            };
            let state = self.snapshot_state(group);
            if Staged::discard_if_overtaken(&mut state.staged, status.applied) {
                info!(
                    group,
                    applied = status.applied,
                    "a staged snapshot the log overtook was discarded"
                );
            }
            let (recorded, uploading) = (state.recorded_index, state.uploading);
            let metadata_index = self.snapshots.metadata_checkpoint_index;
            let state = self.snapshots.groups.get(&group).expect("just created");
            if group == METADATA_GROUP_ID {
                let due = self.snapshots.is_due(state, metadata_index, status.applied);
                if due && !self.snapshots.metadata_checkpointing {
                    self.checkpoint_metadata(status.applied, status.role == StateRole::Leader);
                }
                continue;
            }
            let due = self.snapshots.is_due(state, recorded, status.applied);
            if due && status.role == StateRole::Leader && !uploading {
                due_partitions.push(DueGroup {
                    group,
                    applied_index: status.applied,
                    data_bytes: state.applied_bytes,
                });
            }
        }
        let free_slots = self
            .snapshots
            .settings
            .max_concurrent
            .saturating_sub(self.snapshots.running);
        for due in furthest_behind_first(due_partitions, free_slots) {
            self.take_partition_snapshot(due.group, due.applied_index);
        }
    }

    fn take_partition_snapshot(&mut self, group: u64, index: u64) {
        let Some(partition) = self.replicas.get(group) else {
            return;
        };
        let Some(term) = self.multi.term_of(group, index) else {
            return;
        };
        let cut = PartitionCut {
            group,
            index,
            term,
            voters: self.multi.voters(group),
            log_start_offset: partition.log_start_offset(),
            log_end_offset: partition.log_end_offset(),
        };
        let previous = self
            .multi
            .recorded_snapshot(group)
            .ok()
            .flatten()
            .and_then(|snapshot| Manifest::decode(&snapshot.data).ok());
        let state = self.snapshot_state(group);
        state.uploading = true;
        state.applied_bytes = 0;
        self.snapshots.running += 1;
        let objects = self.snapshots.objects.clone();
        let compression = self.snapshots.settings.compression;
        let commands = self.snapshots.commands.clone();
        let node_id = self.node_id;
        self.snapshots.runtime.spawn(async move {
            let started = Instant::now();
            let result = async {
                let existing = partition_image::existing_chunks(&objects, group).await?;
                let (manifest, uploaded_bytes) = partition_image::upload_chunks(
                    &objects,
                    partition,
                    &cut,
                    previous.as_ref(),
                    &existing,
                    compression,
                    node_id,
                )
                .await?;
                let encoded = manifest.encode();
                objects.put(&manifest.key(), encoded.clone().into()).await?;
                Ok::<_, SnapshotError>((encoded, uploaded_bytes + manifest_len(&manifest)))
            }
            .await;
            let event = finish_upload(group, "partition", started, result);
            let _ = commands.send_async(Command::Snapshot(event)).await;
        });
    }

    /// Writes the local metadata checkpoint at `index`; the leader also uploads it.
    fn checkpoint_metadata(&mut self, index: u64, upload: bool) {
        let Some(term) = self.multi.term_of(METADATA_GROUP_ID, index) else {
            return;
        };
        let checkpoint = MetadataCheckpoint {
            index,
            term,
            image: MetadataImage {
                catalog: self.catalog.export(),
                offsets: self.offsets.export_events(),
                groups: self.offsets.export_memberships(),
            },
        };
        let voters = self.multi.voters(METADATA_GROUP_ID);
        let state = self.snapshot_state(METADATA_GROUP_ID);
        state.applied_bytes = 0;
        let upload = upload && !state.uploading;
        if upload {
            state.uploading = true;
            state.recorded_at = Some(Instant::now());
        }
        self.snapshots.metadata_checkpointing = true;
        let objects = self.snapshots.objects.clone();
        let compression = self.snapshots.settings.compression;
        let commands = self.snapshots.commands.clone();
        let directory = self.snapshots.data_dir.clone();
        let node_id = self.node_id;
        self.snapshots.runtime.spawn(async move {
            let local = checkpoint.clone();
            let written = tokio::task::spawn_blocking(move || local.write(&directory))
                .await
                .map_err(|error| error.to_string())
                .and_then(|result| result.map_err(|error| error.to_string()));
            let failed = written.is_err();
            let event = SnapshotEvent::MetadataCheckpointed {
                index,
                result: written,
            };
            let _ = commands.send_async(Command::Snapshot(event)).await;
            if !upload {
                return;
            }
            let started = Instant::now();
            let result = if failed {
                Err(SnapshotError::Task("the local checkpoint failed".into()))
            } else {
                async {
                    let (manifest, bytes) = metadata_image::upload(
                        &objects,
                        &checkpoint,
                        METADATA_GROUP_ID,
                        voters,
                        compression,
                        node_id,
                    )
                    .await?;
                    let encoded = manifest.encode();
                    objects.put(&manifest.key(), encoded.clone().into()).await?;
                    Ok((encoded, bytes + manifest_len(&manifest)))
                }
                .await
            };
            let event = finish_upload(METADATA_GROUP_ID, "metadata", started, result);
            let _ = commands.send_async(Command::Snapshot(event)).await;
        });
    }

    pub(super) fn on_snapshot_event(&mut self, event: SnapshotEvent) {
        match event {
            SnapshotEvent::Uploaded { group, manifest } => {
                self.finish_work(group);
                if group != METADATA_GROUP_ID {
                    self.snapshots.running = self.snapshots.running.saturating_sub(1);
                }
                self.propose_snapshot_record(group, manifest);
            }
            SnapshotEvent::UploadFailed { group, error } => {
                self.finish_work(group);
                if group != METADATA_GROUP_ID {
                    self.snapshots.running = self.snapshots.running.saturating_sub(1);
                }
                error!(group, %error, "snapshot failed; the log is kept until the next one");
            }
            SnapshotEvent::MetadataCheckpointed { index, result } => {
                self.snapshots.metadata_checkpointing = false;
                match result {
                    Ok(()) => {
                        let current = self.snapshots.metadata_checkpoint_index;
                        self.snapshots.metadata_checkpoint_index = current.max(index);
                    }
                    Err(error) => {
                        metrics::counter!("chronik_snapshots_failed_total", "kind" => "metadata")
                            .increment(1);
                        error!(%error, "writing the metadata checkpoint failed");
                    }
                }
            }
            SnapshotEvent::Staged { group, result } => self.on_staged(group, result),
            SnapshotEvent::RestoreStaged { group, result } => self.on_restore_staged(group, result),
        }
        // Whatever finished freed a place under the work bound.
        self.start_restores();
    }

    fn finish_work(&mut self, group: u64) {
        let state = self.snapshot_state(group);
        state.uploading = false;
        state.sends = 0;
    }

    fn propose_snapshot_record(&mut self, group: u64, manifest: Vec<u8>) {
        let header = super::entry::EntryHeader {
            kind: super::entry::EntryKind::SnapshotTaken,
            origin_node: self.node_id,
            proposal_id: 0,
        };
        let data = super::entry::encode(header, &manifest);
        if let Err(error) = self.multi.propose(group, data) {
            // Leadership moved during the upload: the snapshot is in the store all the same
            // (replicas are identical), the new leader records its own.
            info!(group, %error, "snapshot written but not recorded");
        }
    }

    /// A committed `SnapshotTaken` entry: record the snapshot, compact, and (on the node that
    /// proposed it) apply retention.
    pub(super) fn apply_snapshot_record(&mut self, group: u64, body: &[u8], proposed_here: bool) {
        let manifest = match Manifest::decode(body) {
            Ok(manifest) => manifest,
            Err(decode_error) => {
                error!(group, %decode_error, "snapshot record is undecodable; ignored");
                return;
            }
        };
        let index = manifest.index;
        let recorded = self.snapshot_state(group).recorded_index;
        if index >= recorded {
            let snapshot = raft_snapshot(&manifest, body.to_vec());
            if let Err(store_error) = self.multi.record_snapshot(group, snapshot) {
                error!(group, %store_error, "could not record a snapshot");
                return;
            }
            let state = self.snapshot_state(group);
            state.recorded_index = index;
            state.recorded_at = Some(Instant::now());
            state.sends = 0;
            if !proposed_here {
                state.applied_bytes = 0;
            }
            let labels = [("group", group.to_string())];
            metrics::gauge!("chronik_snapshot_last_index", &labels).set(index as f64);
            metrics::gauge!("chronik_snapshot_last_unix_ms", &labels)
                .set(manifest.taken_unix_ms as f64);
        }
        self.compact_group(group);
        if proposed_here {
            let objects = self.snapshots.objects.clone();
            let keep = self.snapshots.settings.retention_count;
            self.snapshots.runtime.spawn(async move {
                if let Err(error) = enforce_retention(&objects, group, keep).await {
                    warn!(group, %error, "snapshot retention failed; retried after the next snapshot");
                }
            });
        }
    }

    /// Compacts `group`'s log up to its recorded snapshot, but never past what its state
    /// machine has made durable here, nor (on the leader) past what a live follower catching
    /// up still needs (see `MultiRaft::needed_by_followers`): a follower that is sent the
    /// newest snapshot then continues from the log instead of chasing the next snapshot.
    fn compact_group(&mut self, group: u64) {
        let recorded = self.snapshot_state(group).recorded_index;
        let durable = if group == METADATA_GROUP_ID {
            self.snapshots.metadata_checkpoint_index
        } else {
            self.replicas
                .get(group)
                .map_or(0, |partition| partition.checkpointed_index())
        };
        let followers = self
            .multi
            .needed_by_followers(group, self.snapshots.follower_lag_limit_entries())
            .unwrap_or(u64::MAX);
        let target = recorded.min(durable).min(followers);
        let Some(status) = self.multi.status(group) else {
            return;
        };
        if target > status.truncated_index {
            if let Err(store_error) = self.multi.compact(group, target) {
                warn!(group, %store_error, "raft log compaction failed");
            }
        }
    }

    /// The leader sent a snapshot message: count it (see [`SENDS_BEFORE_NEW_SNAPSHOT`]).
    pub(super) fn on_snapshot_sent(&mut self, group: u64, to: u64) {
        let truncated = self.multi.truncated_index(group).unwrap_or(0);
        info!(
            group,
            to, truncated, "sent a snapshot: the follower needs entries this log no longer holds"
        );
        self.multi.report_snapshot_sent(group, to);
        self.snapshot_state(group).sends += 1;
        metrics::counter!("chronik_snapshots_sent_total").increment(1);
    }

    /// A snapshot message from the leader: stepped once its snapshot is staged here; until
    /// then held, and the staging started.
    pub(super) fn on_snapshot_message(&mut self, group: u64, message: Message) {
        if !self.multi.has_group(group) {
            return;
        }
        let encoded = message.get_snapshot().get_data().to_vec();
        let manifest = match Manifest::decode(&encoded) {
            Ok(manifest) => manifest,
            Err(decode_error) => {
                warn!(group, %decode_error, "snapshot message with an undecodable manifest dropped");
                return;
            }
        };
        let can_start = self.snapshots.can_start_work();
        let area = self.staging_area(group);
        let state = self.snapshot_state(group);
        if state
            .staged
            .as_ref()
            .is_some_and(|staged| staged.index() == manifest.index)
        {
            self.multi.step(group, message);
            return;
        }
        state.held = Some(message);
        if state.fetching || !can_start {
            return;
        }
        state.fetching = true;
        self.snapshots.running += 1;
        info!(
            group,
            index = manifest.index,
            "fetching a snapshot from the object store"
        );
        let objects = self.snapshots.objects.clone();
        let commands = self.snapshots.commands.clone();
        self.snapshots.runtime.spawn(async move {
            let started = Instant::now();
            let result = stage_with_fallback(&objects, manifest, encoded, &area).await;
            let kind = if group == METADATA_GROUP_ID {
                "metadata"
            } else {
                "partition"
            };
            if result.is_ok() {
                metrics::histogram!("chronik_snapshot_fetch_seconds", "kind" => kind)
                    .record(started.elapsed().as_secs_f64());
            } else {
                metrics::counter!("chronik_snapshots_failed_total", "kind" => kind).increment(1);
            }
            let event = SnapshotEvent::Staged {
                group,
                result: result.map(Box::new).map_err(|error| error.to_string()),
            };
            let _ = commands.send_async(Command::Snapshot(event)).await;
        });
    }

    fn on_staged(&mut self, group: u64, result: Result<Box<Staged>, String>) {
        self.snapshots.running = self.snapshots.running.saturating_sub(1);
        let state = self.snapshot_state(group);
        state.fetching = false;
        match result {
            Ok(staged) => {
                let held = state.held.take();
                let snapshot = staged.raft_snapshot();
                if let Some(replaced) = state.staged.replace(*staged) {
                    replaced.discard();
                }
                if let Some(mut message) = held {
                    if message.get_snapshot().get_metadata().index != snapshot.get_metadata().index
                    {
                        // An older snapshot stood in for a bad one: the follower installs it
                        // and takes the rest of the log from the leader.
                        message.set_snapshot(snapshot);
                    }
                    self.multi.step(group, message);
                }
            }
            Err(error) => {
                error!(group, %error, "no usable snapshot: waiting for the leader to send one again");
            }
        }
    }
}

fn manifest_len(manifest: &Manifest) -> u64 {
    manifest.encode().len() as u64
}

fn finish_upload(
    group: u64,
    kind: &'static str,
    started: Instant,
    result: Result<(Vec<u8>, u64), SnapshotError>,
) -> SnapshotEvent {
    match result {
        Ok((manifest, uploaded_bytes)) => {
            metrics::counter!("chronik_snapshots_taken_total", "kind" => kind).increment(1);
            metrics::counter!("chronik_snapshot_uploaded_bytes_total", "kind" => kind)
                .increment(uploaded_bytes);
            metrics::histogram!("chronik_snapshot_upload_seconds", "kind" => kind)
                .record(started.elapsed().as_secs_f64());
            SnapshotEvent::Uploaded { group, manifest }
        }
        Err(error) => {
            metrics::counter!("chronik_snapshots_failed_total", "kind" => kind).increment(1);
            SnapshotEvent::UploadFailed {
                group,
                error: error.to_string(),
            }
        }
    }
}
