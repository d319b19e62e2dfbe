//! A run report as tables of text, one per section, shared by `report.md` and `report.html`
//! so both say the same thing. Times are seconds from the start of the measured window.

use super::model::*;
use super::text::{format_bytes, format_number, format_seconds_from_ms};
use super::text_table::{RowStatus, TextTable};

/// Above this many seconds the throughput table groups seconds into at most this many rows.
pub const THROUGHPUT_ROWS_MAX: usize = 90;

/// What ran, where and how: name, verdict, seed, versions, machine, cluster, workload.
pub fn run_facts(report: &RunReport) -> TextTable {
    let mut table = TextTable::new(&["field", "value"]);
    let mut fact = |name: &str, value: String| table.push(vec![name.to_string(), value]);
    fact("scenario", report.name.clone());
    fact(
        "verdict",
        format!(
            "{} (exit code {})",
            report.verdict.name(),
            report.verdict.exit_code()
        ),
    );
    fact("seed", report.seed.to_string());
    fact("started at", report.started_at.clone());
    fact(
        "wall time",
        format!("{} s", format_number(report.wall_seconds)),
    );
    fact("bench", report.versions.bench.clone());
    fact("broker", report.versions.broker.clone());
    fact(
        "commit",
        report
            .versions
            .commit
            .clone()
            .unwrap_or_else(|| "unknown".to_string()),
    );
    let machine = &report.machine;
    fact(
        "machine",
        format!(
            "{}: {} cores, {} memory, kernel {}",
            machine.hostname,
            machine.cores,
            format_bytes(machine.memory_bytes as f64),
            machine.kernel
        ),
    );
    fact(
        "fsync write bandwidth",
        format!("{}/s", format_bytes(machine.fsync_write_bytes_per_second)),
    );
    let cluster = &report.cluster;
    fact(
        "cluster",
        format!(
            "{} nodes ({}), object store {}, fault proxy {}",
            cluster.nodes, cluster.runtime, cluster.object_store, cluster.fault_proxy
        ),
    );
    let topics: Vec<String> = cluster
        .topics
        .iter()
        .map(|topic| {
            format!(
                "{} ({} partitions, replication factor {})",
                topic.name, topic.partitions, topic.replication_factor
            )
        })
        .collect();
    fact("topics", topics.join(", "));
    fact("workload", workload_description(&report.workload));
    table
}

fn workload_description(workload: &WorkloadSummary) -> String {
    let offered = if workload.offered_rate == 0 {
        "as fast as acknowledged".to_string()
    } else {
        format!("{} msg/s offered", workload.offered_rate)
    };
    let sizes: Vec<String> = workload
        .message_size_bytes
        .iter()
        .map(|size| format!("{size} B"))
        .collect();
    format!(
        "{} s warmup, {} s measured, {} producers, {} consumers, {}, messages of {}",
        format_number(workload.warmup_ms as f64 / 1000.0),
        format_number(workload.duration_ms as f64 / 1000.0),
        workload.producers,
        workload.consumers,
        offered,
        sizes.join(", ")
    )
}

/// Every check with its value, limit and whether it held.
pub fn checks(report: &RunReport) -> TextTable {
    let mut table = TextTable::new(&["check", "value", "limit", "unit", "result"]);
    for check in &report.checks {
        let (result, status) = match (check.limit, check.passed) {
            (None, _) => ("reported", RowStatus::Neutral),
            (Some(_), true) => ("pass", RowStatus::Passed),
            (Some(_), false) => ("FAIL", RowStatus::Failed),
        };
        table.push_with_status(
            vec![
                check.name.clone(),
                format_number(check.value),
                check.limit.map(format_number).unwrap_or_default(),
                check.unit.clone(),
                result.to_string(),
            ],
            status,
        );
    }
    table
}

