//! A run report on disk: `report.json` (the model, pretty-printed), `report.md` and
//! `report.html` side by side in the run's folder, and reading `report.json` back.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use super::html::render_html;
use super::markdown::render_markdown;
use super::model::{RunReport, FORMAT_VERSION};

pub const JSON_FILE_NAME: &str = "report.json";
pub const MARKDOWN_FILE_NAME: &str = "report.md";
pub const HTML_FILE_NAME: &str = "report.html";

/// Writes `report.json`, `report.md` and `report.html` into `folder`, creating it if needed.
pub fn write_report(folder: &Path, report: &RunReport) -> anyhow::Result<()> {
    fs::create_dir_all(folder)
        .with_context(|| format!("cannot create the report folder {}", folder.display()))?;
    let mut json = serde_json::to_string_pretty(report).context("cannot serialize the report")?;
    json.push('\n');
    write_file(&folder.join(JSON_FILE_NAME), &json)?;
    write_file(&folder.join(MARKDOWN_FILE_NAME), &render_markdown(report))?;
    write_file(&folder.join(HTML_FILE_NAME), &render_html(report))?;
    Ok(())
}

fn write_file(path: &Path, contents: &str) -> anyhow::Result<()> {
    fs::write(path, contents).with_context(|| format!("cannot write {}", path.display()))
}

/// Reads a `report.json`; `path` may also be the run folder that holds one.
pub fn read_report(path: &Path) -> anyhow::Result<RunReport> {
    let path: PathBuf = if path.is_dir() {
        path.join(JSON_FILE_NAME)
    } else {
        path.to_path_buf()
    };
    let text =
        fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let report: RunReport = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid run report", path.display()))?;
    if report.format_version > FORMAT_VERSION {
        bail!(
            "{} has report format {}; this bench reads formats up to {FORMAT_VERSION}",
            path.display(),
            report.format_version
        );
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample::sample_report;

    #[test]
    fn writes_three_files_and_the_json_round_trips() {
        let folder = tempfile::tempdir().expect("a temporary folder");
        let run_folder = folder.path().join("runs").join("leader-kill");
        let report = sample_report();
        write_report(&run_folder, &report).expect("the report is written");
        for name in [JSON_FILE_NAME, MARKDOWN_FILE_NAME, HTML_FILE_NAME] {
            assert!(run_folder.join(name).is_file(), "{name} is missing");
        }
        let from_file = read_report(&run_folder.join(JSON_FILE_NAME)).expect("it reads back");
        assert_eq!(from_file, report);
        let from_folder = read_report(&run_folder).expect("the folder reads too");
        assert_eq!(from_folder, report);
    }

    #[test]
    fn bad_json_names_the_file() {
        let folder = tempfile::tempdir().expect("a temporary folder");
        let path = folder.path().join("broken.json");
        fs::write(&path, "{\"name\": ").expect("written");
        let error = read_report(&path).expect_err("not a report");
        let message = format!("{error:#}");
        assert!(message.contains("broken.json"), "{message}");
        assert!(message.contains("not a valid run report"), "{message}");
    }

    #[test]
    fn a_missing_file_names_the_file() {
        let error = read_report(Path::new("no/such/report.json")).expect_err("missing");
        assert!(format!("{error:#}").contains("no/such/report.json"));
    }

    #[test]
    fn a_newer_format_is_refused() {
        let folder = tempfile::tempdir().expect("a temporary folder");
        let mut report = sample_report();
        report.format_version = FORMAT_VERSION + 1;
        let path = folder.path().join(JSON_FILE_NAME);
        fs::write(&path, serde_json::to_string(&report).expect("serializes")).expect("written");
        let error = read_report(&path).expect_err("too new");
        assert!(format!("{error:#}").contains("report format"));
    }
}
