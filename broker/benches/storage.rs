//! Storage micro-benchmarks: batch validation, log append (no sync) and log read.
//!
//! `cargo bench -p chronik-server --bench storage`. The append bench keeps at most
//! `APPEND_WINDOW_BYTES` on disk by truncating the log (outside the timed part).

use std::hint::black_box;
use std::time::{Duration, Instant};

use chronik::storage::{LogConfig, PartitionLog};
use chronik::wire::record_batch::{build_test_batch, validate_batches};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const RECORD_VALUE_BYTES: usize = 1024;
const RECORDS_PER_BATCH: usize = 15;
const APPEND_WINDOW_BYTES: u64 = 128 << 20;
const READ_LOG_BYTES: usize = 64 << 20;
const READ_CHUNK_BYTES: usize = 1 << 20;

/// One ~16 KiB batch of 1 KiB records.
fn batch_16k() -> Vec<u8> {
    let value = vec![0x5au8; RECORD_VALUE_BYTES];
    let records: Vec<(&[u8], &[u8])> = (0..RECORDS_PER_BATCH)
        .map(|_| (&b"key"[..], &value[..]))
        .collect();
    build_test_batch(0, &records, 1, 0, 0, 1_700_000_000_000)
}

fn log_config() -> LogConfig {
    LogConfig {
        segment_bytes: 32 << 20,
        index_interval_bytes: 4096,
        retention_bytes: None,
        retention_ms: None,
    }
}

fn batch_validate(c: &mut Criterion) {
    let batch = batch_16k();
    let mut buffer = Vec::with_capacity(1 << 20);
    while buffer.len() + batch.len() <= 1 << 20 {
        buffer.extend_from_slice(&batch);
    }
    let mut group = c.benchmark_group("batch_validate");
    group.throughput(Throughput::Bytes(buffer.len() as u64));
    group.bench_function("1MiB_of_16KiB_batches", |b| {
        b.iter(|| validate_batches(black_box(&buffer), usize::MAX).unwrap())
    });
    group.finish();
}

fn log_append(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), log_config()).unwrap();
    let mut batch = batch_16k();
    let mut group = c.benchmark_group("log_append");
    group.throughput(Throughput::Bytes(batch.len() as u64));
    group.bench_function("16KiB_batch_no_sync", |b| {
        b.iter_custom(|iterations| {
            let mut elapsed = Duration::ZERO;
            let mut left = iterations;
            while left > 0 {
                if log.size_bytes() >= APPEND_WINDOW_BYTES {
                    let start = log.log_start_offset();
                    log.truncate_to(start).unwrap();
                }
                let room = (APPEND_WINDOW_BYTES - log.size_bytes()) / batch.len() as u64 + 1;
                let run = left.min(room);
                let started = Instant::now();
                for _ in 0..run {
                    black_box(log.append(&mut batch).unwrap());
                }
                elapsed += started.elapsed();
                left -= run;
            }
            elapsed
        })
    });
    group.finish();
}

fn log_read(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), log_config()).unwrap();
    let mut batch = batch_16k();
    while (log.size_bytes() as usize) < READ_LOG_BYTES {
        log.append(&mut batch).unwrap();
    }
    let end = log.log_end_offset();
    // Whole batches only, so a chunk is a little under 1 MiB.
    let chunk = log.read(0, READ_CHUNK_BYTES, end).unwrap().bytes.len();
    let mut offset = 0;
    let mut group = c.benchmark_group("log_read");
    group.throughput(Throughput::Bytes(chunk as u64));
    group.bench_function("1MiB_chunks_warm", |b| {
        b.iter(|| {
            let result = log.read(offset, READ_CHUNK_BYTES, end).unwrap();
            offset = if result.next_offset >= end {
                0
            } else {
                result.next_offset
            };
            black_box(result.bytes)
        })
    });
    group.finish();
}

criterion_group!(benches, batch_validate, log_append, log_read);
criterion_main!(benches);