/// Messages sent, acknowledged, consumed, lost and so on, and the window's throughput.
pub fn counts(report: &RunReport) -> TextTable {
    let counts = &report.counts;
    let mut table = TextTable::new(&["count", "value"]);
    let rows = [
        ("sent", counts.sent.to_string()),
        ("acknowledged", counts.acknowledged.to_string()),
        ("failed", counts.failed.to_string()),
        ("consumed", counts.consumed.to_string()),
        ("lost", counts.lost.to_string()),
        ("duplicates", counts.duplicates.to_string()),
        ("reordered", counts.reordered.to_string()),
        (
            "inconsistent offsets",
            counts.inconsistent_offsets.to_string(),
        ),
        ("redelivered", counts.redelivered.to_string()),
        (
            "max unavailability ms",
            counts.max_unavailability_ms.to_string(),
        ),
        (
            "throughput msg/s",
            format_number(counts.throughput_per_second),
        ),
        (
            "throughput",
            format!("{}/s", format_bytes(counts.throughput_bytes_per_second)),
        ),
        ("bench CPU s", format_number(report.cpu.bench_seconds)),
        ("brokers CPU s", format_number(report.cpu.brokers_seconds)),
        (
            "bench / brokers CPU",
            format_number(report.cpu.bench_to_brokers_ratio),
        ),
        (
            "raft log on disk (largest node)",
            format_bytes(report.storage.raft_log_bytes_max_node as f64),
        ),
        (
            "snapshots taken / installed",
            format!(
                "{} / {}",
                report.storage.snapshots_taken, report.storage.snapshots_installed
            ),
        ),
        (
            "snapshot bytes uploaded",
            format_bytes(report.storage.snapshot_uploaded_bytes as f64),
        ),
    ];
    for (name, value) in rows {
        table.push(vec![name.to_string(), value]);
    }
    table
}

/// Produce latency percentiles over the measured window, in one row.
pub fn latency_percentiles(report: &RunReport) -> TextTable {
    let latency = &report.latency;
    let mut table = TextTable::new(&[
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms",
        "p99.99 ms",
        "max ms",
        "samples",
    ]);
    table.push(vec![
        format_number(latency.p50_ms),
        format_number(latency.p90_ms),
        format_number(latency.p99_ms),
        format_number(latency.p999_ms),
        format_number(latency.p9999_ms),
        format_number(latency.max_ms),
        latency.count.to_string(),
    ]);
    table
}

/// The faults in the order they were injected.
pub fn faults(report: &RunReport) -> TextTable {
    let mut table = TextTable::new(&[
        "planned s",
        "injected s",
        "ended s",
        "kind",
        "nodes",
        "description",
    ]);
    for fault in &report.faults {
        let nodes: Vec<String> = fault.nodes.iter().map(u32::to_string).collect();
        table.push(vec![
            format_seconds_from_ms(fault.planned_at_ms),
            format_seconds_from_ms(fault.injected_at_ms),
            fault
                .ended_at_ms
                .map(format_seconds_from_ms)
                .unwrap_or_default(),
            fault.kind.clone(),
            nodes.join(", "),
            fault.description.clone(),
        ]);
    }
    table
}

/// Gaps without an acknowledgement longer than `UNAVAILABILITY_REPORT_MS`.
pub fn unavailability_windows(report: &RunReport) -> TextTable {
    let mut table = TextTable::new(&["start s", "end s", "length ms"]);
    for window in &report.unavailability_windows {
        table.push(vec![
            format_seconds_from_ms(window.start_ms),
            format_seconds_from_ms(window.end_ms),
            (window.end_ms - window.start_ms).to_string(),
        ]);
    }
    table
}

/// How long each restarted or wiped node took to catch up.
pub fn recoveries(report: &RunReport) -> TextTable {
    let mut table = TextTable::new(&["node", "kind", "started s", "recovery ms"]);
    for recovery in &report.recoveries {
        table.push(vec![
            recovery.node.to_string(),
            recovery.kind.clone(),
            format_seconds_from_ms(recovery.started_at_ms),
            recovery
                .recovery_ms
                .map(|milliseconds| milliseconds.to_string())
                .unwrap_or_else(|| "never caught up".to_string()),
        ]);
    }
    table
}

/// Throughput and latency per second; a long run is grouped into at most `THROUGHPUT_ROWS_MAX`
/// rows of several seconds each, with their mean and minimum.
pub fn throughput_over_time(report: &RunReport) -> TextTable {
    if report.throughput.len() <= THROUGHPUT_ROWS_MAX {
        throughput_per_second(report)
    } else {
        throughput_grouped(report)
    }
}

