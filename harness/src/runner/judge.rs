//! From what a run measured to its checks and verdict. Pure, so every rule is unit-tested.
//!
//! The correctness checks are always judged (default limit 0, and two reads disagreeing on an
//! offset is never allowed); the liveness and performance checks only when the scenario gives a
//! limit, but their values are always reported. A crash, or a cluster that did not converge
//! after healing, decides the verdict whatever the checks say.

use crate::report::{CheckResult, Counts, LatencySummary, Recovery, Verdict};
use crate::scenario::Checks;

/// What the run saw besides the counts.
pub struct Observations<'a> {
    pub counts: &'a Counts,
    pub latency: &'a LatencySummary,
    pub recoveries: &'a [Recovery],
    /// Brokers that died when no fault killed them, or panicked.
    pub crashes: &'a [String],
    /// What did not come back after healing (no leader, a replica behind, no write accepted).
    pub stuck_after_heal: &'a [String],
    /// Whether the final read reached every partition's high watermark. When it did not and
    /// the cluster is stuck, an acknowledged message not read back may be unreachable rather
    /// than lost: `lost` is reported but not judged, and the verdict is `liveness`.
    pub final_read_complete: bool,
}

pub struct Judgement {
    pub checks: Vec<CheckResult>,
    pub verdict: Verdict,
    pub reasons: Vec<String>,
}

pub fn judge(limits: &Checks, seen: &Observations<'_>) -> Judgement {
    let counts = seen.counts;
    let lost_unverifiable = !seen.final_read_complete && !seen.stuck_after_heal.is_empty();
    let mut checks = vec![
        at_most(
            "lost",
            counts.lost as f64,
            (!lost_unverifiable).then_some(limits.lost as f64),
            "messages",
            Verdict::Correctness,
        ),
        at_most(
            "duplicates",
            counts.duplicates as f64,
            Some(limits.duplicates as f64),
            "messages",
            Verdict::Correctness,
        ),
        at_most(
            "reordered",
            counts.reordered as f64,
            Some(limits.reordered as f64),
            "messages",
            Verdict::Correctness,
        ),
        at_most(
            "inconsistent_offsets",
            counts.inconsistent_offsets as f64,
            Some(0.0),
            "offsets",
            Verdict::Correctness,
        ),
        at_most(
            "max_unavailability",
            counts.max_unavailability_ms as f64,
            limits
                .max_unavailability
                .map(|limit| limit.as_millis() as f64),
            "ms",
            Verdict::Liveness,
        ),
    ];
    // A recovery that never finished counts as the longest possible (JSON has no infinity).
    let longest_recovery_ms = seen
        .recoveries
        .iter()
        .map(|recovery| recovery.recovery_ms.map_or(f64::MAX, |ms| ms as f64))
        .fold(0.0, f64::max);
    checks.push(at_most(
        "max_recovery",
        longest_recovery_ms,
        limits.max_recovery.map(|limit| limit.as_millis() as f64),
        "ms",
        Verdict::Liveness,
    ));
    let throughput = counts.throughput_per_second;
    checks.push(CheckResult {
        name: "min_throughput".to_string(),
        value: throughput,
        limit: limits.min_throughput.map(|limit| limit as f64),
        unit: "messages/s".to_string(),
        passed: limits
            .min_throughput
            .is_none_or(|limit| throughput >= limit as f64),
        verdict_on_failure: Verdict::Performance,
    });
    checks.push(at_most(
        "max_p99_latency",
        seen.latency.p99_ms,
        limits
            .max_p99_latency
            .map(|limit| limit.as_secs_f64() * 1000.0),
        "ms",
        Verdict::Performance,
    ));

    let mut verdict = Verdict::Pass;
    let mut reasons = Vec::new();
    for crash in seen.crashes {
        verdict = verdict.worst(Verdict::Crash);
        reasons.push(format!("crash: {crash}"));
    }
    for stuck in seen.stuck_after_heal {
        verdict = verdict.worst(Verdict::Liveness);
        reasons.push(format!("no progress after healing: {stuck}"));
    }
    if lost_unverifiable && counts.lost > 0 {
        reasons.push(format!(
            "lost: not judged: {} acknowledged messages could not be read back from a cluster \
             that made no progress",
            counts.lost
        ));
    }
    for check in checks.iter().filter(|check| !check.passed) {
        verdict = verdict.worst(check.verdict_on_failure);
        let limit = check.limit.unwrap_or(f64::NAN);
        let relation = if check.name.starts_with("min_") {
            "below"
        } else {
            "above"
        };
        reasons.push(format!(
            "{}: {}: {} {} {relation} the limit {} {}",
            check.verdict_on_failure.name(),
            check.name,
            show(check.value),
            check.unit,
            show(limit),
            check.unit
        ));
    }
    Judgement {
        checks,
        verdict,
        reasons,
    }
}

