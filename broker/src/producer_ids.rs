//! Producer ids for InitProducerId: unique across restarts and across the cluster.
//!
//! An id is the node id in the high bits and a node-local counter below them, so nodes never
//! need to agree on ids. The counter is handed out from blocks; the end of the current block
//! is made durable before the first id of it is given out, so after a crash the node starts
//! past every id it may have given. A node without the file (new, or its disk was lost) starts
//! at [`PRODUCER_ID_BLOCK`] ids per second since 2024: a wiped node must not hand out again ids
//! whose producers' sequence state the partitions still hold (they would refuse the new
//! producer's first batch as out of order). That holds unless the node gave out more than
//! 1000 ids per second of its life on average.

use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::durable_file::write_atomically;

/// Ids reserved per durable write.
pub const PRODUCER_ID_BLOCK: i64 = 1000;
/// Bits of an id below the node id.
pub const NODE_LOCAL_BITS: u32 = 40;

#[derive(Serialize, Deserialize)]
struct Reserved {
    next_block_start: i64,
}

struct Cursor {
    next: i64,
    block_end: i64,
}

pub struct ProducerIdAllocator {
    path: PathBuf,
    node_prefix: i64,
    cursor: Mutex<Cursor>,
}

impl ProducerIdAllocator {
    pub fn open(path: &Path, node_id: u64) -> anyhow::Result<ProducerIdAllocator> {
        let start = match std::fs::read(path) {
            Ok(bytes) => {
                serde_json::from_slice::<Reserved>(&bytes)
                    .map_err(|error| anyhow::anyhow!("{} is corrupt: {error}", path.display()))?
                    .next_block_start
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => fresh_start(),
            Err(error) => return Err(anyhow::anyhow!("reading {}: {error}", path.display())),
        };
        Ok(ProducerIdAllocator {
            path: path.to_path_buf(),
            node_prefix: (node_id as i64) << NODE_LOCAL_BITS,
            cursor: Mutex::new(Cursor {
                next: start,
                block_end: start,
            }),
        })
    }

    pub fn allocate(&self) -> std::io::Result<i64> {
        let mut cursor = self.cursor.lock();
        if cursor.next == cursor.block_end {
            let block_end = cursor.block_end + PRODUCER_ID_BLOCK;
            let bytes = serde_json::to_vec(&Reserved {
                next_block_start: block_end,
            })
            .expect("serializes");
            write_atomically(&self.path, &bytes)?;
            cursor.block_end = block_end;
        }
        let id = cursor.next;
        cursor.next += 1;
        Ok(self.node_prefix | id)
    }
}

/// Seconds since 2024-01-01 in UTC.
const EPOCH_2024_SECONDS: u64 = 1_704_067_200;

/// Where a node without a reservation file starts: later the later it starts.
fn fresh_start() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let seconds = now.saturating_sub(EPOCH_2024_SECONDS) as i64;
    (seconds * PRODUCER_ID_BLOCK) & ((1 << NODE_LOCAL_BITS) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_across_reopen() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("producer-ids.json");
        let allocator = ProducerIdAllocator::open(&path, 2).unwrap();
        let first: Vec<i64> = (0..3).map(|_| allocator.allocate().unwrap()).collect();
        let start = first[0];
        assert_eq!(
            start >> NODE_LOCAL_BITS,
            2,
            "the node id is in the high bits"
        );
        assert_eq!(first, vec![start, start + 1, start + 2]);
        let reopened = ProducerIdAllocator::open(&path, 2).unwrap();
        assert_eq!(reopened.allocate().unwrap(), start + PRODUCER_ID_BLOCK);
    }

    #[test]
    fn a_node_that_lost_its_file_does_not_give_out_its_old_ids_again() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("producer-ids.json");
        let before = ProducerIdAllocator::open(&path, 3).unwrap();
        let old: Vec<i64> = (0..10).map(|_| before.allocate().unwrap()).collect();
        std::fs::remove_file(&path).unwrap();
        // One second later the fresh start lies a whole block further on.
        std::thread::sleep(std::time::Duration::from_millis(1_100));
        let wiped = ProducerIdAllocator::open(&path, 3).unwrap();
        let new = wiped.allocate().unwrap();
        assert!(
            new > *old.last().unwrap(),
            "{new} repeats an id up to {old:?}"
        );
    }
}