fn throughput_per_second(report: &RunReport) -> TextTable {
    let mut table = TextTable::new(&[
        "second",
        "acknowledged",
        "consumed",
        "failed",
        "p50 ms",
        "p99 ms",
        "max ms",
    ]);
    for sample in &report.throughput {
        let latency = report
            .latency_over_time
            .iter()
            .find(|latency| latency.second == sample.second);
        let latency_cell = |value: fn(&LatencySample) -> f64| {
            latency
                .map(|latency| format_number(value(latency)))
                .unwrap_or_default()
        };
        table.push(vec![
            sample.second.to_string(),
            sample.acknowledged.to_string(),
            sample.consumed.to_string(),
            sample.failed.to_string(),
            latency_cell(|latency| latency.p50_ms),
            latency_cell(|latency| latency.p99_ms),
            latency_cell(|latency| latency.max_ms),
        ]);
    }
    table
}

fn throughput_grouped(report: &RunReport) -> TextTable {
    let mut table = TextTable::new(&[
        "seconds",
        "acknowledged/s mean",
        "acknowledged/s min",
        "consumed/s mean",
        "failed",
        "p99 ms max",
    ]);
    let group_size = report.throughput.len().div_ceil(THROUGHPUT_ROWS_MAX);
    for group in report.throughput.chunks(group_size) {
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            continue;
        };
        let seconds = group.len() as f64;
        let acknowledged: u64 = group.iter().map(|sample| sample.acknowledged).sum();
        let consumed: u64 = group.iter().map(|sample| sample.consumed).sum();
        let failed: u64 = group.iter().map(|sample| sample.failed).sum();
        let acknowledged_min = group
            .iter()
            .map(|sample| sample.acknowledged)
            .min()
            .unwrap_or(0);
        let p99_max = report
            .latency_over_time
            .iter()
            .filter(|latency| (first.second..=last.second).contains(&latency.second))
            .map(|latency| latency.p99_ms)
            .fold(None, |maximum: Option<f64>, value| {
                Some(maximum.map_or(value, |maximum| maximum.max(value)))
            });
        table.push(vec![
            format!("{}..{}", first.second, last.second),
            format_number(acknowledged as f64 / seconds),
            acknowledged_min.to_string(),
            format_number(consumed as f64 / seconds),
            failed.to_string(),
            p99_max.map(format_number).unwrap_or_default(),
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample::{sample_report, with_failed_check};

    #[test]
    fn checks_mark_failures_and_unjudged_checks() {
        let report = with_failed_check(sample_report(), "max_p99_latency");
        let table = checks(&report);
        let row = |name: &str| {
            table
                .rows()
                .iter()
                .find(|row| row.cells[0] == name)
                .expect("the check is listed")
        };
        assert_eq!(row("max_p99_latency").status, RowStatus::Failed);
        assert_eq!(row("max_p99_latency").cells[4], "FAIL");
        assert_eq!(row("lost").cells[4], "pass");
        assert_eq!(row("redelivered").cells[4], "reported");
        assert_eq!(row("redelivered").cells[2], "");
    }

    #[test]
    fn a_short_run_lists_every_second_with_its_latency() {
        let report = sample_report();
        let table = throughput_over_time(&report);
        assert_eq!(table.rows().len(), report.throughput.len());
        let second_20 = &table.rows()[25];
        assert_eq!(second_20.cells[..4], ["20", "300", "300", "12"]);
        assert_eq!(second_20.cells[5], "900");
        // The warmup has no latency samples.
        assert_eq!(table.rows()[0].cells[4], "");
    }

    #[test]
    fn a_long_run_is_grouped() {
        let mut report = sample_report();
        report.throughput = (0..1000)
            .map(|second| ThroughputSample {
                second,
                acknowledged: if second == 500 { 0 } else { 100 },
                consumed: 100,
                failed: 0,
            })
            .collect();
        let table = throughput_over_time(&report);
        assert!(table.rows().len() <= THROUGHPUT_ROWS_MAX);
        assert_eq!(table.rows()[0].cells[0], "0..11");
        let stalled = table
            .rows()
            .iter()
            .find(|row| row.cells[2] == "0")
            .expect("the stalled second shows as a minimum");
        assert_eq!(stalled.cells[0], "492..503");
    }
}
