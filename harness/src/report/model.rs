//! What one scenario run found: the contents of `report.json`, from which `report.md` and
//! `report.html` are rendered and which `compare` reads back. Times are milliseconds from the
//! start of the measured window (negative during the warmup) unless a name says otherwise.
//! `FORMAT_VERSION` changes only when a field changes meaning; new fields are added with
//! `#[serde(default)]` so older reports still read.

use serde::{Deserialize, Serialize};

/// The version of this file's format.
pub const FORMAT_VERSION: u32 = 1;

/// How a run ended. Each verdict has its own exit code, so CI can tell them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every check held.
    Pass,
    /// Lost, duplicated or reordered messages, or two reads disagreeing on an offset.
    Correctness,
    /// Unavailability or recovery above the limit, or no progress after healing.
    Liveness,
    /// Throughput below or latency above the limit.
    Performance,
    /// A broker died when no fault killed it, or panicked.
    Crash,
    /// A bad scenario or a failure of the bench itself.
    Error,
}

impl Verdict {
    /// Every verdict, in the order of precedence: when several apply, the first one is the run's.
    pub const BY_PRECEDENCE: [Verdict; 6] = [
        Verdict::Error,
        Verdict::Crash,
        Verdict::Correctness,
        Verdict::Liveness,
        Verdict::Performance,
        Verdict::Pass,
    ];

    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Pass => 0,
            Verdict::Correctness => 10,
            Verdict::Liveness => 11,
            Verdict::Performance => 12,
            Verdict::Crash => 13,
            Verdict::Error => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Correctness => "correctness",
            Verdict::Liveness => "liveness",
            Verdict::Performance => "performance",
            Verdict::Crash => "crash",
            Verdict::Error => "error",
        }
    }

    /// The more severe of two verdicts.
    pub fn worst(self, other: Verdict) -> Verdict {
        let rank = |verdict: Verdict| {
            Self::BY_PRECEDENCE
                .iter()
                .position(|candidate| *candidate == verdict)
                .unwrap_or(0)
        };
        if rank(other) < rank(self) {
            other
        } else {
            self
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub format_version: u32,
    /// The scenario's name.
    pub name: String,
    pub description: String,
    /// The seed every random choice came from.
    pub seed: u64,
    /// The exact command that reruns this scenario with this seed.
    pub rerun_command: String,
    pub verdict: Verdict,
    /// Why the verdict is not `pass`, one line each (empty on a pass).
    pub verdict_reasons: Vec<String>,
    /// When the run started, RFC 3339 in UTC.
    pub started_at: String,
    /// The whole run, launch to teardown.
    pub wall_seconds: f64,
    pub versions: Versions,
    pub machine: Machine,
    pub cluster: ClusterSummary,
    pub workload: WorkloadSummary,
    /// Every fault as it was injected, in time order.
    pub faults: Vec<FaultRecord>,
    /// One sample per second of the measured window and the heal phase after it.
    pub throughput: Vec<ThroughputSample>,
    /// Produce latency over the measured window, from intended send to acknowledgement.
    pub latency: LatencySummary,
    /// Latency percentiles per second of the measured window.
    pub latency_over_time: Vec<LatencySample>,
    pub counts: Counts,
    /// Gaps without any acknowledgement longer than `UNAVAILABILITY_REPORT_MS`.
    pub unavailability_windows: Vec<Window>,
    /// One per restart or wipe.
    pub recoveries: Vec<Recovery>,
    /// Every check, judged or informational.
    pub checks: Vec<CheckResult>,
    /// Broker log files, relative to the report folder.
    pub broker_logs: Vec<String>,
    /// CPU the bench and the brokers used, so a reader can see which side was the limit.
    #[serde(default)]
    pub cpu: CpuUse,
    #[serde(default)]
    pub storage: StorageUse,
    /// A few of the lost, duplicated, reordered ... messages, to say which and where.
    #[serde(default)]
    pub examples: crate::analysis::Examples,
}

/// What the brokers' Raft logs and snapshots used, read from their `/metrics` at the end of
/// the run (nodes that are down by then are not counted).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StorageUse {
    /// The largest Raft log store of any node, on disk.
    pub raft_log_bytes_max_node: u64,
    pub snapshots_taken: u64,
    pub snapshots_installed: u64,
    pub snapshot_uploaded_bytes: u64,
}

