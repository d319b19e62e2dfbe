//! A partition's snapshot: uploading its log as chunks, and staging a downloaded snapshot as
//! a partition directory ready to replace the local replica.
//!
//! Uploads are incremental: a new snapshot keeps every chunk of the previous one that still
//! holds data at or above the log start, and uploads only the batches written since, as new
//! chunks of at most [`CHUNK_BYTES`]. The log below the cut never changes (offsets are
//! assigned once, replicas are byte-identical), so a chunk is valid for every later snapshot.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;

use super::codec::{seal, unseal, Compression};
use super::error::SnapshotError;
use super::manifest::{chunk_key, Chunk, Content, Manifest, PartitionContent};
use super::objects::SnapshotObjects;
use super::uncached_write;
use crate::partition::checkpoint::Checkpoint;
use crate::partition::producer_snapshot;
use crate::partition::producer_state::ProducerStateTable;
use crate::partition::Partition;
use crate::storage::import;
use crate::wire::record_batch::{self, BatchHeader};

/// Largest chunk of log uploaded as one object (a single larger batch gets one of its own).
pub const CHUNK_BYTES: usize = 16 * 1024 * 1024;
/// Chunks downloaded at once while staging.
pub const PARALLEL_DOWNLOADS: usize = 4;

/// The state of a replica at one Raft index, taken on the Raft loop (where nothing can move
/// under it) and uploaded afterwards.
#[derive(Clone, Debug)]
pub struct PartitionCut {
    pub group: u64,
    pub index: u64,
    pub term: u64,
    pub voters: Vec<u64>,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

/// Uploads the chunks the snapshot needs and returns its manifest (not yet written).
/// `previous` is the group's last snapshot, whose chunks are reused. `existing` lists the
/// chunk objects present in the store (name, size): a reused chunk that is missing or has the
/// wrong size (a follower found it corrupt and deleted it) is uploaded again.
pub async fn upload_chunks(
    objects: &SnapshotObjects,
    partition: Arc<Partition>,
    cut: &PartitionCut,
    previous: Option<&Manifest>,
    existing: &std::collections::HashMap<String, u64>,
    compression: Compression,
    node_id: u64,
) -> Result<(Manifest, u64), SnapshotError> {
    let mut chunks: Vec<Chunk> = Vec::new();
    let mut uploaded_bytes = 0u64;
    if let Some(Content::Partition(previous)) = previous.map(|manifest| &manifest.content) {
        if previous.log_end_offset <= cut.log_end_offset {
            for chunk in &previous.chunks {
                if chunk.end_offset <= cut.log_start_offset {
                    continue;
                }
                if existing.get(&chunk.key) == Some(&chunk.digest.stored_bytes) {
                    chunks.push(chunk.clone());
                } else {
                    let replaced = upload_range(
                        objects,
                        &partition,
                        cut,
                        chunk.start_offset.max(cut.log_start_offset),
                        chunk.end_offset,
                        compression,
                    )
                    .await?;
                    uploaded_bytes += replaced.iter().map(|c| c.digest.stored_bytes).sum::<u64>();
                    chunks.extend(replaced);
                }
            }
        }
    }
    let next = chunks
        .last()
        .map_or(cut.log_start_offset, |chunk| chunk.end_offset);
    let fresh = upload_range(
        objects,
        &partition,
        cut,
        next,
        cut.log_end_offset,
        compression,
    )
    .await?;
    uploaded_bytes += fresh.iter().map(|c| c.digest.stored_bytes).sum::<u64>();
    chunks.extend(fresh);
    let manifest = Manifest {
        group: cut.group,
        index: cut.index,
        term: cut.term,
        voters: cut.voters.clone(),
        taken_by_node: node_id,
        taken_unix_ms: unix_ms(),
        content: Content::Partition(PartitionContent {
            topic: partition.topic.clone(),
            partition: partition.index,
            log_start_offset: cut.log_start_offset,
            log_end_offset: cut.log_end_offset,
            chunks,
        }),
    };
    Ok((manifest, uploaded_bytes))
}

/// Uploads the batches `[start, end)` as chunks.
async fn upload_range(
    objects: &SnapshotObjects,
    partition: &Arc<Partition>,
    cut: &PartitionCut,
    start: i64,
    end: i64,
    compression: Compression,
) -> Result<Vec<Chunk>, SnapshotError> {
    let mut chunks = Vec::new();
    let mut next = start;
    while next < end {
        let reader = partition.clone();
        let from = next;
        let read = tokio::task::spawn_blocking(move || {
            let read = reader.read_until(from, CHUNK_BYTES, end)?;
            let (stored, digest) = seal(&read.bytes, compression);
            Ok::<_, crate::storage::StorageError>((read.next_offset, stored, digest))
        })
        .await
        .map_err(|error| SnapshotError::Task(error.to_string()))?;
        let (after, stored, digest) = read.map_err(|error| SnapshotError::Read {
            group: cut.group,
            message: error.to_string(),
        })?;
        if after <= next {
            return Err(SnapshotError::Read {
                group: cut.group,
                message: format!("the log returned nothing at offset {next} (end {end})"),
            });
        }
        let key = chunk_key(cut.group, next, after, compression.extension());
        objects.put(&key, stored.into()).await?;
        chunks.push(Chunk {
            key,
            start_offset: next,
            end_offset: after,
            digest,
        });
        next = after;
    }
    Ok(chunks)
}

/// Downloads and checks the chunks of a partition snapshot into `directory` (emptied first),
/// as segment files a [`crate::storage::PartitionLog`] opens, with a checkpoint at the
/// snapshot's index. Returns the offset below which the local `replica` supplies the log
/// instead ([`complete_from_replica`] adds it at install): replicas are byte-identical, so a
/// follower that is merely behind, or restored at start-up, downloads only what it lacks. A
/// chunk that fails its checks is deleted from the store (it is provably bad, and the next
/// snapshot uploads it again) and the staging fails.
pub async fn stage(
    objects: &SnapshotObjects,
    manifest: &Manifest,
    directory: &Path,
    replica: Option<&Arc<Partition>>,
) -> Result<Option<i64>, SnapshotError> {
    let Content::Partition(content) = &manifest.content else {
        return Err(SnapshotError::WrongKind {
            group: manifest.group,
        });
    };
    let _ = std::fs::remove_dir_all(directory);
    std::fs::create_dir_all(directory).map_err(|error| SnapshotError::io(directory, error))?;
    let reused_below = replica.and_then(|replica| {
        let end = replica.log_end_offset();
        let usable = end > replica.log_start_offset()
            && (content.log_start_offset..=content.log_end_offset).contains(&end);
        usable.then_some(end)
    });
    let needed: Vec<Chunk> = content
        .chunks
        .iter()
        .filter(|chunk| reused_below.is_none_or(|below| chunk.end_offset > below))
        .cloned()
        .collect();
    let fetches = needed.iter().cloned().map(|chunk| {
        let objects = objects.clone();
        let directory = directory.to_path_buf();
        let group = manifest.group;
        async move {
            let stored = objects.get(&chunk.key).await?;
            tokio::task::spawn_blocking(move || {
                let corrupt = |message: String| SnapshotError::Corrupt {
                    key: chunk.key.clone(),
                    message,
                };
                let plain = unseal(&stored, &chunk.digest).map_err(|e| corrupt(e.to_string()))?;
                let headers = check_batches(&plain, chunk.start_offset, chunk.end_offset)
                    .map_err(corrupt)?;
                let (first, bytes) = match reused_below {
                    Some(below) if chunk.start_offset < below => {
                        let kept = batches_from(&plain, below).ok_or_else(|| {
                            SnapshotError::Read {
                                group,
                                message: format!(
                                    "the local replica ends at offset {below}, inside a batch of {}",
                                    chunk.key
                                ),
                            }
                        })?;
                        (below, kept)
                    }
                    _ => (chunk.start_offset, &plain[..]),
                };
                let file = write_unsynced(&segment_path(&directory, first), bytes)?;
                let [index, time_index] = import::write_segment_indexes(&directory, first, bytes)
                    .map_err(|source| SnapshotError::Stage { group, source })?;
                let staged = StagedChunk {
                    files: [file, index, time_index],
                    base_offset: first,
                    plain_bytes: plain.len() as u64,
                    producer_batches: headers
                        .into_iter()
                        .filter(|header| header.has_producer_id() && !header.is_control())
                        .collect(),
                };
                Ok::<_, SnapshotError>(staged)
            })
            .await
            .map_err(|error| SnapshotError::Task(error.to_string()))?
        }
    });
    // Chunks are written as they arrive and synced together at the end: one sync per chunk
    // in turn kept the disk at half the rate it reaches with the syncs in flight together.
    let mut downloads = futures::stream::iter(fetches).buffered(PARALLEL_DOWNLOADS);
    let mut written = Vec::with_capacity(3 * needed.len() + 3);
    let mut last_base_offset = content.log_start_offset;
    let mut downloaded_bytes = 0u64;
    // Chunks arrive in log order, so their batches replay the producers' history in order.
    let mut producers = ProducerStateTable::default();
    for chunk in &needed {
        let Some(result) = downloads.next().await else {
            break;
        };
        match result {
            Ok(staged) => {
                written.extend(staged.files);
                last_base_offset = last_base_offset.max(staged.base_offset);
                downloaded_bytes += staged.plain_bytes;
                for header in &staged.producer_batches {
                    producers.record(header, header.base_offset);
                }
            }
            Err(error) => {
                if matches!(error, SnapshotError::Corrupt { .. }) {
                    let _ = objects.delete(&chunk.key).await;
                }
                return Err(error);
            }
        }
    }
    if content.chunks.is_empty() {
        let path = segment_path(directory, content.log_start_offset);
        written.push(write_unsynced(&path, &[])?);
    }
    if reused_below.is_none() {
        // Every batch of the log passed through here: opening the replica need not read
        // their headers back. (Below `reused_below` the replica's own log is scanned.)
        let path = directory.join(producer_snapshot::FILE_NAME);
        producer_snapshot::write(directory, &producers, content.log_end_offset)
            .map_err(|error| SnapshotError::io(&path, error))?;
    }
    sync_all(written, directory).await?;
    // Everything written is synced: the log opens trusting every segment but the last
    // instead of reading the replica back to rebuild indexes staging already wrote.
    import::trust_segments_below(directory, last_base_offset).map_err(|source| {
        SnapshotError::Stage {
            group: manifest.group,
            source,
        }
    })?;
    let checkpoint = Checkpoint {
        applied_index: manifest.index,
        log_end_offset: content.log_end_offset,
    };
    checkpoint
        .write(directory)
        .map_err(|error| SnapshotError::io(directory, error))?;
    tracing::info!(
        group = manifest.group,
        index = manifest.index,
        reused_below,
        downloaded_bytes,
        "snapshot staged"
    );
    Ok(reused_below)
}

/// The batches of `plain` from the one starting at `offset` on; `None` when no batch starts
/// there. `plain` has passed [`check_batches`].
fn batches_from(plain: &[u8], offset: i64) -> Option<&[u8]> {
    let headers = record_batch::validate_batches(plain, usize::MAX).ok()?;
    let mut position = 0;
    for header in headers {
        if header.base_offset == offset {
            return Some(&plain[position..]);
        }
        position += header.total_bytes();
    }
    None
}

/// Adds to a staged `directory` the log the (retired) `replica` supplies below
/// `reused_below`: its segment files hard-linked when the replica ends exactly there (it
/// usually does: it applied nothing while the snapshot was staged), else the batches copied.
/// The replica's log is synced first, as the staged checkpoint vouches for it. Returns the
/// bytes reused.
pub fn complete_from_replica(
    group: u64,
    replica: &Partition,
    directory: &Path,
    reused_below: i64,
) -> Result<u64, SnapshotError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |error| SnapshotError::io(&path, error)
    };
    replica.sync_log().map_err(|error| SnapshotError::Read {
        group,
        message: format!("syncing {}: {error}", replica.directory().display()),
    })?;
    let mut reused_bytes = 0u64;
    if replica.log_end_offset() == reused_below {
        // A segment starting at the end is empty, and the staged tail starts there.
        for base_offset in replica
            .segment_base_offsets()
            .into_iter()
            .filter(|base_offset| *base_offset < reused_below)
        {
            let source = segment_path(replica.directory(), base_offset);
            let target = segment_path(directory, base_offset);
            std::fs::hard_link(&source, &target).map_err(io(&source))?;
            reused_bytes += std::fs::metadata(&target).map_err(io(&target))?.len();
        }
    } else {
        use std::io::Write;
        let start = replica.log_start_offset();
        let target = segment_path(directory, start);
        let mut file = std::fs::File::create(&target).map_err(io(&target))?;
        let mut next = start;
        while next < reused_below {
            let read = replica
                .read_until(next, CHUNK_BYTES, reused_below)
                .map_err(|error| SnapshotError::Read {
                    group,
                    message: format!("copying {}: {error}", replica.directory().display()),
                })?;
            if read.next_offset <= next {
                return Err(SnapshotError::Read {
                    group,
                    message: format!(
                        "{} returned nothing at offset {next} (below {reused_below})",
                        replica.directory().display()
                    ),
                });
            }
            file.write_all(&read.bytes).map_err(io(&target))?;
            reused_bytes += read.bytes.len() as u64;
            next = read.next_offset;
        }
        file.sync_data().map_err(io(&target))?;
    }
    std::fs::File::open(directory)
        .and_then(|handle| handle.sync_all())
        .map_err(io(directory))?;
    metrics::counter!("chronik_snapshot_reused_bytes_total").increment(reused_bytes);
    Ok(reused_bytes)
}