fn at_most(
    name: &str,
    value: f64,
    limit: Option<f64>,
    unit: &str,
    verdict: Verdict,
) -> CheckResult {
    CheckResult {
        name: name.to_string(),
        value,
        limit,
        unit: unit.to_string(),
        passed: limit.is_none_or(|limit| value <= limit),
        verdict_on_failure: verdict,
    }
}

fn show(value: f64) -> String {
    if value >= f64::MAX {
        "never".to_string()
    } else if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn judge_counts(limits: &Checks, counts: Counts, recoveries: &[Recovery]) -> Judgement {
        judge(
            limits,
            &Observations {
                counts: &counts,
                latency: &LatencySummary {
                    p99_ms: 40.0,
                    ..Default::default()
                },
                recoveries,
                crashes: &[],
                stuck_after_heal: &[],
                final_read_complete: true,
            },
        )
    }

    #[test]
    fn a_clean_run_passes_and_reports_every_check() {
        let judgement = judge_counts(&Checks::default(), Counts::default(), &[]);
        assert_eq!(judgement.verdict, Verdict::Pass);
        assert!(judgement.reasons.is_empty());
        assert_eq!(judgement.checks.len(), 8);
        let p99 = judgement
            .checks
            .iter()
            .find(|check| check.name == "max_p99_latency")
            .unwrap();
        assert_eq!((p99.value, p99.limit, p99.passed), (40.0, None, true));
    }

    #[test]
    fn one_lost_message_fails_on_correctness_even_without_a_checks_section() {
        let counts = Counts {
            lost: 1,
            ..Default::default()
        };
        let judgement = judge_counts(&Checks::default(), counts, &[]);
        assert_eq!(judgement.verdict, Verdict::Correctness);
        assert_eq!(
            judgement.reasons,
            ["correctness: lost: 1 messages above the limit 0 messages"]
        );
    }

    #[test]
    fn correctness_outranks_liveness_and_performance() {
        let limits = Checks {
            max_unavailability: Some(Duration::from_secs(1)),
            min_throughput: Some(1000),
            ..Default::default()
        };
        let counts = Counts {
            inconsistent_offsets: 2,
            max_unavailability_ms: 5000,
            throughput_per_second: 10.0,
            ..Default::default()
        };
        let judgement = judge_counts(&limits, counts, &[]);
        assert_eq!(judgement.verdict, Verdict::Correctness);
        assert_eq!(judgement.reasons.len(), 3);
    }

    #[test]
    fn a_recovery_that_never_finished_fails_max_recovery() {
        let limits = Checks {
            max_recovery: Some(Duration::from_secs(10)),
            ..Default::default()
        };
        let recoveries = [Recovery {
            node: 2,
            kind: "wipe".to_string(),
            started_at_ms: 1000,
            recovery_ms: None,
        }];
        let judgement = judge_counts(&limits, Counts::default(), &recoveries);
        assert_eq!(judgement.verdict, Verdict::Liveness);
        assert!(
            judgement.reasons[0].contains("never"),
            "{:?}",
            judgement.reasons
        );
    }

    #[test]
    fn messages_a_stuck_cluster_cannot_return_are_not_judged_lost() {
        let counts = Counts {
            lost: 2,
            ..Default::default()
        };
        let latency = LatencySummary::default();
        let stuck = ["no partition accepted a write".to_string()];
        let seen = |final_read_complete| Observations {
            counts: &counts,
            latency: &latency,
            recoveries: &[],
            crashes: &[],
            stuck_after_heal: &stuck,
            final_read_complete,
        };
        let unreadable = judge(&Checks::default(), &seen(false));
        assert_eq!(unreadable.verdict, Verdict::Liveness);
        assert!(unreadable
            .reasons
            .iter()
            .any(|reason| reason.contains("not judged")));
        let readable = judge(&Checks::default(), &seen(true));
        assert_eq!(
            readable.verdict,
            Verdict::Correctness,
            "read back completely: lost"
        );
    }

    #[test]
    fn a_crash_or_a_stuck_cluster_decides_the_verdict() {
        let counts = Counts::default();
        let latency = LatencySummary::default();
        let stuck = ["events/0 has no leader".to_string()];
        let liveness = judge(
            &Checks::default(),
            &Observations {
                counts: &counts,
                latency: &latency,
                recoveries: &[],
                crashes: &[],
                stuck_after_heal: &stuck,
                final_read_complete: true,
            },
        );
        assert_eq!(liveness.verdict, Verdict::Liveness);
        let crashes = ["node 2 exited (signal 6)".to_string()];
        let crash = judge(
            &Checks::default(),
            &Observations {
                counts: &counts,
                latency: &latency,
                recoveries: &[],
                crashes: &crashes,
                stuck_after_heal: &stuck,
                final_read_complete: true,
            },
        );
        assert_eq!(crash.verdict, Verdict::Crash);
    }
}
