//! Staging and installing partition snapshots against an in-memory object store.

use std::path::Path;

use super::codec::{seal, Compression};
use super::manifest::{chunk_key, Chunk, Content, Manifest, PartitionContent};
use super::objects::SnapshotObjects;
use super::staging::{install_partition, stage_with_fallback, Staged, StagingArea};
use crate::partition::checkpoint::Checkpoint;
use crate::partition::producer_snapshot;
use crate::partition::Partition;
use crate::storage::LogConfig;
use crate::wire::record_batch::build_test_batch;

const GROUP: u64 = 7;

const RECORD: (&[u8], &[u8]) = (b"key", b"value");

/// Uploads the batches `[start, end)` (one record each) as one chunk of `GROUP`.
async fn upload_chunk(objects: &SnapshotObjects, start: i64, end: i64) -> Chunk {
    upload_chunk_of(objects, start, end, None).await
}

/// [`upload_chunk`], the batches written by the idempotent `producer_id` (epoch 0, the
/// sequence number of each batch equal to its offset) when one is given.
async fn upload_chunk_of(
    objects: &SnapshotObjects,
    start: i64,
    end: i64,
    producer_id: Option<i64>,
) -> Chunk {
    let plain: Vec<u8> = (start..end)
        .flat_map(|offset| match producer_id {
            Some(id) => build_test_batch(offset, &[RECORD], id, 0, offset as i32, 1_000),
            None => build_test_batch(offset, &[RECORD], -1, -1, -1, 1_000),
        })
        .collect();
    let (stored, digest) = seal(&plain, Compression::Zstd);
    let key = chunk_key(GROUP, start, end, Compression::Zstd.extension());
    objects.put(&key, stored.into()).await.unwrap();
    Chunk {
        key,
        start_offset: start,
        end_offset: end,
        digest,
    }
}

fn manifest(index: u64, chunks: Vec<Chunk>) -> Manifest {
    Manifest {
        group: GROUP,
        index,
        term: 1,
        voters: vec![1, 2, 3],
        taken_by_node: 1,
        taken_unix_ms: 0,
        content: Content::Partition(PartitionContent {
            topic: "events".into(),
            partition: 0,
            log_start_offset: 0,
            log_end_offset: chunks.last().map_or(0, |chunk| chunk.end_offset),
            chunks,
        }),
    }
}

async fn staged(objects: &SnapshotObjects, manifest: Manifest, area: &StagingArea) -> Staged {
    let encoded = manifest.encode();
    stage_with_fallback(objects, manifest, encoded, area)
        .await
        .unwrap()
}

fn staged_directory(staged: &Staged) -> &Path {
    match staged {
        Staged::Partition { directory, .. } => directory,
        Staged::Metadata { .. } => panic!("a partition snapshot was staged as metadata"),
    }
}

fn open_replica(directory: &Path) -> (Partition, u64) {
    Partition::open("events", 0, GROUP, directory, LogConfig::default()).unwrap()
}

/// Installs `staged` at index 10 in place of the live replica under `root`, and reopens it.
fn install_and_reopen(root: &Path, staged: &Staged) -> (Partition, u64) {
    let live = root.join("events-0");
    let (replica, _) = open_replica(&live);
    replica.retire();
    install_partition(GROUP, 10, &replica, staged_directory(staged), None).unwrap();
    open_replica(&live)
}

