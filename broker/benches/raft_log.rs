//! The Raft log store against the floor any write-ahead log has: one round of 8 groups x
//! 128 KiB entries written and fdatasynced, through raft-engine (`EngineLogStore`) and as a
//! plain append + fdatasync to one file (what an own WAL could at best do).

use std::io::Write;

use chronik::raft::engine_store::EngineLogStore;
use chronik::raft::log_store::{RaftLogStore, StoreBatch};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use raft::eraftpb::Entry;

const GROUPS: u64 = 8;
const ENTRY_BYTES: usize = 128 * 1024;

fn round_bytes() -> u64 {
    GROUPS * ENTRY_BYTES as u64
}

fn raft_engine(c: &mut Criterion) {
    let directory = tempfile::tempdir().unwrap();
    let store = EngineLogStore::open(directory.path()).unwrap();
    let payload = vec![7u8; ENTRY_BYTES];
    let mut index = 0u64;
    let mut group = c.benchmark_group("raft_log_round");
    group.throughput(Throughput::Bytes(round_bytes()));
    group.sample_size(20);
    group.bench_function("raft_engine_write_sync", |bench| {
        bench.iter(|| {
            index += 1;
            let mut batch = StoreBatch::default();
            for raft_group in 1..=GROUPS {
                let entry = Entry {
                    index,
                    term: 1,
                    data: payload.clone().into(),
                    ..Entry::default()
                };
                batch.group(raft_group).entries.push(entry);
            }
            store.write(batch, true).unwrap();
        })
    });
    let mut file = std::fs::File::create(directory.path().join("plain.wal")).unwrap();
    group.bench_function("plain_append_fdatasync", |bench| {
        bench.iter(|| {
            for _ in 0..GROUPS {
                file.write_all(&payload).unwrap();
            }
            file.sync_data().unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, raft_engine);
criterion_main!(benches);
