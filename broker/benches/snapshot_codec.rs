//! Snapshot object sealing: throughput of each compression on Kafka-like record data, and what
//! it saves.
//!
//! `cargo bench -p chronik-server --bench snapshot_codec`. The input is 16 MiB of record batch
//! v2 frames (as a partition log holds them) whose values are JSON-ish order events with
//! pseudo-random ids, amounts and timestamps. Besides `seal` at the levels it uses, gzip and zstd
//! are measured at their usual defaults (6 and 3) for comparison. The compression ratio of each
//! is printed before the timings.

use std::hint::black_box;
use std::io::Write;

use chronik::snapshot::codec::{seal, unseal, Compression};
use chronik::wire::record_batch::build_test_batch;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const INPUT_BYTES: usize = 16 << 20;
const RECORDS_PER_BATCH: usize = 32;

/// xorshift64: deterministic, so every run compresses the same bytes.
struct Generator(u64);

impl Generator {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// 16 MiB of record batches, as a snapshot of a partition log would carry them.
fn record_data() -> Vec<u8> {
    let mut generator = Generator(0x2545_f491_4f6c_dd1d);
    let currencies = ["EUR", "USD", "GBP", "JPY"];
    let statuses = ["created", "paid", "shipped", "delivered", "returned"];
    let mut data = Vec::with_capacity(INPUT_BYTES + (1 << 20));
    let mut offset = 0i64;
    while data.len() < INPUT_BYTES {
        let records: Vec<(String, String)> = (0..RECORDS_PER_BATCH)
            .map(|index| {
                let customer = generator.next() % 5_000;
                let key = format!("customer-{customer:05}");
                let value = format!(
                    concat!(
                        "{{\"order_id\":{},\"customer\":\"customer-{:05}\",\"sku\":\"SKU-{:06}\",",
                        "\"quantity\":{},\"price_cents\":{},\"currency\":\"{}\",\"status\":\"{}\",",
                        "\"session\":\"{:016x}\",\"ts\":{}}}"
                    ),
                    offset + index as i64,
                    customer,
                    generator.next() % 200_000,
                    1 + generator.next() % 9,
                    99 + generator.next() % 100_000,
                    currencies[(generator.next() % 4) as usize],
                    statuses[(generator.next() % 5) as usize],
                    generator.next(),
                    1_700_000_000_000u64 + offset as u64 * 3 + index as u64,
                );
                (key, value)
            })
            .collect();
        let borrowed: Vec<(&[u8], &[u8])> = records
            .iter()
            .map(|(key, value)| (key.as_bytes(), value.as_bytes()))
            .collect();
        data.extend_from_slice(&build_test_batch(
            offset,
            &borrowed,
            -1,
            -1,
            -1,
            1_700_000_000_000 + offset,
        ));
        offset += RECORDS_PER_BATCH as i64;
    }
    data.truncate(INPUT_BYTES);
    data
}

fn gzip_at(plain: &[u8], level: u32) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    encoder.write_all(plain).unwrap();
    encoder.finish().unwrap()
}

fn zstd_at(plain: &[u8], level: i32) -> Vec<u8> {
    zstd::bulk::compress(plain, level).unwrap()
}

fn ratio(plain: &[u8], stored: usize) -> String {
    format!(
        "{:.2}x ({} -> {} bytes)",
        plain.len() as f64 / stored as f64,
        plain.len(),
        stored
    )
}

fn snapshot_seal(c: &mut Criterion) {
    let plain = record_data();
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let (stored, _) = seal(&plain, compression);
        println!("seal {compression:?}: {}", ratio(&plain, stored.len()));
    }
    println!("gzip level 6: {}", ratio(&plain, gzip_at(&plain, 6).len()));
    println!("zstd level 3: {}", ratio(&plain, zstd_at(&plain, 3).len()));

    let mut group = c.benchmark_group("snapshot_seal_16MiB");
    group.throughput(Throughput::Bytes(plain.len() as u64));
    group.sample_size(10);
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        group.bench_function(format!("{compression:?}").to_lowercase(), |b| {
            b.iter(|| seal(black_box(&plain), compression))
        });
    }
    group.bench_function("gzip_level_6", |b| b.iter(|| gzip_at(black_box(&plain), 6)));
    group.bench_function("zstd_level_3", |b| b.iter(|| zstd_at(black_box(&plain), 3)));
    group.finish();

    let mut group = c.benchmark_group("snapshot_unseal_16MiB");
    group.throughput(Throughput::Bytes(plain.len() as u64));
    group.sample_size(10);
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let (stored, digest) = seal(&plain, compression);
        group.bench_function(format!("{compression:?}").to_lowercase(), |b| {
            b.iter(|| unseal(black_box(&stored), &digest).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, snapshot_seal);
criterion_main!(benches);