/// A snapshot waiting for its install while the leader's next one is fetched: the second
/// staging once emptied the first's directory under it, and the replica was installed with
/// no data at the first snapshot's index.
#[tokio::test]
async fn a_newer_staging_leaves_a_staged_snapshot_waiting_for_its_install_intact() {
    let root = tempfile::tempdir().unwrap();
    let objects = SnapshotObjects::in_memory();
    let first_chunk = upload_chunk(&objects, 0, 6).await;
    let second_chunk = upload_chunk(&objects, 6, 10).await;
    let area = StagingArea {
        directory: root.path().join("staging"),
        replica: None,
    };
    let first = staged(&objects, manifest(10, vec![first_chunk.clone()]), &area).await;
    let second = staged(
        &objects,
        manifest(20, vec![first_chunk, second_chunk]),
        &area,
    )
    .await;
    for (staged, applied_index, log_end_offset) in [(&first, 10, 6), (&second, 20, 10)] {
        let checkpoint = Checkpoint::read(staged_directory(staged)).unwrap();
        assert_eq!(
            checkpoint,
            Checkpoint {
                applied_index,
                log_end_offset
            }
        );
    }

    let (installed, applied) = install_and_reopen(root.path(), &first);
    assert_eq!((applied, installed.log_end_offset()), (10, 6));
    assert!(
        staged_directory(&second).join("checkpoint").exists(),
        "installing the first snapshot touched the second's staging"
    );
    second.discard();
}

/// A snapshot at index 10 of offsets 0..4, staged under `root` with no local replica.
async fn staged_at_index_10(root: &Path) -> Staged {
    let objects = SnapshotObjects::in_memory();
    let chunk = upload_chunk(&objects, 0, 4).await;
    let area = StagingArea {
        directory: root.join("staging"),
        replica: None,
    };
    staged(&objects, manifest(10, vec![chunk]), &area).await
}

#[tokio::test]
async fn a_staged_directory_that_vouches_for_another_index_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let staged = staged_at_index_10(root.path()).await;
    let live = root.path().join("events-0");
    let (replica, _) = open_replica(&live);
    replica.retire();

    let error = install_partition(GROUP, 11, &replica, staged_directory(&staged), None)
        .unwrap_err()
        .to_string();
    assert!(error.contains("vouches for index 10, not 11"), "{error}");
    assert!(
        staged_directory(&staged).join("checkpoint").exists(),
        "a refused install must leave the staged snapshot alone"
    );
    let (untouched, applied) = open_replica(&live);
    assert_eq!((applied, untouched.log_end_offset()), (0, 0));
}

#[tokio::test]
async fn a_staged_snapshot_the_log_overtook_is_discarded() {
    let root = tempfile::tempdir().unwrap();
    let mut slot = Some(staged_at_index_10(root.path()).await);
    let directory = staged_directory(slot.as_ref().unwrap()).to_path_buf();

    assert!(!Staged::discard_if_overtaken(&mut slot, 9));
    assert!(slot.is_some() && directory.join("checkpoint").exists());
    assert!(Staged::discard_if_overtaken(&mut slot, 10));
    assert!(slot.is_none());
    assert!(
        !directory.exists(),
        "the overtaken staging's files are deleted"
    );
}

/// Staging hands the installed replica its idempotent producers (saved beside the segments,
/// so the open does not scan the log for them): a retry of the snapshot's last batch is
/// answered with its offset, and the producer's next batch is appended after it.
#[tokio::test]
async fn a_restored_replica_recognises_a_retry_of_a_batch_in_its_snapshot() {
    let root = tempfile::tempdir().unwrap();
    let objects = SnapshotObjects::in_memory();
    let producer = Some(42);
    let chunks = vec![
        upload_chunk_of(&objects, 0, 4, producer).await,
        upload_chunk_of(&objects, 4, 6, producer).await,
    ];
    let area = StagingArea {
        directory: root.path().join("staging"),
        replica: None,
    };
    let staged = staged(&objects, manifest(10, chunks), &area).await;
    assert!(staged_directory(&staged)
        .join(producer_snapshot::FILE_NAME)
        .exists());
    let (installed, applied) = install_and_reopen(root.path(), &staged);
    assert_eq!((applied, installed.log_end_offset()), (10, 6));
    let retry = build_test_batch(0, &[RECORD], 42, 0, 5, 1_000);
    assert_eq!(installed.apply(11, 1, &retry).unwrap().base_offset, 5);
    assert_eq!(
        installed.log_end_offset(),
        6,
        "the retry was not stored again"
    );
    let next = build_test_batch(0, &[RECORD], 42, 0, 6, 1_000);
    assert_eq!(installed.apply(12, 1, &next).unwrap().base_offset, 6);
}
