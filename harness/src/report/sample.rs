//! A realistic run report for tests: a three-node leader-kill run of 60 seconds with a kill,
//! a restart, a timed partition and a latency fault, one unavailability window and one
//! recovery, and every check passing. Tests change the fields they are about.

use super::model::*;

/// The sample run, passing; `with_failed_check` makes a failing one from it.
pub fn sample_report() -> RunReport {
    let seconds = -5..70;
    let throughput = seconds
        .clone()
        .map(|second| {
            let acknowledged = if second == 20 { 300 } else { 4_000 };
            ThroughputSample {
                second,
                acknowledged,
                consumed: acknowledged,
                failed: if second == 20 { 12 } else { 0 },
            }
        })
        .collect();
    let latency_over_time = (0..60)
        .map(|second| {
            let slow = (35..45).contains(&second) || second == 20;
            LatencySample {
                second,
                p50_ms: if slow { 40.0 } else { 2.5 },
                p99_ms: if slow { 900.0 } else { 9.0 },
                max_ms: if slow { 1_400.0 } else { 20.0 },
            }
        })
        .collect();
    RunReport {
        format_version: FORMAT_VERSION,
        name: "leader-kill".to_string(),
        description: "Kill a partition leader under acks=all load.".to_string(),
        seed: 7,
        rerun_command: "chronik-bench run workloads/leader-kill.yaml --seed 7".to_string(),
        verdict: Verdict::Pass,
        verdict_reasons: Vec::new(),
        started_at: "2026-01-02T03:04:05Z".to_string(),
        wall_seconds: 93.4,
        versions: Versions {
            bench: "0.1.0".to_string(),
            broker: "chronik-server 0.1.0".to_string(),
            commit: Some("1c98f8f".to_string()),
        },
        machine: Machine {
            hostname: "bench-host".to_string(),
            cores: 2,
            memory_bytes: 8_000_000_000,
            kernel: "6.1.0".to_string(),
            fsync_write_bytes_per_second: 120_000_000.0,
        },
        cluster: ClusterSummary {
            runtime: "process".to_string(),
            nodes: 3,
            object_store: "local".to_string(),
            fault_proxy: "built-in".to_string(),
            topics: vec![TopicSummary {
                name: "events".to_string(),
                partitions: 6,
                replication_factor: 3,
            }],
        },
        workload: WorkloadSummary {
            warmup_ms: 5_000,
            duration_ms: 60_000,
            producers: 2,
            consumers: 2,
            offered_rate: 4_000,
            message_size_bytes: vec![512],
        },
        faults: vec![
            fault(
                20_000,
                20_012,
                None,
                "kill",
                "kill node 2 (leader of events/0)",
            ),
            fault(30_000, 30_020, None, "restart", "restart node 2"),
            fault(
                35_000,
                35_003,
                Some(45_003),
                "partition",
                "partition [1] | [2, 3]",
            ),
            fault(
                50_000,
                50_001,
                Some(55_001),
                "latency",
                "latency 200ms on 1->2",
            ),
        ],
        throughput,
        latency: LatencySummary {
            count: 240_000,
            p50_ms: 2.5,
            p90_ms: 5.0,
            p99_ms: 9.0,
            p999_ms: 400.0,
            p9999_ms: 1_200.0,
            max_ms: 1_400.0,
        },
        latency_over_time,
        counts: Counts {
            sent: 260_000,
            acknowledged: 259_988,
            failed: 12,
            consumed: 259_988,
            lost: 0,
            duplicates: 0,
            reordered: 0,
            inconsistent_offsets: 0,
            redelivered: 0,
            max_unavailability_ms: 1_300,
            throughput_per_second: 3_940.0,
            throughput_bytes_per_second: 3_940.0 * 512.0,
        },
        unavailability_windows: vec![Window {
            start_ms: 20_100,
            end_ms: 21_400,
        }],
        recoveries: vec![Recovery {
            node: 2,
            kind: "restart".to_string(),
            started_at_ms: 30_020,
            recovery_ms: Some(3_200),
        }],
        checks: vec![
            check("lost", 0.0, Some(0.0), "messages", Verdict::Correctness),
            check(
                "duplicates",
                0.0,
                Some(0.0),
                "messages",
                Verdict::Correctness,
            ),
            check(
                "reordered",
                0.0,
                Some(0.0),
                "messages",
                Verdict::Correctness,
            ),
            check(
                "max_unavailability",
                1_300.0,
                Some(2_000.0),
                "ms",
                Verdict::Liveness,
            ),
            check(
                "min_throughput",
                3_940.0,
                Some(1_000.0),
                "messages/s",
                Verdict::Performance,
            ),
            check(
                "max_p99_latency",
                9.0,
                Some(50.0),
                "ms",
                Verdict::Performance,
            ),
            check(
                "max_recovery",
                3_200.0,
                Some(10_000.0),
                "ms",
                Verdict::Liveness,
            ),
            check("redelivered", 0.0, None, "messages", Verdict::Pass),
        ],
        broker_logs: vec!["logs/node-1.log".to_string(), "logs/node-2.log".to_string()],
        cpu: CpuUse::default(),
        storage: StorageUse::default(),
        examples: Default::default(),
    }
}

/// The sample with its check `name` failed and the verdict that failure gives.
pub fn with_failed_check(mut report: RunReport, name: &str) -> RunReport {
    let check = report
        .checks
        .iter_mut()
        .find(|check| check.name == name)
        .expect("the sample has this check");
    check.passed = false;
    report.verdict = report.verdict.worst(check.verdict_on_failure);
    report
        .verdict_reasons
        .push(format!("check {name} failed: {}", check.value));
    report
}

fn fault(
    planned_at_ms: i64,
    injected_at_ms: i64,
    ended_at_ms: Option<i64>,
    kind: &str,
    description: &str,
) -> FaultRecord {
    FaultRecord {
        planned_at_ms,
        injected_at_ms,
        ended_at_ms,
        kind: kind.to_string(),
        description: description.to_string(),
        nodes: vec![2],
    }
}

fn check(
    name: &str,
    value: f64,
    limit: Option<f64>,
    unit: &str,
    verdict_on_failure: Verdict,
) -> CheckResult {
    CheckResult {
        name: name.to_string(),
        value,
        limit,
        unit: unit.to_string(),
        passed: true,
        verdict_on_failure,
    }
}