/// Lists the chunk objects of `group` in the store with their sizes.
pub async fn existing_chunks(
    objects: &SnapshotObjects,
    group: u64,
) -> Result<std::collections::HashMap<String, u64>, SnapshotError> {
    let prefix = format!("{}chunks/", super::manifest::group_prefix(group));
    Ok(objects
        .list(&prefix)
        .await?
        .into_iter()
        .map(|object| (object.key, object.size_bytes))
        .collect())
}

/// One chunk written into the staging directory.
struct StagedChunk {
    /// The segment's log and index files, to sync.
    files: [PathBuf; 3],
    base_offset: i64,
    plain_bytes: u64,
    /// Headers of its idempotent producers' batches, in log order.
    producer_batches: Vec<BatchHeader>,
}

/// The chunk holds whole, valid batches from exactly `start` to `end`; returns their headers.
fn check_batches(plain: &[u8], start: i64, end: i64) -> Result<Vec<BatchHeader>, String> {
    let headers = record_batch::validate_batches(plain, usize::MAX)
        .map_err(|error| format!("record batches do not validate: {error}"))?;
    let mut next = start;
    for header in &headers {
        if header.base_offset != next {
            return Err(format!(
                "batch at offset {} where {next} was expected",
                header.base_offset
            ));
        }
        next = header.last_offset() + 1;
    }
    if next != end {
        return Err(format!("batches end at offset {next}, not {end}"));
    }
    Ok(headers)
}

