//! Producer ids for InitProducerId: unique across restarts and across the cluster.
//!
//! An id is the node id in the high bits and a node-local counter below them, so nodes never
//! need to agree on ids. The counter is handed out from blocks; the end of the current block
//! is made durable before the first id of it is given out, so after a crash the node starts
//! past every id it may have given.

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
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => 0,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_across_reopen() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("producer-ids.json");
        let allocator = ProducerIdAllocator::open(&path, 2).unwrap();
        let first: Vec<i64> = (0..3).map(|_| allocator.allocate().unwrap()).collect();
        let prefix = 2i64 << NODE_LOCAL_BITS;
        assert_eq!(first, vec![prefix, prefix + 1, prefix + 2]);
        let reopened = ProducerIdAllocator::open(&path, 2).unwrap();
        assert_eq!(reopened.allocate().unwrap(), prefix + PRODUCER_ID_BLOCK);
    }
}
