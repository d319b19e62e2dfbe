//! Judging a workload run: pure functions from what the producers, consumers and final read
//! recorded (`workload::Records`, `workload::FinalRead`) to what happened (`Findings`). No
//! I/O; the runner turns findings into checks and a verdict.
//!
//! Identities: a message is (producer id, sequence number); a position is (topic, partition,
//! offset). Times are on the run's axis: nanoseconds from the start of the measured window,
//! whose length is given; the warmup is negative and is not judged.
//!
//! What each finding means, exactly:
//!
//! - lost (`messages`): acknowledged, yet found neither by any consumer nor by the final read.
//! - undelivered (`messages`): acknowledged on a group's topic, never received by that group;
//!   per group and summed. Lost messages are undelivered too; a message the final read found
//!   but a group missed is only undelivered.
//! - duplicates (`messages`): messages that reads found at more than one position.
//! - reordered (`order`): in the final read, per partition in offset order, messages with a
//!   lower sequence number than an earlier message of the same producer.
//! - inconsistent offsets (`offsets`): positions that two of (acknowledgement, consumer read,
//!   final read) say hold different things.
//! - redelivered (`groups`): records a group received at a position it had already received.
//! - foreign: records that are not messages of this run, as consumed and as stored.
//! - failed but stored: failed deliveries whose message was stored anyway (not owed).
//! - unavailability (`availability`): gaps without an acknowledgement in the window, the
//!   window's edges included.
//! - throughput (`rates`): per-second counts, and acknowledgements received in the window per
//!   second of window (messages and bytes).
//! - latency (`latency`): intended send to acknowledgement, for messages intended in the window.
//!
//! Module map: `positions` (one topic numbering, positions), `messages`, `offsets`, `order`,
//! `groups`, `availability`, `rates`, `latency`; `fixtures` and `tests` build synthetic runs.
//!
//! Deliberately left out: checks, limits and the verdict (the runner compares findings with the
//! scenario's `checks`), recovery times (they come from the cluster, not from the records), and
//! any judgement of an incomplete final read beyond reporting it (`final_read_complete`).

mod availability;
mod groups;
mod latency;
mod messages;
mod offsets;
mod order;
mod positions;
mod rates;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::report::{Counts, LatencySample, LatencySummary, ThroughputSample, Window};
use crate::workload::{FinalRead, Records};

pub use availability::{gaps, Availability};

/// The most examples kept per finding.
pub const EXAMPLE_LIMIT: usize = 10;

/// Everything `analyse` found.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Findings {
    pub counts: Counts,
    /// Acknowledged messages intended in the window: the latency population
    /// (`latency.count` equals it).
    pub measured_acknowledged: u64,
    /// Acknowledgements received in the window: the throughput population.
    pub acknowledged_in_window: u64,
    /// Sent, neither acknowledged nor failed (zero after a clean `finish`).
    pub unresolved: u64,
    /// Summed over groups.
    pub undelivered: u64,
    pub groups: Vec<GroupFindings>,
    pub foreign_consumed: u64,
    pub foreign_stored: u64,
    pub failed_but_stored: u64,
    /// Failed deliveries by librdkafka error code.
    pub failures_by_kind: BTreeMap<String, u64>,
    /// Whether the final read reached every partition's high watermark.
    pub final_read_complete: bool,
    pub throughput: Vec<ThroughputSample>,
    pub latency: LatencySummary,
    pub latency_over_time: Vec<LatencySample>,
    pub unavailability_windows: Vec<Window>,
    pub examples: Examples,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GroupFindings {
    pub name: String,
    pub topic: String,
    pub consumed: u64,
    pub redelivered: u64,
    pub undelivered: u64,
}

/// A few instances of each finding, one line each, to say which messages and where.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Examples {
    pub lost: ExampleList,
    pub undelivered: ExampleList,
    pub duplicates: ExampleList,
    pub reordered: ExampleList,
    pub inconsistent_offsets: ExampleList,
}

