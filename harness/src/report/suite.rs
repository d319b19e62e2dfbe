//! The one table a suite run ends with: a row per scenario with its verdict, the correctness
//! counts, the longest unavailability, throughput, p99 latency and wall time. Printed on the
//! terminal, and written as Markdown to `summary.md` in the suite's folder.

use std::fmt::Write;
use std::fs;
use std::path::Path;

use anyhow::Context;

use super::model::{RunReport, Verdict};
use super::text::{escape_markdown, format_number};
use super::text_table::{RowStatus, TextTable};

pub const SUMMARY_FILE_NAME: &str = "summary.md";

/// The summary as a table; `reports` pairs each scenario file with its run's report.
pub fn suite_summary(reports: &[(String, RunReport)]) -> TextTable {
    let mut table = TextTable::new(&[
        "scenario",
        "verdict",
        "acknowledged",
        "lost",
        "duplicates",
        "reordered",
        "max unavailability ms",
        "throughput msg/s",
        "p99 ms",
        "wall seconds",
    ]);
    for (scenario, report) in reports {
        let status = if report.verdict == Verdict::Pass {
            RowStatus::Passed
        } else {
            RowStatus::Failed
        };
        table.push_with_status(
            vec![
                scenario.clone(),
                report.verdict.name().to_string(),
                report.counts.acknowledged.to_string(),
                report.counts.lost.to_string(),
                report.counts.duplicates.to_string(),
                report.counts.reordered.to_string(),
                report.counts.max_unavailability_ms.to_string(),
                format_number(report.counts.throughput_per_second),
                format_number(report.latency.p99_ms),
                format_number(report.wall_seconds),
            ],
            status,
        );
    }
    table
}

/// The most severe verdict over the suite (`pass` for an empty suite).
pub fn suite_verdict(reports: &[(String, RunReport)]) -> Verdict {
    reports.iter().fold(Verdict::Pass, |verdict, (_, report)| {
        verdict.worst(report.verdict)
    })
}

/// The summary for a terminal.
pub fn suite_summary_table(reports: &[(String, RunReport)]) -> String {
    suite_summary(reports).to_terminal()
}

/// The summary as a Markdown page: the table, then the suite's verdict.
pub fn suite_summary_markdown(reports: &[(String, RunReport)]) -> String {
    let passed = reports
        .iter()
        .filter(|(_, report)| report.verdict == Verdict::Pass)
        .count();
    let mut page = String::from("# Suite summary\n\n");
    let _ = writeln!(page, "{}\n", suite_summary(reports).to_markdown());
    let _ = writeln!(
        page,
        "**Verdict: {}** ({passed} of {} scenarios passed)",
        suite_verdict(reports).name().to_uppercase(),
        reports.len()
    );
    let failures: Vec<&(String, RunReport)> = reports
        .iter()
        .filter(|(_, report)| report.verdict != Verdict::Pass)
        .collect();
    if !failures.is_empty() {
        page.push('\n');
        for (scenario, report) in failures {
            let reasons: Vec<String> = report
                .verdict_reasons
                .iter()
                .map(|reason| escape_markdown(reason))
                .collect();
            let _ = writeln!(
                page,
                "- {}: {}{}{}",
                escape_markdown(scenario),
                report.verdict.name(),
                if reasons.is_empty() { "" } else { ": " },
                reasons.join("; ")
            );
        }
    }
    page
}

/// Writes `summary.md` into `folder`, creating it if needed.
pub fn write_suite_summary(folder: &Path, reports: &[(String, RunReport)]) -> anyhow::Result<()> {
    fs::create_dir_all(folder)
        .with_context(|| format!("cannot create the suite folder {}", folder.display()))?;
    let path = folder.join(SUMMARY_FILE_NAME);
    fs::write(&path, suite_summary_markdown(reports))
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample::{sample_report, with_failed_check};

    fn suite() -> Vec<(String, RunReport)> {
        vec![
            ("workloads/leader-kill.yaml".to_string(), sample_report()),
            (
                "workloads/latency.yaml".to_string(),
                with_failed_check(sample_report(), "max_unavailability"),
            ),
        ]
    }

    #[test]
    fn one_row_per_scenario() {
        let text = suite_summary_table(&suite());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].contains("max unavailability ms"));
        assert!(lines[2].contains("workloads/leader-kill.yaml"));
        assert!(lines[2].contains("pass"));
        assert!(lines[3].contains("liveness"));
        assert!(lines[3].contains("3940"));
    }

    #[test]
    fn the_markdown_file_has_the_table_and_the_worst_verdict() {
        let folder = tempfile::tempdir().expect("a temporary folder");
        write_suite_summary(folder.path(), &suite()).expect("written");
        let markdown =
            fs::read_to_string(folder.path().join(SUMMARY_FILE_NAME)).expect("read back");
        assert!(markdown.contains("| scenario"), "{markdown}");
        assert!(markdown.contains("**Verdict: LIVENESS** (1 of 2 scenarios passed)"));
        assert!(markdown.contains("- workloads/latency.yaml: liveness: check max_unavailability"));
    }

    #[test]
    fn an_empty_suite_passes() {
        assert_eq!(suite_verdict(&[]), Verdict::Pass);
    }
}
