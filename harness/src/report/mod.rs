//! Run reports: the model (`report.json`) and its renderings.
//!
//! Module map: `model` (what a run found, shared with the runner), `files` (writing the three
//! files of a run and reading `report.json` back), `markdown` (`report.md`), `html`
//! (`report.html`) with `charts` (the report's two charts) drawn by `svg_chart` (a small
//! inline-SVG line chart), `tables` (the report's sections as tables of text, shared by both
//! renderings), `text_table` (that table and its Markdown and terminal forms), `text` (number
//! formats and escaping), `comparison` (two runs of a scenario, and whether the newer one
//! regressed) and `suite` (the summary table of a suite run).
//!
//! Deliberately left out: the renderings read only the report, never the run's folder or the
//! broker logs, so a `report.json` copied elsewhere renders the same.

pub mod charts;
pub mod comparison;
pub mod files;
pub mod html;
pub mod markdown;
pub mod model;
pub mod suite;
pub mod svg_chart;
pub mod tables;
pub mod text;
pub mod text_table;

#[cfg(test)]
pub mod sample;

pub use comparison::{compare, Comparison, MetricChange, Movement};
pub use files::{read_report, write_report};
pub use model::*;
pub use suite::{suite_summary_markdown, suite_summary_table, suite_verdict, write_suite_summary};