/// At most `EXAMPLE_LIMIT` lines.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ExampleList(pub Vec<String>);

impl Examples {
    /// Each finding's name with its examples, the empty ones left out.
    pub fn named(&self) -> Vec<(&'static str, &[String])> {
        [
            ("lost", &self.lost),
            ("undelivered", &self.undelivered),
            ("duplicates", &self.duplicates),
            ("reordered", &self.reordered),
            ("inconsistent offsets", &self.inconsistent_offsets),
        ]
        .into_iter()
        .filter(|(_, list)| !list.0.is_empty())
        .map(|(name, list)| (name, list.0.as_slice()))
        .collect()
    }
}

impl ExampleList {
    /// Keeps the line `describe` makes while there is room (and only then makes it).
    pub fn note(&mut self, describe: impl FnOnce() -> String) {
        if self.0.len() < EXAMPLE_LIMIT {
            self.0.push(describe());
        }
    }
}

/// Judges one run. `measured_window` is the part of the workload's `duration` in which
/// producers send ([`crate::scenario::Workload::sending_window`]).
pub fn analyse(records: &Records, final_read: &FinalRead, measured_window: Duration) -> Findings {
    let window_ns = i64::try_from(measured_window.as_nanos()).unwrap_or(i64::MAX);
    let topics = positions::Topics::new(records, final_read);
    let mut examples = Examples::default();

    let messages = messages::find(records, final_read, &topics, &mut examples);
    let inconsistent_offsets = offsets::find(records, final_read, &topics, &mut examples);
    let reordered = order::find(final_read, &topics, &mut examples);
    let group_counts = groups::count(records, &topics);
    let availability = availability::gaps(
        records
            .acknowledgements
            .iter()
            .map(|acknowledgement| acknowledgement.acknowledged_ns),
        window_ns,
    );
    let window_rate = rates::window_rate(records, window_ns);
    let latency = latency::measure(&records.acknowledgements, window_ns);

    let sent: u64 = records.producers.iter().map(|producer| producer.sent).sum();
    let acknowledged = records.acknowledgements.len() as u64;
    let failed = records.failures.len() as u64;
    let mut failures_by_kind = BTreeMap::new();
    for failure in &records.failures {
        *failures_by_kind
            .entry(format!("{:?}", failure.error))
            .or_insert(0) += 1;
    }
    let groups: Vec<GroupFindings> = records
        .groups
        .iter()
        .enumerate()
        .map(|(index, group)| GroupFindings {
            name: group.name.clone(),
            topic: records.topics[group.topic as usize].clone(),
            consumed: group_counts[index].consumed,
            redelivered: group_counts[index].redelivered,
            undelivered: messages.undelivered_by_group[index],
        })
        .collect();

    Findings {
        counts: Counts {
            sent,
            acknowledged,
            failed,
            consumed: records.consumed.len() as u64,
            lost: messages.lost,
            duplicates: messages.duplicates,
            reordered,
            inconsistent_offsets,
            redelivered: groups.iter().map(|group| group.redelivered).sum(),
            max_unavailability_ms: availability.max_gap_ms,
            throughput_per_second: window_rate.messages_per_second,
            throughput_bytes_per_second: window_rate.bytes_per_second,
        },
        measured_acknowledged: latency.summary.count,
        acknowledged_in_window: window_rate.acknowledged,
        unresolved: sent.saturating_sub(acknowledged + failed),
        undelivered: groups.iter().map(|group| group.undelivered).sum(),
        groups,
        foreign_consumed: messages.foreign_consumed,
        foreign_stored: messages.foreign_stored,
        failed_but_stored: messages.failed_but_stored,
        failures_by_kind,
        final_read_complete: final_read.is_complete(),
        throughput: rates::samples(records, window_ns),
        latency: latency.summary,
        latency_over_time: latency.over_time,
        unavailability_windows: availability.windows,
        examples,
    }
}
