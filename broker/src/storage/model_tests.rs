//! Model-based proptest: appends, reads, syncs, truncations, clean reopens and simulated
//! crashes (drop without sync, then cut the active segment anywhere past the synced data and
//! maybe flip a byte there) against a plain list of batches.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use proptest::prelude::*;
use proptest::sample::Index;

use super::log_tests::{batch, config};
use super::segment::segment_file;
use super::{LogConfig, PartitionLog};
use crate::wire::record_batch::BatchHeader;

#[derive(Clone, Debug)]
enum Op {
    Append {
        records: usize,
        value_len: usize,
        timestamp: i64,
    },
    Read {
        offset: Index,
        max_bytes: usize,
        watermark: Index,
    },
    Sync,
    Crash {
        cut: Index,
        flip: Option<(Index, u8)>,
    },
    Reopen,
    Truncate {
        offset: Index,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (1usize..5, 0usize..400, 0i64..10_000)
            .prop_map(|(records, value_len, timestamp)| Op::Append { records, value_len, timestamp }),
        4 => (any::<Index>(), 0usize..3000, any::<Index>())
            .prop_map(|(offset, max_bytes, watermark)| Op::Read { offset, max_bytes, watermark }),
        1 => Just(Op::Sync),
        2 => (any::<Index>(), proptest::option::of((any::<Index>(), 1u8..=255)))
            .prop_map(|(cut, flip)| Op::Crash { cut, flip }),
        1 => Just(Op::Reopen),
        1 => any::<Index>().prop_map(|offset| Op::Truncate { offset }),
    ]
}

struct ModelBatch {
    base: i64,
    last: i64,
    bytes: Vec<u8>,
    /// Position in its segment's log file.
    position: u64,
}

#[derive(Default)]
struct Model {
    batches: Vec<ModelBatch>,
    /// How many of the batches are known to be durable.
    synced: usize,
}

impl Model {
    fn end(&self) -> i64 {
        self.batches.last().map_or(0, |batch| batch.last + 1)
    }

    fn expected_read(&self, offset: i64, max_bytes: usize, watermark: i64) -> (Vec<u8>, i64) {
        let mut out = Vec::new();
        let mut next = offset;
        if offset >= watermark.min(self.end()) {
            return (out, next);
        }
        for batch in self.batches.iter().filter(|batch| batch.last >= offset) {
            if batch.base >= watermark {
                break;
            }
            if !out.is_empty() && out.len() + batch.bytes.len() > max_bytes {
                break;
            }
            out.extend_from_slice(&batch.bytes);
            next = batch.last + 1;
        }
        (out, next)
    }
}

fn check_everything(log: &PartitionLog, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(log.log_start_offset(), 0);
    prop_assert_eq!(log.log_end_offset(), model.end());
    let size: usize = model.batches.iter().map(|batch| batch.bytes.len()).sum();
    prop_assert_eq!(log.size_bytes(), size as u64);
    let whole = log.read(0, usize::MAX, i64::MAX).unwrap();
    let (expected, next) = model.expected_read(0, usize::MAX, i64::MAX);
    prop_assert!(whole.bytes == expected, "whole log differs from the model");
    prop_assert_eq!(whole.next_offset, next);
    Ok(())
}

fn run(cfg: LogConfig, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), cfg.clone()).unwrap();
    let mut model = Model::default();
    for op in ops {
        match op {
            Op::Append {
                records,
                value_len,
                timestamp,
            } => {
                let mut bytes = batch(records, value_len, timestamp);
                let info = log.append(&mut bytes).unwrap();
                prop_assert_eq!(info.base_offset, model.end());
                let header = BatchHeader::parse(&bytes).unwrap();
                prop_assert_eq!(header.base_offset, info.base_offset);
                model.batches.push(ModelBatch {
                    base: info.base_offset,
                    last: info.last_offset,
                    bytes,
                    position: info.position_bytes,
                });
            }
            Op::Read {
                offset,
                max_bytes,
                watermark,
            } => {
                let end = model.end();
                let offset = offset.index(end as usize + 2) as i64;
                let watermark = watermark.index(end as usize + 2) as i64;
                let result = log.read(offset, max_bytes, watermark).unwrap();
                let (expected, next) = model.expected_read(offset, max_bytes, watermark);
                prop_assert!(
                    result.bytes == expected,
                    "read({offset}, {max_bytes}, {watermark})"
                );
                prop_assert_eq!(result.next_offset, next);
            }
            Op::Sync => {
                log.sync().unwrap();
                model.synced = model.batches.len();
            }
            Op::Reopen => {
                drop(log);
                log = PartitionLog::open(dir.path(), cfg.clone()).unwrap();
                check_everything(&log, &model)?;
            }
            Op::Truncate { offset } => {
                let offset = offset.index(model.end() as usize + 1) as i64;
                log.truncate_to(offset).unwrap();
                model.batches.retain(|batch| batch.last < offset);
                model.synced = model.synced.min(model.batches.len());
                check_everything(&log, &model)?;
            }
            Op::Crash { cut, flip } => {
                let active_base = *log.segment_base_offsets().last().unwrap();
                drop(log);
                let path = segment_file(dir.path(), active_base, "log");
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&path)
                    .unwrap();
                let len = file.metadata().unwrap().len();
                let synced_end = model.batches[..model.synced]
                    .last()
                    .filter(|batch| batch.base >= active_base)
                    .map_or(0, |batch| batch.position + batch.bytes.len() as u64);
                let cut = synced_end + cut.index((len - synced_end + 1) as usize) as u64;
                file.set_len(cut).unwrap();
                let mut damaged_from = cut;
                if let Some((at, mask)) = flip.filter(|_| cut > synced_end) {
                    let at = synced_end + at.index((cut - synced_end) as usize) as u64;
                    let hit = model.batches.iter().find(|batch| {
                        batch.base >= active_base
                            && batch.position <= at
                            && at < batch.position + batch.bytes.len() as u64
                    });
                    // The partition leader epoch (bytes 12..16) is outside the CRC, as in Kafka.
                    if let Some(hit) = hit.filter(|hit| !(12..16).contains(&(at - hit.position))) {
                        let mut byte = [0u8];
                        file.read_exact_at(&mut byte, at).unwrap();
                        file.write_all_at(&[byte[0] ^ mask], at).unwrap();
                        damaged_from = damaged_from.min(hit.position);
                    }
                }
                drop(file);
                model.batches.retain(|batch| {
                    batch.base < active_base
                        || batch.position + batch.bytes.len() as u64 <= damaged_from
                });
                prop_assert!(
                    model.batches.len() >= model.synced,
                    "lost synced data in the model"
                );
                log = PartitionLog::open(dir.path(), cfg.clone()).unwrap();
                check_everything(&log, &model)?;
            }
        }
        prop_assert_eq!(log.log_end_offset(), model.end());
    }
    drop(log);
    let log = PartitionLog::open(dir.path(), cfg).unwrap();
    check_everything(&log, &model)
}

proptest! {
    // 128 cases unless PROPTEST_CASES says otherwise.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|cases| cases.parse().ok()).unwrap_or(128),
        ..ProptestConfig::default()
    })]

    #[test]
    fn log_matches_model(
        segment_bytes in 200u64..4000,
        index_interval in 0u32..600,
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        run(config(segment_bytes, index_interval), ops)?;
    }
}