fn segment_path(directory: &Path, base_offset: i64) -> std::path::PathBuf {
    directory.join(format!("{base_offset:020}.log"))
}

/// Writes `bytes` as the file `path`, unsynced and around the page cache
/// ([`uncached_write`]), and returns the path. The file is closed: a partition of thousands
/// of chunks must not hold a descriptor per chunk until the sync.
fn write_unsynced(path: &Path, bytes: &[u8]) -> Result<PathBuf, SnapshotError> {
    uncached_write::write_file(path, bytes).map_err(|error| SnapshotError::io(path, error))?;
    Ok(path.to_path_buf())
}

/// Syncs the `written` files, several at once, then `directory` (which holds their names).
async fn sync_all(written: Vec<PathBuf>, directory: &Path) -> Result<(), SnapshotError> {
    let syncs = written.into_iter().map(|path| async move {
        tokio::task::spawn_blocking(move || {
            std::fs::File::open(&path)
                .and_then(|file| file.sync_data())
                .map_err(|error| SnapshotError::io(&path, error))
        })
        .await
        .map_err(|error| SnapshotError::Task(error.to_string()))?
    });
    let mut syncs = futures::stream::iter(syncs).buffer_unordered(PARALLEL_DOWNLOADS);
    while let Some(result) = syncs.next().await {
        result?;
    }
    std::fs::File::open(directory)
        .and_then(|handle| handle.sync_all())
        .map_err(|error| SnapshotError::io(directory, error))
}

pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::record_batch::build_test_batch;

    /// Three batches at offsets 10 (2 records), 12 (1) and 13 (3), concatenated.
    fn three_batches() -> (Vec<u8>, usize, usize) {
        let record: (&[u8], &[u8]) = (b"k", b"v");
        let first = build_test_batch(10, &[record; 2], -1, -1, -1, 1_000);
        let second = build_test_batch(12, &[record; 1], -1, -1, -1, 1_000);
        let third = build_test_batch(13, &[record; 3], -1, -1, -1, 1_000);
        let (first_len, second_len) = (first.len(), second.len());
        let plain = [first, second, third].concat();
        (plain, first_len, first_len + second_len)
    }

    #[test]
    fn a_chunk_is_trimmed_to_the_batch_where_the_local_replica_ends() {
        let (plain, second_at, third_at) = three_batches();
        check_batches(&plain, 10, 16).unwrap();
        assert_eq!(batches_from(&plain, 10), Some(&plain[..]));
        assert_eq!(batches_from(&plain, 12), Some(&plain[second_at..]));
        assert_eq!(batches_from(&plain, 13), Some(&plain[third_at..]));
        let tail = batches_from(&plain, 13).unwrap();
        check_batches(tail, 13, 16).unwrap();
    }

    #[test]
    fn an_end_inside_a_batch_or_outside_the_chunk_is_refused() {
        let (plain, ..) = three_batches();
        assert_eq!(batches_from(&plain, 11), None);
        assert_eq!(batches_from(&plain, 14), None);
        assert_eq!(batches_from(&plain, 16), None);
        assert_eq!(batches_from(&plain, 9), None);
    }
}
