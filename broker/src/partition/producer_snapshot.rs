//! A saved copy of a replica's idempotent-producer state at one log offset, so that opening
//! the replica scans batch headers from that offset instead of from the log's start.
//!
//! Staging a snapshot writes one at the snapshot's log end: it holds every batch in memory
//! then, while reading the headers back from a freshly installed gigabyte would cost a
//! second or more. The file `producer-state` is "CPS1", the covered log end offset (i64),
//! the encoded table ([`ProducerStateTable::encode`]) and a CRC-32C of all that.
//!
//! The copy stays valid as the log grows: batches at an offset never change (offsets are
//! assigned once, replicas are byte-identical), so the state at the covered offset plus the
//! batches after it is the state at the end. A copy that covers more than the log holds
//! (the log was cut back below it) or fails its checks is removed and the whole log scanned.

use std::path::Path;

use tracing::warn;

use super::producer_state::ProducerStateTable;
use crate::durable_file::write_atomically;

pub const FILE_NAME: &str = "producer-state";
const MAGIC: &[u8; 4] = b"CPS1";
const CRC_BYTES: usize = 4;

/// Writes (atomically, synced) the producer state covering the log below `covered_offset`.
pub fn write(
    directory: &Path,
    table: &ProducerStateTable,
    covered_offset: i64,
) -> std::io::Result<()> {
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&covered_offset.to_be_bytes());
    bytes.extend_from_slice(&table.encode());
    bytes.extend_from_slice(&crc32c::crc32c(&bytes).to_be_bytes());
    write_atomically(&directory.join(FILE_NAME), &bytes)
}

/// The saved state of the replica in `directory` and the offset to scan on from, when it is
/// usable for a log holding `[log_start_offset, log_end_offset)`; else an empty table and
/// the log's start (removing a file that is not usable).
pub fn load(
    directory: &Path,
    log_start_offset: i64,
    log_end_offset: i64,
) -> (ProducerStateTable, i64) {
    let path = directory.join(FILE_NAME);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return (ProducerStateTable::default(), log_start_offset);
        }
        Err(error) => {
            warn!(path = %path.display(), %error, "unreadable producer state; scanning the whole log");
            return (ProducerStateTable::default(), log_start_offset);
        }
    };
    match decode(&bytes) {
        Ok((table, covered)) if covered <= log_end_offset => (table, covered.max(log_start_offset)),
        outcome => {
            let reason = match outcome {
                Ok((_, covered)) => {
                    format!("it covers offset {covered}, beyond the log's end {log_end_offset}")
                }
                Err(reason) => reason,
            };
            warn!(path = %path.display(), %reason, "producer state not usable; removing it and scanning the whole log");
            let _ = std::fs::remove_file(&path);
            (ProducerStateTable::default(), log_start_offset)
        }
    }
}

fn decode(bytes: &[u8]) -> Result<(ProducerStateTable, i64), String> {
    if bytes.len() < MAGIC.len() + 8 + CRC_BYTES || &bytes[..MAGIC.len()] != MAGIC {
        return Err("not a producer state file".to_string());
    }
    let (body, crc) = bytes.split_at(bytes.len() - CRC_BYTES);
    let expected = u32::from_be_bytes(crc.try_into().expect("four bytes"));
    let actual = crc32c::crc32c(body);
    if actual != expected {
        return Err(format!(
            "CRC-32C mismatch (stored {expected:#010x}, computed {actual:#010x})"
        ));
    }
    let covered = i64::from_be_bytes(body[4..12].try_into().expect("eight bytes"));
    let table = ProducerStateTable::decode(&body[12..])
        .ok_or_else(|| "the producer table does not decode".to_string())?;
    Ok((table, covered))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::record_batch::{build_test_batch, BatchHeader};

    fn table_of_one_producer() -> ProducerStateTable {
        let bytes = build_test_batch(0, &[(&b"k"[..], &b"v"[..])], 42, 0, 0, 1_000);
        let mut table = ProducerStateTable::default();
        table.record(&BatchHeader::parse(&bytes).unwrap(), 7);
        table
    }

    #[test]
    fn a_saved_state_loads_for_a_log_that_reaches_it() {
        let directory = tempfile::tempdir().unwrap();
        let table = table_of_one_producer();
        write(directory.path(), &table, 100).unwrap();
        let (loaded, scan_from) = load(directory.path(), 0, 150);
        assert_eq!((loaded.encode(), scan_from), (table.encode(), 100));
        // A log whose start passed the covered offset is scanned from its start.
        let (loaded, scan_from) = load(directory.path(), 120, 150);
        assert_eq!((loaded.producer_count(), scan_from), (1, 120));
    }

    #[test]
    fn a_state_beyond_the_log_or_damaged_is_removed_and_ignored() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join(FILE_NAME);
        write(directory.path(), &table_of_one_producer(), 100).unwrap();
        let (loaded, scan_from) = load(directory.path(), 0, 99);
        assert_eq!((loaded.producer_count(), scan_from), (0, 0));
        assert!(!path.exists());

        write(directory.path(), &table_of_one_producer(), 100).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[14] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let (loaded, scan_from) = load(directory.path(), 0, 150);
        assert_eq!((loaded.producer_count(), scan_from), (0, 0));
        assert!(!path.exists());

        let (loaded, scan_from) = load(directory.path(), 5, 150);
        assert_eq!((loaded.producer_count(), scan_from), (0, 5));
    }
}
