//! What changed between two runs of a scenario, and whether it regressed.
//!
//! A comparison lists every metric with its old and new value. A change counts when it is
//! worse than `threshold_percent` of the old value and, for times, at least
//! `MINIMUM_LATENCY_CHANGE_MS` (sub-millisecond latencies are noisy). Only some metrics gate:
//! throughput (messages and bytes per second) and p50/p99 latency; the others are marked when
//! they get worse but leave judging to the verdict, which gates when it got worse.

use super::model::{RunReport, Verdict};
use super::text::format_number;
use super::text_table::{RowStatus, TextTable};

/// Latency and time changes smaller than this are noise, whatever their percentage.
pub const MINIMUM_LATENCY_CHANGE_MS: f64 = 1.0;

/// Which way a metric improves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
    /// Neither way: shown for context.
    Neither,
}

/// How a metric moved, judged against the threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Movement {
    /// Within the threshold, or a metric without a better direction.
    Unchanged,
    Improved,
    /// Worse beyond the threshold, on a metric that does not gate.
    Worse,
    /// Worse beyond the threshold, on a metric that gates.
    Regressed,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MetricChange {
    /// With its unit: `throughput msg/s`, `p99 latency ms`.
    pub name: &'static str,
    pub old: f64,
    pub new: f64,
    pub better: Better,
    pub movement: Movement,
}

