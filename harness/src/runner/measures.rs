//! What a run reads off the cluster and the machine as it ends: the brokers' Raft log and
//! snapshot figures, CPU time on both sides, and panics in the brokers' logs.

use std::path::Path;

use crate::cluster::Cluster;
use crate::report;

/// Raft log and snapshot figures summed (or, for the log, maximised) over the nodes up now.
pub(super) fn storage_use(cluster: &dyn Cluster) -> report::StorageUse {
    let mut storage = report::StorageUse::default();
    for node in cluster.node_ids() {
        let Ok(text) = cluster.metrics(node) else {
            continue;
        };
        let sum = |name: &str| -> u64 {
            text.lines()
                .filter(|line| {
                    line.strip_prefix(name)
                        .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
                })
                .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>() as u64
        };
        storage.raft_log_bytes_max_node = storage
            .raft_log_bytes_max_node
            .max(sum("chronik_raft_log_bytes"));
        storage.snapshots_taken += sum("chronik_snapshots_taken_total");
        storage.snapshots_installed += sum("chronik_snapshots_installed_total");
        storage.snapshot_uploaded_bytes += sum("chronik_snapshot_uploaded_bytes_total");
    }
    storage
}

/// CPU seconds (user + system) this process has used so far.
pub(super) fn bench_cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        let seconds = |time: libc::timeval| time.tv_sec as f64 + time.tv_usec as f64 / 1e6;
        seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }
}

/// The bench's CPU time against the brokers'.
pub(super) fn cpu_use(bench_seconds: f64, brokers_seconds: f64) -> report::CpuUse {
    report::CpuUse {
        bench_seconds,
        brokers_seconds,
        bench_to_brokers_ratio: if brokers_seconds > 0.0 {
            bench_seconds / brokers_seconds
        } else {
            0.0
        },
    }
}

/// `panicked at` lines in the brokers' logs.
pub(super) fn panics_in_logs(folder: &Path, logs: &[String]) -> Vec<String> {
    let mut panics = Vec::new();
    for name in logs {
        let Ok(text) = std::fs::read_to_string(folder.join(name)) else {
            continue;
        };
        if let Some(line) = text.lines().find(|line| line.contains("panicked at")) {
            panics.push(format!("{name}: {}", line.trim()));
        }
    }
    panics
}
