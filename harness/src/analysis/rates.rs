//! Throughput: per-second counts of acknowledgements, consumed records and failures (by when
//! each happened; warmup seconds are negative), and the acknowledged rate over the measured
//! window.
//!
//! The samples cover every second from the earlier of the window's start and the first event
//! to the later of the window's last second and the last event (the drain after the window
//! shows as the seconds after it), with zeros where nothing happened.

use std::collections::BTreeMap;

use crate::report::ThroughputSample;
use crate::workload::Records;

const NANOSECONDS_PER_SECOND: i64 = 1_000_000_000;

/// The second an instant on the run's axis falls in (rounded towards negative infinity).
pub fn second_of(time_ns: i64) -> i64 {
    time_ns.div_euclid(NANOSECONDS_PER_SECOND)
}

pub fn samples(records: &Records, window_ns: i64) -> Vec<ThroughputSample> {
    let mut by_second: BTreeMap<i64, ThroughputSample> = BTreeMap::new();
    fn sample(
        by_second: &mut BTreeMap<i64, ThroughputSample>,
        time_ns: i64,
    ) -> &mut ThroughputSample {
        let second = second_of(time_ns);
        by_second
            .entry(second)
            .or_insert_with(|| empty_sample(second))
    }
    for acknowledgement in &records.acknowledgements {
        sample(&mut by_second, acknowledgement.acknowledged_ns).acknowledged += 1;
    }
    for record in &records.consumed {
        sample(&mut by_second, record.consumed_ns).consumed += 1;
    }
    for failure in &records.failures {
        sample(&mut by_second, failure.failed_ns).failed += 1;
    }
    let last_window_second = second_of((window_ns - 1).max(0));
    let first = by_second.keys().next().map_or(0, |first| (*first).min(0));
    let last = by_second
        .keys()
        .next_back()
        .map_or(last_window_second, |last| (*last).max(last_window_second));
    (first..=last)
        .map(|second| {
            by_second
                .get(&second)
                .cloned()
                .unwrap_or_else(|| empty_sample(second))
        })
        .collect()
}

fn empty_sample(second: i64) -> ThroughputSample {
    ThroughputSample {
        second,
        acknowledged: 0,
        consumed: 0,
        failed: 0,
    }
}

/// Acknowledgements received within the window `[0, window_ns)`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WindowRate {
    pub acknowledged: u64,
    pub messages_per_second: f64,
    pub bytes_per_second: f64,
}

pub fn window_rate(records: &Records, window_ns: i64) -> WindowRate {
    let mut rate = WindowRate::default();
    let mut bytes = 0u64;
    for acknowledgement in &records.acknowledgements {
        if (0..window_ns).contains(&acknowledgement.acknowledged_ns) {
            rate.acknowledged += 1;
            bytes += records
                .producers
                .get(acknowledgement.message.producer as usize)
                .map_or(0, |producer| u64::from(producer.message_size_bytes));
        }
    }
    if window_ns > 0 {
        let seconds = window_ns as f64 / NANOSECONDS_PER_SECOND as f64;
        rate.messages_per_second = rate.acknowledged as f64 / seconds;
        rate.bytes_per_second = bytes as f64 / seconds;
    }
    rate
}