impl MetricChange {
    /// The change relative to the old value; `None` when the old value is zero.
    pub fn change_percent(&self) -> Option<f64> {
        if self.old == 0.0 {
            None
        } else {
            Some((self.new - self.old) / self.old.abs() * 100.0)
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub threshold_percent: f64,
    pub old_verdict: Verdict,
    pub new_verdict: Verdict,
    pub metrics: Vec<MetricChange>,
}

impl Comparison {
    /// The new verdict is more severe than the old one.
    pub fn verdict_got_worse(&self) -> bool {
        self.new_verdict != self.old_verdict
            && self.old_verdict.worst(self.new_verdict) == self.new_verdict
    }

    /// Whether anything that gates got worse: the verdict, throughput or p50/p99 latency.
    pub fn regressed(&self) -> bool {
        self.verdict_got_worse() || self.regressions().next().is_some()
    }

    /// The gating metrics that got worse beyond the threshold.
    pub fn regressions(&self) -> impl Iterator<Item = &MetricChange> {
        self.metrics
            .iter()
            .filter(|metric| metric.movement == Movement::Regressed)
    }

    /// One row per metric and one for the verdict: old, new, change, and a marker.
    pub fn to_table(&self) -> TextTable {
        let mut table = TextTable::new(&["metric", "old", "new", "change", ""]);
        for metric in &self.metrics {
            let change = match metric.change_percent() {
                _ if metric.new == metric.old => "0%".to_string(),
                Some(percent) => format!("{percent:+.1}%"),
                None => "from 0".to_string(),
            };
            let (marker, status) = match metric.movement {
                Movement::Unchanged => ("", RowStatus::Neutral),
                Movement::Improved => ("better", RowStatus::Passed),
                Movement::Worse => ("worse", RowStatus::Neutral),
                Movement::Regressed => ("REGRESSED", RowStatus::Failed),
            };
            table.push_with_status(
                vec![
                    metric.name.to_string(),
                    format_number(metric.old),
                    format_number(metric.new),
                    change,
                    marker.to_string(),
                ],
                status,
            );
        }
        let (marker, status) = if self.verdict_got_worse() {
            ("REGRESSED", RowStatus::Failed)
        } else if self.old_verdict.worst(self.new_verdict) == self.old_verdict
            && self.old_verdict != self.new_verdict
        {
            ("better", RowStatus::Passed)
        } else {
            ("", RowStatus::Neutral)
        };
        table.push_with_status(
            vec![
                "verdict".to_string(),
                self.old_verdict.name().to_string(),
                self.new_verdict.name().to_string(),
                String::new(),
                marker.to_string(),
            ],
            status,
        );
        table
    }
}

/// One metric of the comparison: where to read it and how to judge it.
struct MetricDefinition {
    name: &'static str,
    better: Better,
    /// A regression beyond the threshold fails the comparison.
    gates: bool,
    /// A latency: it gates only between steady runs (no faults, a fixed offered rate).
    is_latency: bool,
    /// Changes smaller than this, in the metric's unit, are ignored.
    minimum_change: f64,
    value: fn(&RunReport) -> f64,
}

const METRICS: &[MetricDefinition] = &[
    MetricDefinition {
        name: "throughput msg/s",
        better: Better::Higher,
        gates: true,
        minimum_change: 0.0,
        is_latency: false,
        value: |report| report.counts.throughput_per_second,
    },
    MetricDefinition {
        name: "throughput MB/s",
        better: Better::Higher,
        gates: true,
        minimum_change: 0.0,
        is_latency: false,
        value: |report| report.counts.throughput_bytes_per_second / 1_000_000.0,
    },
    MetricDefinition {
        name: "p50 latency ms",
        better: Better::Lower,
        gates: true,
        minimum_change: MINIMUM_LATENCY_CHANGE_MS,
        is_latency: true,
        value: |report| report.latency.p50_ms,
    },
    MetricDefinition {
        name: "p99 latency ms",
        better: Better::Lower,
        gates: true,
        minimum_change: MINIMUM_LATENCY_CHANGE_MS,
        is_latency: true,
        value: |report| report.latency.p99_ms,
    },
    MetricDefinition {
        name: "p99.9 latency ms",
        better: Better::Lower,
        gates: false,
        minimum_change: MINIMUM_LATENCY_CHANGE_MS,
        is_latency: true,
        value: |report| report.latency.p999_ms,
    },
    MetricDefinition {
        name: "max latency ms",
        better: Better::Lower,
        gates: false,
        minimum_change: MINIMUM_LATENCY_CHANGE_MS,
        is_latency: true,
        value: |report| report.latency.max_ms,
    },
    MetricDefinition {
        name: "max unavailability ms",
        better: Better::Lower,
        gates: false,
        minimum_change: MINIMUM_LATENCY_CHANGE_MS,
        is_latency: true,
        value: |report| report.counts.max_unavailability_ms as f64,
    },
    MetricDefinition {
        name: "recoveries",
        better: Better::Neither,
        gates: false,
        minimum_change: 0.0,
        is_latency: false,
        value: |report| report.recoveries.len() as f64,
    },
    MetricDefinition {
        name: "max recovery ms",
        better: Better::Lower,
        gates: false,
        minimum_change: MINIMUM_LATENCY_CHANGE_MS,
        is_latency: true,
        value: |report| {
            report
                .recoveries
                .iter()
                .filter_map(|recovery| recovery.recovery_ms)
                .max()
                .unwrap_or(0) as f64
        },
    },
    MetricDefinition {
        name: "recoveries never caught up",
        better: Better::Lower,
        gates: false,
        minimum_change: 0.0,
        is_latency: false,
        value: |report| {
            report
                .recoveries
                .iter()
                .filter(|recovery| recovery.recovery_ms.is_none())
                .count() as f64
        },
    },
    MetricDefinition {
        name: "acknowledged",
        better: Better::Neither,
        gates: false,
        minimum_change: 0.0,
        is_latency: false,
        value: |report| report.counts.acknowledged as f64,
    },
    MetricDefinition {
        name: "failed",
        better: Better::Lower,
        gates: false,
        minimum_change: 0.0,
        is_latency: false,
        value: |report| report.counts.failed as f64,
    },
    MetricDefinition {
        name: "lost",
        better: Better::Lower,
        gates: false,
        minimum_change: 0.0,
        is_latency: false,
        value: |report| report.counts.lost as f64,
    },
    MetricDefinition {
        name: "duplicates",
        better: Better::Lower,
        gates: false,
        minimum_change: 0.0,
        is_latency: false,
        value: |report| report.counts.duplicates as f64,
    },
    MetricDefinition {
        name: "reordered",
        better: Better::Lower,
        gates: false,
        minimum_change: 0.0,
        is_latency: false,
        value: |report| report.counts.reordered as f64,
    },
    MetricDefinition {
        name: "inconsistent offsets",
        better: Better::Lower,
        gates: false,
        minimum_change: 0.0,
        is_latency: false,
        value: |report| report.counts.inconsistent_offsets as f64,
    },
];

/// Compares a new run with an old one; `threshold_percent` is how much worse a metric may get
/// before it counts.
pub fn compare(old: &RunReport, new: &RunReport, threshold_percent: f64) -> Comparison {
    // Latency measures the broker only at a fixed offered rate without faults: under faults it
    // depends on when they landed, and an unthrottled producer's latency is its queue depth.
    let steady = |report: &RunReport| report.faults.is_empty() && report.workload.offered_rate > 0;
    let latency_gates = steady(old) && steady(new);
    let metrics = METRICS
        .iter()
        .map(|definition| {
            let old_value = (definition.value)(old);
            let new_value = (definition.value)(new);
            let gates = definition.gates && (latency_gates || !definition.is_latency);
            let movement = movement(definition, gates, old_value, new_value, threshold_percent);
            MetricChange {
                name: definition.name,
                old: old_value,
                new: new_value,
                better: definition.better,
                movement,
            }
        })
        .collect();
    Comparison {
        threshold_percent,
        old_verdict: old.verdict,
        new_verdict: new.verdict,
        metrics,
    }
}

fn movement(
    definition: &MetricDefinition,
    gates: bool,
    old: f64,
    new: f64,
    threshold_percent: f64,
) -> Movement {
    let worsening = match definition.better {
        Better::Higher => old - new,
        Better::Lower => new - old,
        Better::Neither => return Movement::Unchanged,
    };
    let beyond_threshold = |change: f64| {
        change > 0.0
            && change >= definition.minimum_change
            && (old == 0.0 || change / old.abs() * 100.0 > threshold_percent)
    };
    if beyond_threshold(worsening) {
        if gates {
            Movement::Regressed
        } else {
            Movement::Worse
        }
    } else if beyond_threshold(-worsening) {
        Movement::Improved
    } else {
        Movement::Unchanged
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample::sample_report;

    fn metric<'a>(comparison: &'a Comparison, name: &str) -> &'a MetricChange {
        comparison
            .metrics
            .iter()
            .find(|metric| metric.name == name)
            .expect("the metric is compared")
    }

    #[test]
    fn the_same_run_has_not_regressed() {
        let report = sample_report();
        let comparison = compare(&report, &report, 10.0);
        assert!(!comparison.regressed());
        assert!(comparison
            .metrics
            .iter()
            .all(|metric| metric.movement == Movement::Unchanged));
    }

    #[test]
    fn a_twenty_percent_throughput_drop_regresses() {
        let old = sample_report();
        let mut new = old.clone();
        new.counts.throughput_per_second *= 0.8;
        let comparison = compare(&old, &new, 10.0);
        assert!(comparison.regressed());
        let throughput = metric(&comparison, "throughput msg/s");
        assert_eq!(throughput.movement, Movement::Regressed);
        assert!((throughput.change_percent().expect("old is not zero") + 20.0).abs() < 1e-9);
        assert_eq!(comparison.regressions().count(), 1);
    }

    #[test]
    fn a_p99_rise_regresses_between_fault_free_runs() {
        let mut old = sample_report();
        old.faults.clear();
        let mut new = old.clone();
        new.latency.p99_ms = old.latency.p99_ms * 1.5;
        let comparison = compare(&old, &new, 10.0);
        assert!(comparison.regressed());
        assert_eq!(
            metric(&comparison, "p99 latency ms").movement,
            Movement::Regressed
        );
    }

    #[test]
    fn the_latency_of_unthrottled_producers_does_not_gate() {
        let mut old = sample_report();
        old.faults.clear();
        old.workload.offered_rate = 0;
        let mut new = old.clone();
        new.latency.p50_ms = old.latency.p50_ms * 2.0;
        assert!(!compare(&old, &new, 10.0).regressed());
    }

    #[test]
    fn latency_under_faults_is_reported_but_does_not_gate() {
        let old = sample_report();
        assert!(!old.faults.is_empty());
        let mut new = old.clone();
        new.latency.p99_ms = old.latency.p99_ms * 1.5;
        let comparison = compare(&old, &new, 10.0);
        assert!(!comparison.regressed());
        assert_eq!(
            metric(&comparison, "p99 latency ms").movement,
            Movement::Worse
        );
    }

    #[test]
    fn a_five_percent_change_does_not_regress() {
        let old = sample_report();
        let mut new = old.clone();
        new.counts.throughput_per_second *= 0.95;
        new.counts.throughput_bytes_per_second *= 0.95;
        new.latency.p99_ms *= 1.05;
        new.latency.max_ms *= 1.05;
        let comparison = compare(&old, &new, 10.0);
        assert!(!comparison.regressed());
    }

    #[test]
    fn a_sub_millisecond_latency_change_is_noise() {
        let mut old = sample_report();
        old.latency.p50_ms = 0.4;
        old.latency.p99_ms = 0.9;
        let mut new = old.clone();
        new.latency.p50_ms = 0.7;
        new.latency.p99_ms = 1.2;
        let comparison = compare(&old, &new, 10.0);
        assert!(!comparison.regressed());
        assert_eq!(
            metric(&comparison, "p50 latency ms").movement,
            Movement::Unchanged
        );
    }

    #[test]
    fn a_worse_verdict_regresses_and_a_better_one_does_not() {
        let passed = sample_report();
        let mut failed = passed.clone();
        failed.verdict = Verdict::Correctness;
        let comparison = compare(&passed, &failed, 10.0);
        assert!(comparison.verdict_got_worse());
        assert!(comparison.regressed());
        let verdict_row = comparison
            .to_table()
            .rows()
            .last()
            .expect("a verdict row")
            .clone();
        assert_eq!(
            verdict_row.cells,
            ["verdict", "pass", "correctness", "", "REGRESSED"]
        );
        assert!(!compare(&failed, &passed, 10.0).regressed());
    }

    #[test]
    fn non_gating_metrics_are_marked_but_do_not_regress() {
        let old = sample_report();
        let mut new = old.clone();
        new.counts.max_unavailability_ms *= 3;
        new.counts.lost = 4;
        let comparison = compare(&old, &new, 10.0);
        assert!(!comparison.regressed());
        assert_eq!(
            metric(&comparison, "max unavailability ms").movement,
            Movement::Worse
        );
        let lost = metric(&comparison, "lost");
        assert_eq!(lost.movement, Movement::Worse);
        assert_eq!(lost.change_percent(), None);
    }

    #[test]
    fn improvements_are_marked() {
        let old = sample_report();
        let mut new = old.clone();
        new.counts.throughput_per_second *= 1.5;
        let comparison = compare(&old, &new, 10.0);
        assert_eq!(
            metric(&comparison, "throughput msg/s").movement,
            Movement::Improved
        );
        assert!(!comparison.regressed());
    }
}
