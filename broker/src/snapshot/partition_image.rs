//! A partition's snapshot: uploading its log as chunks, and staging a downloaded snapshot as
//! a partition directory ready to replace the local replica.
//!
//! Uploads are incremental: a new snapshot keeps every chunk of the previous one that still
//! holds data at or above the log start, and uploads only the batches written since, as new
//! chunks of at most [`CHUNK_BYTES`]. The log below the cut never changes (offsets are
//! assigned once, replicas are byte-identical), so a chunk is valid for every later snapshot.

use std::path::Path;
use std::sync::Arc;

use futures::StreamExt;

use super::codec::{seal, unseal, Compression};
use super::error::SnapshotError;
use super::manifest::{chunk_key, Chunk, Content, Manifest, PartitionContent};
use super::objects::SnapshotObjects;
use crate::partition::checkpoint::Checkpoint;
use crate::partition::Partition;
use crate::wire::record_batch;

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

/// Downloads and checks every chunk of a partition snapshot into `directory` (emptied
/// first), as segment files a [`crate::storage::PartitionLog`] opens, with a checkpoint at
/// the snapshot's index. A chunk the local `replica` already holds is copied from it instead
/// (replicas are byte-identical below their high watermark, so a follower that is behind
/// downloads only what it lacks). A chunk that fails its checks is deleted from the store (it
/// is provably bad, and the next snapshot uploads it again) and the staging fails.
pub async fn stage(
    objects: &SnapshotObjects,
    manifest: &Manifest,
    directory: &Path,
    replica: Option<&Arc<Partition>>,
) -> Result<(), SnapshotError> {
    let Content::Partition(content) = &manifest.content else {
        return Err(SnapshotError::WrongKind {
            group: manifest.group,
        });
    };
    let _ = std::fs::remove_dir_all(directory);
    std::fs::create_dir_all(directory).map_err(|error| SnapshotError::io(directory, error))?;
    let fetches = content.chunks.clone().into_iter().map(|chunk| {
        let objects = objects.clone();
        let replica = replica.cloned();
        async move {
            if let Some(copied) = copy_from_replica(replica, &chunk).await {
                return Ok((copied, true));
            }
            let stored = objects.get(&chunk.key).await?;
            tokio::task::spawn_blocking(move || {
                let corrupt = |message: String| SnapshotError::Corrupt {
                    key: chunk.key.clone(),
                    message,
                };
                let plain = unseal(&stored, &chunk.digest).map_err(|e| corrupt(e.to_string()))?;
                check_batches(&plain, chunk.start_offset, chunk.end_offset).map_err(corrupt)?;
                Ok::<_, SnapshotError>((plain, false))
            })
            .await
            .map_err(|error| SnapshotError::Task(error.to_string()))?
        }
    });
    let mut downloads = futures::stream::iter(fetches).buffered(PARALLEL_DOWNLOADS);
    let mut position = 0;
    let (mut copied_bytes, mut downloaded_bytes) = (0u64, 0u64);
    while let Some(result) = downloads.next().await {
        let chunk = &content.chunks[position];
        position += 1;
        let (plain, copied) = match result {
            Ok(fetched) => fetched,
            Err(error) => {
                if matches!(error, SnapshotError::Corrupt { .. }) {
                    let _ = objects.delete(&chunk.key).await;
                }
                return Err(error);
            }
        };
        if copied {
            copied_bytes += plain.len() as u64;
        } else {
            downloaded_bytes += plain.len() as u64;
        }
        write_synced(&segment_path(directory, chunk.start_offset), &plain)?;
    }
    if content.chunks.is_empty() {
        write_synced(&segment_path(directory, content.log_start_offset), &[])?;
    }
    let checkpoint = Checkpoint {
        applied_index: manifest.index,
        log_end_offset: content.log_end_offset,
    };
    checkpoint
        .write(directory)
        .map_err(|error| SnapshotError::io(directory, error))?;
    metrics::counter!("chronik_snapshot_reused_bytes_total").increment(copied_bytes);
    tracing::info!(
        group = manifest.group,
        index = manifest.index,
        copied_bytes,
        downloaded_bytes,
        "snapshot staged"
    );
    Ok(())
}

/// The chunk's batches read from the local replica, when it holds all of them (below its
/// high watermark) and they pass the same checks as a download; `None` otherwise.
async fn copy_from_replica(replica: Option<Arc<Partition>>, chunk: &Chunk) -> Option<Vec<u8>> {
    let replica = replica?;
    let (start, end) = (chunk.start_offset, chunk.end_offset);
    if start < replica.log_start_offset() || end > replica.high_watermark() {
        return None;
    }
    let expected_bytes = chunk.digest.plain_bytes as usize;
    tokio::task::spawn_blocking(move || {
        let mut plain = Vec::with_capacity(expected_bytes);
        let mut next = start;
        while next < end {
            let read = replica.read_until(next, CHUNK_BYTES, end).ok()?;
            if read.next_offset <= next {
                return None;
            }
            plain.extend_from_slice(&read.bytes);
            next = read.next_offset;
        }
        let intact = plain.len() == expected_bytes && check_batches(&plain, start, end).is_ok();
        intact.then_some(plain)
    })
    .await
    .ok()
    .flatten()
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

/// The chunk holds whole, valid batches from exactly `start` to `end`.
fn check_batches(plain: &[u8], start: i64, end: i64) -> Result<(), String> {
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
    Ok(())
}

fn segment_path(directory: &Path, base_offset: i64) -> std::path::PathBuf {
    directory.join(format!("{base_offset:020}.log"))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), SnapshotError> {
    use std::io::Write;
    let mut file = std::fs::File::create(path).map_err(|error| SnapshotError::io(path, error))?;
    file.write_all(bytes)
        .and_then(|_| file.sync_data())
        .map_err(|error| SnapshotError::io(path, error))
}

pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}
