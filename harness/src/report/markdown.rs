//! `report.md`: the run report as Markdown tables, for reading in a terminal, a pull request or
//! a CI summary. Every piece of user text is escaped (see `text::escape_markdown`).

use std::fmt::Write;

use super::model::{RunReport, Verdict, UNAVAILABILITY_REPORT_MS};
use super::tables;
use super::text::escape_markdown;
use super::text_table::TextTable;

/// The whole `report.md`.
pub fn render_markdown(report: &RunReport) -> String {
    let mut page = String::new();
    let _ = writeln!(page, "# {}\n", escape_markdown(&report.name));
    let _ = writeln!(page, "**Verdict: {}**\n", verdict_headline(report));
    if !report.description.is_empty() {
        let _ = writeln!(page, "{}\n", escape_markdown(&report.description));
    }
    for reason in &report.verdict_reasons {
        let _ = writeln!(page, "- {}", escape_markdown(reason));
    }
    if !report.verdict_reasons.is_empty() {
        page.push('\n');
    }

    section(&mut page, "Run", &tables::run_facts(report));
    let _ = writeln!(
        page,
        "Rerun with:\n\n```sh\n{}\n```\n",
        report.rerun_command.replace("```", "")
    );
    section(&mut page, "Checks", &tables::checks(report));
    section(&mut page, "Counts", &tables::counts(report));
    section(
        &mut page,
        "Produce latency (from the intended send time)",
        &tables::latency_percentiles(report),
    );
    section(&mut page, "Faults", &tables::faults(report));
    section(
        &mut page,
        &format!("Unavailability windows (over {UNAVAILABILITY_REPORT_MS} ms)"),
        &tables::unavailability_windows(report),
    );
    section(&mut page, "Recoveries", &tables::recoveries(report));
    section(
        &mut page,
        "Throughput over time",
        &tables::throughput_over_time(report),
    );
    let examples = report.examples.named();
    if !examples.is_empty() {
        let _ = writeln!(page, "## Examples\n");
        for (finding, lines) in examples {
            for line in lines {
                let _ = writeln!(page, "- {finding}: {}", escape_markdown(line));
            }
        }
        page.push('\n');
    }
    if !report.broker_logs.is_empty() {
        let _ = writeln!(page, "## Broker logs\n");
        for log in &report.broker_logs {
            let _ = writeln!(page, "- {}", escape_markdown(log));
        }
    }
    page
}

/// `PASS` or `CORRECTNESS (exit code 10)`.
pub fn verdict_headline(report: &RunReport) -> String {
    let name = report.verdict.name().to_uppercase();
    if report.verdict == Verdict::Pass {
        name
    } else {
        format!("{name} (exit code {})", report.verdict.exit_code())
    }
}

fn section(page: &mut String, title: &str, table: &TextTable) {
    let _ = writeln!(page, "## {title}\n");
    if table.is_empty() {
        page.push_str("None.\n\n");
    } else {
        let _ = writeln!(page, "{}\n", table.to_markdown());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample::{sample_report, with_failed_check};

    #[test]
    fn shows_the_verdict_and_the_checks_table() {
        let markdown = render_markdown(&sample_report());
        assert!(markdown.contains("**Verdict: PASS**"), "{markdown}");
        assert!(markdown.contains("## Checks"), "{markdown}");
        let check_header = markdown
            .lines()
            .find(|line| line.starts_with("| check"))
            .expect("a checks table");
        for column in ["value", "limit", "unit", "result"] {
            assert!(check_header.contains(column), "{check_header}");
        }
        assert!(markdown
            .lines()
            .any(|line| line.starts_with("| max_unavailability") && line.contains("pass")));
        assert!(markdown.contains("chronik-bench run workloads/leader-kill.yaml --seed 7"));
        assert!(markdown.contains("120 MB/s"), "fsync bandwidth: {markdown}");
        assert!(markdown.contains("kill node 2 (leader of events/0)"));
    }

    #[test]
    fn a_failure_lists_its_reasons() {
        let markdown = render_markdown(&with_failed_check(sample_report(), "lost"));
        assert!(markdown.contains("**Verdict: CORRECTNESS (exit code 10)**"));
        assert!(markdown.contains("- check lost failed"));
        assert!(markdown
            .lines()
            .any(|line| line.starts_with("| lost") && line.contains("FAIL")));
    }

    #[test]
    fn examples_of_findings_are_listed_only_when_there_are_some() {
        let mut report = sample_report();
        assert!(!render_markdown(&report).contains("## Examples"));
        report
            .examples
            .duplicates
            .0
            .push("producer 1 sequence 7 at events/0 offsets 5 and 9".into());
        let markdown = render_markdown(&report);
        assert!(
            markdown.contains(
                "## Examples\n\n- duplicates: producer 1 sequence 7 at events/0 offsets 5 and 9\n"
            ),
            "{markdown}"
        );
    }

    #[test]
    fn user_text_cannot_inject_markup() {
        let mut report = sample_report();
        report.description = "<script>alert(1)</script> | x".to_string();
        let markdown = render_markdown(&report);
        let unescaped = markdown
            .match_indices('<')
            .filter(|(index, _)| !markdown[..*index].ends_with('\\'))
            .count();
        assert_eq!(unescaped, 0, "{markdown}");
        assert!(markdown.contains("\\<script>alert(1)\\</script> \\| x"));
    }

    #[test]
    fn empty_sections_say_none() {
        let mut report = sample_report();
        report.faults.clear();
        let markdown = render_markdown(&report);
        assert!(markdown.contains("## Faults\n\nNone."));
    }
}
