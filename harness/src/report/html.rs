//! `report.html`: one self-contained page (inline CSS and SVG, no script, font or other file)
//! with the verdict on top, the checks colored by outcome, the throughput and latency charts
//! with their fault windows, and the tables of `report.md`. All report text is escaped.

use std::fmt::Write;

use super::charts::{latency_chart, throughput_chart};
use super::markdown::verdict_headline;
use super::model::{RunReport, Verdict, UNAVAILABILITY_REPORT_MS};
use super::svg_chart;
use super::tables;
use super::text::escape_html;
use super::text_table::{RowStatus, TextTable};

const STYLE: &str = "
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1000px; color: #212529; padding: 0 1rem; }
h1 { margin-bottom: 0.25rem; }
h2 { margin-top: 2rem; border-bottom: 1px solid #dee2e6; padding-bottom: 0.25rem; }
.verdict { display: inline-block; font-size: 1.5rem; font-weight: bold; padding: 0.4rem 1rem; border-radius: 6px; color: #ffffff; }
.verdict-pass { background: #2b9348; }
.verdict-performance, .verdict-liveness { background: #e76f51; }
.verdict-correctness, .verdict-crash, .verdict-error { background: #c1121f; }
table { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #dee2e6; padding: 0.25rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #f1f3f5; }
tr.passed td { background: #d8f3dc; }
tr.failed td { background: #ffccd5; font-weight: bold; }
pre { background: #f8f9fa; padding: 0.5rem; overflow-x: auto; }
svg.chart { width: 100%; height: auto; }
.none { color: #6c757d; }
";

/// The whole `report.html`.
pub fn render_html(report: &RunReport) -> String {
    let mut page = String::new();
    let title = format!("{}: {}", report.name, report.verdict.name());
    let _ = writeln!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>",
        escape_html(&title)
    );
    let _ = writeln!(page, "<h1>{}</h1>", escape_html(&report.name));
    let _ = writeln!(
        page,
        "<p class=\"verdict verdict-{}\">{}</p>",
        report.verdict.name(),
        escape_html(&verdict_headline(report))
    );
    if !report.description.is_empty() {
        let _ = writeln!(page, "<p>{}</p>", escape_html(&report.description));
    }
    if report.verdict != Verdict::Pass || !report.verdict_reasons.is_empty() {
        page.push_str("<ul class=\"reasons\">\n");
        for reason in &report.verdict_reasons {
            let _ = writeln!(page, "<li>{}</li>", escape_html(reason));
        }
        page.push_str("</ul>\n");
    }

    section(&mut page, "Checks", &tables::checks(report));
    let _ = writeln!(
        page,
        "<h2>Throughput</h2>\n{}",
        svg_chart::render(&throughput_chart(report))
    );
    let _ = writeln!(
        page,
        "<h2>Latency</h2>\n{}",
        svg_chart::render(&latency_chart(report))
    );
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
    section(&mut page, "Run", &tables::run_facts(report));
    let _ = writeln!(
        page,
        "<p>Rerun with:</p>\n<pre><code>{}</code></pre>",
        escape_html(&report.rerun_command)
    );
    if !report.broker_logs.is_empty() {
        page.push_str("<h2>Broker logs</h2>\n<ul>\n");
        for log in &report.broker_logs {
            let log = escape_html(log);
            let _ = writeln!(page, "<li><a href=\"{log}\">{log}</a></li>");
        }
        page.push_str("</ul>\n");
    }
    section(
        &mut page,
        "Throughput over time",
        &tables::throughput_over_time(report),
    );
    page.push_str("</body>\n</html>\n");
    page
}

fn section(page: &mut String, title: &str, table: &TextTable) {
    let _ = writeln!(page, "<h2>{}</h2>", escape_html(title));
    page.push_str(&html_table(table));
}

/// A table with escaped cells; passed and failed rows get the classes `passed` and `failed`.
fn html_table(table: &TextTable) -> String {
    if table.is_empty() {
        return "<p class=\"none\">None.</p>\n".to_string();
    }
    let mut html = String::from("<table>\n");
    html.push_str("<thead><tr>");
    for title in table.header() {
        let _ = write!(html, "<th>{}</th>", escape_html(title));
    }
    html.push_str("</tr></thead>\n");
    html.push_str("<tbody>\n");
    for row in table.rows() {
        match row.status {
            RowStatus::Neutral => html.push_str("<tr>"),
            RowStatus::Passed => html.push_str("<tr class=\"passed\">"),
            RowStatus::Failed => html.push_str("<tr class=\"failed\">"),
        }
        for cell in &row.cells {
            let _ = write!(html, "<td>{}</td>", escape_html(cell));
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</tbody>\n</table>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample::{sample_report, with_failed_check};

    /// Checks that every element opened is closed in order; `meta` is the one void element
    /// the page uses, and `<tag .../>` closes itself.
    fn assert_balanced(html: &str) {
        let mut open: Vec<String> = Vec::new();
        let mut rest = html;
        while let Some(start) = rest.find('<') {
            let end = rest[start..].find('>').expect("every tag ends") + start;
            let tag = &rest[start + 1..end];
            rest = &rest[end + 1..];
            if tag.starts_with('!') || tag.ends_with('/') {
                continue;
            }
            let name: String = tag
                .trim_start_matches('/')
                .chars()
                .take_while(|character| character.is_ascii_alphanumeric())
                .collect();
            if name == "meta" {
                continue;
            }
            if tag.starts_with('/') {
                assert_eq!(open.pop().as_deref(), Some(name.as_str()), "at <{tag}>");
            } else {
                open.push(name);
            }
        }
        assert!(open.is_empty(), "left open: {open:?}");
    }

    #[test]
    fn the_page_is_balanced_and_self_contained() {
        let html = render_html(&sample_report());
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert_balanced(&html);
        assert!(!html.contains("<script"));
        assert!(!html.contains("<link"));
        assert!(!html.contains("http://") && !html.contains("https://"));
        assert!(!html.contains("NaN"));
    }

    #[test]
    fn has_one_chart_per_series_group_with_the_fault_window_shaded() {
        let html = render_html(&sample_report());
        assert_eq!(html.matches("<svg").count(), 2);
        assert_eq!(html.matches(r#"<g class="shading fault">"#).count(), 4);
        assert!(html.contains("<title>partition [1] | [2, 3] from 35.003 s to 45.003 s</title>"));
        assert_eq!(html.matches(r#"<g class="marker">"#).count(), 4);
        assert_eq!(
            html.matches(r#"<g class="shading unavailable">"#).count(),
            2
        );
    }

    #[test]
    fn user_text_is_escaped() {
        let mut report = sample_report();
        report.name = "a&b".to_string();
        report.description = "<script>alert('owned')</script>".to_string();
        report.faults[0].description = "<img src=x onerror=alert(1)>".to_string();
        let html = render_html(&report);
        assert!(!html.contains("<script"));
        assert!(!html.contains("<img"));
        assert!(html.contains("&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt;"));
        assert!(html.contains("<h1>a&amp;b</h1>"));
        assert_balanced(&html);
    }

    #[test]
    fn the_verdict_and_failed_checks_stand_out() {
        let html = render_html(&with_failed_check(sample_report(), "min_throughput"));
        assert!(html
            .contains("<p class=\"verdict verdict-performance\">PERFORMANCE (exit code 12)</p>"));
        assert!(html.contains("<tr class=\"failed\"><td>min_throughput</td>"));
        assert!(html.contains("<tr class=\"passed\"><td>lost</td>"));
        assert!(html.contains("<li>check min_throughput failed"));
    }
}
