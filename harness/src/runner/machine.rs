//! What the report says about where it ran: the machine, its disk's fsync'd write bandwidth
//! (the physical limit an acks=all throughput reads against), and the versions.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use crate::report::{Machine, Versions};

/// Bytes written per fdatasync in the disk measurement.
const FSYNC_CHUNK_BYTES: usize = 1 << 20;
/// Chunks written in the disk measurement.
const FSYNC_CHUNKS: usize = 16;

pub fn describe_machine(folder: &Path) -> Machine {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .map(|text| text.trim().to_string())
            .unwrap_or_default()
    };
    let memory_kib = read("/proc/meminfo")
        .lines()
        .find(|line| line.starts_with("MemTotal:"))
        .and_then(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    Machine {
        hostname: read("/proc/sys/kernel/hostname"),
        cores: std::thread::available_parallelism().map_or(1, |cores| cores.get() as u32),
        memory_bytes: memory_kib * 1024,
        kernel: read("/proc/sys/kernel/osrelease"),
        fsync_write_bytes_per_second: fsync_write_bandwidth(folder).unwrap_or(0.0),
    }
}

/// Writes `FSYNC_CHUNKS` chunks to a file in `folder`, each followed by fdatasync.
fn fsync_write_bandwidth(folder: &Path) -> std::io::Result<f64> {
    let path = folder.join(".fsync-probe");
    let mut file = std::fs::File::create(&path)?;
    let chunk = vec![0x5a_u8; FSYNC_CHUNK_BYTES];
    let started = Instant::now();
    for _ in 0..FSYNC_CHUNKS {
        file.write_all(&chunk)?;
        file.sync_data()?;
    }
    let seconds = started.elapsed().as_secs_f64();
    drop(file);
    std::fs::remove_file(&path)?;
    Ok((FSYNC_CHUNK_BYTES * FSYNC_CHUNKS) as f64 / seconds.max(1e-9))
}

pub fn versions(broker_binary: &Path) -> Versions {
    let broker = Command::new(broker_binary)
        .arg("--version")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .map(|text| text.trim().to_string())
        .unwrap_or_else(|| "unknown".to_string());
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .map(|text| text.trim().to_string());
    Versions {
        bench: env!("CARGO_PKG_VERSION").to_string(),
        broker,
        commit,
    }
}
