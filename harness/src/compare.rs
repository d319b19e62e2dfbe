//! `chronik-bench compare OLD.json NEW.json`: what changed between two runs of a scenario, as a
//! table, and an exit status CI can gate on (see `EXIT_*`). The judging is
//! `report::comparison`; this module reads the files and prints.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use crate::report::text::format_number;
use crate::report::{compare, read_report, Comparison};

/// Nothing regressed beyond the threshold.
pub const EXIT_NO_REGRESSION: i32 = 0;
/// Throughput dropped, p50/p99 latency rose beyond the threshold, or the verdict got worse.
pub const EXIT_REGRESSION: i32 = 1;
/// A report could not be read, or the arguments are wrong.
pub const EXIT_UNREADABLE: i32 = 2;

#[derive(Clone, Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 when nothing regressed beyond the threshold; \
1 when throughput dropped, p50 or p99 latency rose (by more than the threshold and at least \
1 ms; latency gates only between steady runs, without faults and at a fixed offered rate: \
under faults it depends on when they landed, unthrottled it is queue depth) or the verdict \
got worse; 2 when a report cannot be read."
)]
pub struct CompareArgs {
    /// The baseline: a report.json, or the run folder holding one.
    pub old: PathBuf,
    /// The run to judge against the baseline.
    pub new: PathBuf,
    /// How much worse, in percent of the old value, a metric may get before it counts.
    #[arg(long, default_value_t = 10.0)]
    pub threshold_percent: f64,
}

/// Compares, prints the table, and returns the exit status.
pub fn run(args: &CompareArgs) -> i32 {
    if !(args.threshold_percent >= 0.0 && args.threshold_percent.is_finite()) {
        eprintln!(
            "error: --threshold-percent must be a number of percent, 0 or more (got {})",
            args.threshold_percent
        );
        return EXIT_UNREADABLE;
    }
    let reports = read_report(&args.old).and_then(|old| Ok((old, read_report(&args.new)?)));
    let (old, new) = match reports {
        Ok(reports) => reports,
        Err(error) => {
            eprintln!("error: {error:#}");
            return EXIT_UNREADABLE;
        }
    };
    let comparison = compare(&old, &new, args.threshold_percent);
    print!("{}", render(&comparison, &args.old, &args.new));
    if comparison.regressed() {
        EXIT_REGRESSION
    } else {
        EXIT_NO_REGRESSION
    }
}

/// The comparison as text: which files, the table, and a closing line on what regressed.
pub fn render(comparison: &Comparison, old_path: &Path, new_path: &Path) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "old: {}", old_path.display());
    let _ = writeln!(text, "new: {}", new_path.display());
    let _ = writeln!(text, "{}", comparison.to_table().to_terminal());
    let mut regressions: Vec<String> = comparison
        .regressions()
        .map(|metric| metric.name.to_string())
        .collect();
    if comparison.verdict_got_worse() {
        regressions.push(format!(
            "verdict {} -> {}",
            comparison.old_verdict.name(),
            comparison.new_verdict.name()
        ));
    }
    let threshold = format_number(comparison.threshold_percent);
    if regressions.is_empty() {
        let _ = writeln!(text, "no regression beyond {threshold}%");
    } else {
        let _ = writeln!(
            text,
            "REGRESSED (threshold {threshold}%): {}",
            regressions.join(", ")
        );
    }
    text
}
