//! The two charts of `report.html`, built from a run report: acknowledged and consumed
//! messages per second, and produce latency (p50, p99, max) per second on a logarithmic axis.
//! Both carry the same overlays: faults with an end are shaded from injection to end, faults
//! without one (kill, restart, ...) are vertical markers, unavailability windows are shaded in
//! red, and the warmup in grey. Labels name the fault's kind; its description is the tooltip.
//! A per-second sample is drawn at the middle of its second, and both charts span the same
//! seconds so they line up one above the other.

use super::model::{LatencySample, RunReport, ThroughputSample};
use super::svg_chart::{Chart, Marker, Series, Shading, ShadingKind, YScale};
use super::text::format_seconds_from_ms;

const ACKNOWLEDGED_COLOR: &str = "#1d3557";
const CONSUMED_COLOR: &str = "#2a9d8f";
const P50_COLOR: &str = "#2a9d8f";
const P99_COLOR: &str = "#1d3557";
const MAX_COLOR: &str = "#9d4edd";

pub fn throughput_chart(report: &RunReport) -> Chart {
    let series = |label: &str, color, value: fn(&ThroughputSample) -> u64| Series {
        label: label.to_string(),
        color,
        points: report
            .throughput
            .iter()
            .map(|sample| (middle_of(sample.second), value(sample) as f64))
            .collect(),
    };
    let (shadings, markers) = overlays(report);
    Chart {
        title: format!("{}: messages per second", report.name),
        y_axis_label: "messages/s".to_string(),
        y_scale: YScale::Linear,
        series: vec![
            series("acknowledged", ACKNOWLEDGED_COLOR, |sample| {
                sample.acknowledged
            }),
            series("consumed", CONSUMED_COLOR, |sample| sample.consumed),
        ],
        shadings,
        markers,
        time_range_seconds: shared_time_range(report),
    }
}

pub fn latency_chart(report: &RunReport) -> Chart {
    let series = |label: &str, color, value: fn(&LatencySample) -> f64| Series {
        label: label.to_string(),
        color,
        points: report
            .latency_over_time
            .iter()
            .map(|sample| (middle_of(sample.second), value(sample)))
            .collect(),
    };
    let (shadings, markers) = overlays(report);
    Chart {
        title: format!("{}: produce latency per second", report.name),
        y_axis_label: "ms (log scale)".to_string(),
        y_scale: YScale::Logarithmic,
        series: vec![
            series("p50", P50_COLOR, |sample| sample.p50_ms),
            series("p99", P99_COLOR, |sample| sample.p99_ms),
            series("max", MAX_COLOR, |sample| sample.max_ms),
        ],
        shadings,
        markers,
        time_range_seconds: shared_time_range(report),
    }
}

/// From the first sampled second to the end of the last, widened to include every overlay.
fn shared_time_range(report: &RunReport) -> Option<(f64, f64)> {
    let (shadings, markers) = overlays(report);
    let sampled_seconds = report
        .throughput
        .iter()
        .map(|sample| sample.second)
        .chain(report.latency_over_time.iter().map(|sample| sample.second))
        .flat_map(|second| [second as f64, second as f64 + 1.0]);
    let overlay_seconds = shadings
        .iter()
        .flat_map(|shading| [shading.start_seconds, shading.end_seconds])
        .chain(markers.iter().map(|marker| marker.at_seconds));
    let (start, end) = sampled_seconds
        .chain(overlay_seconds)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(start, end), time| {
            (start.min(time), end.max(time))
        });
    (start.is_finite() && end > start).then_some((start, end))
}

fn middle_of(second: i64) -> f64 {
    second as f64 + 0.5
}

fn seconds(milliseconds: i64) -> f64 {
    milliseconds as f64 / 1000.0
}

/// The shaded spans and markers both charts show.
fn overlays(report: &RunReport) -> (Vec<Shading>, Vec<Marker>) {
    let mut shadings = Vec::new();
    let mut markers = Vec::new();
    if report.workload.warmup_ms > 0 {
        shadings.push(Shading {
            start_seconds: -seconds(report.workload.warmup_ms as i64),
            end_seconds: 0.0,
            label: "warmup".to_string(),
            detail: format!("warmup, {} ms", report.workload.warmup_ms),
            kind: ShadingKind::Warmup,
        });
    }
    for fault in &report.faults {
        let label = fault.kind.clone();
        match fault.ended_at_ms {
            Some(ended_at_ms) if ended_at_ms > fault.injected_at_ms => shadings.push(Shading {
                start_seconds: seconds(fault.injected_at_ms),
                end_seconds: seconds(ended_at_ms),
                label,
                detail: format!(
                    "{} from {} s to {} s",
                    fault.description,
                    format_seconds_from_ms(fault.injected_at_ms),
                    format_seconds_from_ms(ended_at_ms)
                ),
                kind: ShadingKind::Fault,
            }),
            _ => markers.push(Marker {
                at_seconds: seconds(fault.injected_at_ms),
                label,
                detail: format!(
                    "{} at {} s",
                    fault.description,
                    format_seconds_from_ms(fault.injected_at_ms)
                ),
            }),
        }
    }
    for window in &report.unavailability_windows {
        let label = format!("unavailable {} ms", window.end_ms - window.start_ms);
        shadings.push(Shading {
            start_seconds: seconds(window.start_ms),
            end_seconds: seconds(window.end_ms),
            detail: format!(
                "{label}, from {} s to {} s",
                format_seconds_from_ms(window.start_ms),
                format_seconds_from_ms(window.end_ms)
            ),
            label,
            kind: ShadingKind::Unavailability,
        });
    }
    (shadings, markers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample::sample_report;

    #[test]
    fn faults_with_an_end_are_shaded_and_instant_ones_marked() {
        let chart = throughput_chart(&sample_report());
        let faults: Vec<&Shading> = chart
            .shadings
            .iter()
            .filter(|shading| shading.kind == ShadingKind::Fault)
            .collect();
        assert_eq!(faults.len(), 2);
        assert_eq!(
            (faults[0].start_seconds, faults[0].end_seconds),
            (35.003, 45.003)
        );
        assert_eq!(faults[0].label, "partition");
        assert_eq!(
            faults[0].detail,
            "partition [1] | [2, 3] from 35.003 s to 45.003 s"
        );
        let marked: Vec<(&str, &str)> = chart
            .markers
            .iter()
            .map(|marker| (marker.label.as_str(), marker.detail.as_str()))
            .collect();
        assert_eq!(
            marked,
            [
                ("kill", "kill node 2 (leader of events/0) at 20.012 s"),
                ("restart", "restart node 2 at 30.020 s")
            ]
        );
        assert_eq!(chart.time_range_seconds, Some((-5.0, 70.0)));
        assert!(chart
            .shadings
            .iter()
            .any(|shading| shading.kind == ShadingKind::Unavailability
                && shading.label == "unavailable 1300 ms"));
        assert!(chart
            .shadings
            .iter()
            .any(|shading| shading.kind == ShadingKind::Warmup && shading.start_seconds == -5.0));
    }

    #[test]
    fn latency_is_drawn_on_a_logarithmic_axis() {
        let chart = latency_chart(&sample_report());
        assert_eq!(chart.y_scale, YScale::Logarithmic);
        let labels: Vec<&str> = chart
            .series
            .iter()
            .map(|series| series.label.as_str())
            .collect();
        assert_eq!(labels, ["p50", "p99", "max"]);
        assert_eq!(chart.series[1].points[20], (20.5, 900.0));
        assert_eq!(
            chart.time_range_seconds,
            throughput_chart(&sample_report()).time_range_seconds
        );
    }
}