/// CPU time (user + system) over the whole run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuUse {
    /// The bench process: its load generators, consumers and librdkafka threads.
    pub bench_seconds: f64,
    /// The broker processes alive at the end of the run (a killed process's CPU is not
    /// counted).
    pub brokers_seconds: f64,
    /// Bench CPU per acknowledged message against broker CPU per acknowledged message: below
    /// 0.5, the bench could drive at least twice what the brokers sustain on equal cores.
    pub bench_to_brokers_ratio: f64,
}

/// Gaps shorter than this are not listed as unavailability windows (they still count towards
/// the `max_unavailability` check through `Counts::max_unavailability_ms`).
pub const UNAVAILABILITY_REPORT_MS: u64 = 250;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Versions {
    pub bench: String,
    /// `chronik-server --version`.
    pub broker: String,
    /// The git commit the bench was built from, when known.
    pub commit: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub hostname: String,
    pub cores: u32,
    pub memory_bytes: u64,
    pub kernel: String,
    /// Sequential writes with an fdatasync after each 1 MiB, measured at start in the run's
    /// folder: the physical limit throughput reads against.
    pub fsync_write_bytes_per_second: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterSummary {
    /// `process` or `docker`.
    pub runtime: String,
    pub nodes: u32,
    /// `local`, `memory` or `s3://...`.
    pub object_store: String,
    /// The Toxiproxy API the network faults went through (`built-in` or its URL).
    pub fault_proxy: String,
    pub topics: Vec<TopicSummary>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopicSummary {
    pub name: String,
    pub partitions: u32,
    pub replication_factor: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkloadSummary {
    pub warmup_ms: u64,
    pub duration_ms: u64,
    /// Producer instances over all entries.
    pub producers: u32,
    /// Consumer instances over all entries.
    pub consumers: u32,
    /// Messages per second offered over all producers (0 when any producer runs unthrottled).
    pub offered_rate: u64,
    pub message_size_bytes: Vec<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultRecord {
    /// When it was planned, and when it took effect (after resolving targets and acting).
    pub planned_at_ms: i64,
    pub injected_at_ms: i64,
    /// When a fault with a `duration` (or an open one, at `heal`) ended.
    pub ended_at_ms: Option<i64>,
    /// `kill`, `partition`, `latency`, ...
    pub kind: String,
    /// What it did, resolved: `kill node 2 (leader of events/0)`, `partition [1] | [2, 3]`.
    pub description: String,
    /// The nodes it acted on.
    pub nodes: Vec<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThroughputSample {
    /// Seconds from the start of the measured window (negative during the warmup).
    pub second: i64,
    pub acknowledged: u64,
    pub consumed: u64,
    pub failed: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub p9999_ms: f64,
    pub max_ms: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencySample {
    pub second: i64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    /// Messages the producers were asked to send (measured window and warmup).
    pub sent: u64,
    pub acknowledged: u64,
    /// Deliveries that failed (timed out, or refused): not acknowledged, so not owed.
    pub failed: u64,
    /// Records the consumer groups received (re-deliveries included).
    pub consumed: u64,
    /// Acknowledged messages found neither by the consumer groups nor by the final read.
    pub lost: u64,
    /// Messages stored at more than one offset.
    pub duplicates: u64,
    /// Messages read after a later message of the same producer in the same partition.
    pub reordered: u64,
    /// Offsets for which two reads (acknowledgement, consumer, final read) name different
    /// messages.
    pub inconsistent_offsets: u64,
    /// The same offset delivered to a group again (after a rebalance): allowed, reported.
    pub redelivered: u64,
    /// The longest gap without an acknowledgement in the measured window.
    pub max_unavailability_ms: u64,
    /// Acknowledged messages per second over the measured window.
    pub throughput_per_second: f64,
    /// Acknowledged bytes per second over the measured window.
    pub throughput_bytes_per_second: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pub start_ms: i64,
    pub end_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recovery {
    pub node: u32,
    /// `restart` or `wipe`.
    pub kind: String,
    pub started_at_ms: i64,
    /// From the node's start until all its replicas caught up; `None` if they never did.
    pub recovery_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The scenario key: `lost`, `max_unavailability`, ...
    pub name: String,
    /// The measured value, in `unit`.
    pub value: f64,
    /// The limit, in `unit`; `None` for a check that is reported but not judged.
    pub limit: Option<f64>,
    /// `messages`, `ms`, `messages/s`.
    pub unit: String,
    pub passed: bool,
    /// The verdict a failure of this check gives.
    pub verdict_on_failure: Verdict,
}
