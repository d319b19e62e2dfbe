//! Produce latency: acknowledgement time minus intended send time, for the messages whose
//! intended send time lies in the measured window `[0, window_ns)`. Attributing a message to
//! when it was meant to go out (not when it was acknowledged) keeps a stall at the window's end
//! in the window.
//!
//! The summary comes from an HdrHistogram in microseconds (3 significant digits; values above
//! an hour are recorded as an hour); its maximum is exact, and no percentile exceeds it. The per-second samples are exact
//! nearest-rank percentiles of the messages intended in that second (seconds with none are
//! left out).

use hdrhistogram::Histogram;

use super::rates::second_of;
use crate::report::{LatencySample, LatencySummary};
use crate::workload::Acknowledgement;

/// The largest latency the histogram tells apart.
const HISTOGRAM_MAX_US: u64 = 3_600_000_000;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct LatencyFindings {
    pub summary: LatencySummary,
    pub over_time: Vec<LatencySample>,
}

pub fn measure(acknowledgements: &[Acknowledgement], window_ns: i64) -> LatencyFindings {
    let mut measured: Vec<(i64, i64)> = acknowledgements
        .iter()
        .filter(|acknowledgement| (0..window_ns).contains(&acknowledgement.intended_ns))
        .map(|acknowledgement| {
            let latency_ns = (acknowledgement.acknowledged_ns - acknowledgement.intended_ns).max(0);
            (second_of(acknowledgement.intended_ns), latency_ns)
        })
        .collect();
    if measured.is_empty() {
        return LatencyFindings::default();
    }
    let mut histogram =
        Histogram::<u64>::new_with_bounds(1, HISTOGRAM_MAX_US, 3).expect("valid histogram bounds");
    let mut max_ns = 0;
    for (_, latency_ns) in &measured {
        histogram.saturating_record(((*latency_ns as u64).div_ceil(1_000)).max(1));
        max_ns = max_ns.max(*latency_ns);
    }
    // A histogram value is the top of its bucket, which may lie above the exact maximum.
    let quantile_ms = |quantile: f64| {
        (histogram.value_at_quantile(quantile) as f64 / 1_000.0).min(milliseconds(max_ns))
    };
    let summary = LatencySummary {
        count: histogram.len(),
        p50_ms: quantile_ms(0.5),
        p90_ms: quantile_ms(0.9),
        p99_ms: quantile_ms(0.99),
        p999_ms: quantile_ms(0.999),
        p9999_ms: quantile_ms(0.9999),
        max_ms: milliseconds(max_ns),
    };
    measured.sort_unstable();
    let over_time = measured
        .chunk_by(|one, other| one.0 == other.0)
        .map(|second| {
            let latencies: Vec<i64> = second.iter().map(|(_, latency_ns)| *latency_ns).collect();
            LatencySample {
                second: second[0].0,
                p50_ms: milliseconds(nearest_rank(&latencies, 0.5)),
                p99_ms: milliseconds(nearest_rank(&latencies, 0.99)),
                max_ms: milliseconds(latencies[latencies.len() - 1]),
            }
        })
        .collect();
    LatencyFindings { summary, over_time }
}

fn milliseconds(nanoseconds: i64) -> f64 {
    nanoseconds as f64 / 1_000_000.0
}

/// The smallest value with at least `quantile` of `sorted` at or below it.
fn nearest_rank(sorted: &[i64], quantile: f64) -> i64 {
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<i64> = (1..=100).collect();
        assert_eq!(nearest_rank(&values, 0.5), 50);
        assert_eq!(nearest_rank(&values, 0.99), 99);
        assert_eq!(nearest_rank(&values, 1.0), 100);
        assert_eq!(nearest_rank(&[7], 0.5), 7);
    }
}
