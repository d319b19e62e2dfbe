//! `chronik-bench suite DIR`: every scenario in a folder, one after the other, then one
//! summary table. The exit code is the worst verdict's.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::report::{self, Verdict};
use crate::runner::{self, RunOptions};

#[derive(Clone, Debug, clap::Args)]
pub struct SuiteArgs {
    /// A folder of scenario files (`*.yaml`, `*.yml`), run in name order.
    pub folder: PathBuf,
    /// Run only these scenarios (file names without extension, comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Skip these scenarios (file names without extension, comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub skip: Vec<String>,
    #[command(flatten)]
    pub options: RunOptions,
}

/// The scenario files of a folder that the filters select, in name order.
pub fn scenario_files(
    folder: &Path,
    only: &[String],
    skip: &[String],
) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .with_context(|| format!("reading {}", folder.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "yaml" || extension == "yml")
        })
        .filter(|path| {
            let stem = path
                .file_stem()
                .map(|stem| stem.to_string_lossy().to_string());
            let stem = stem.unwrap_or_default();
            (only.is_empty() || only.contains(&stem)) && !skip.contains(&stem)
        })
        .collect();
    files.sort();
    for name in only {
        let present = files.iter().any(|path| {
            path.file_stem()
                .is_some_and(|stem| stem.to_string_lossy() == *name)
        });
        if !present {
            anyhow::bail!("--only {name}: no {name}.yaml in {}", folder.display());
        }
    }
    Ok(files)
}

/// Runs the suite; returns the worst verdict.
pub fn run(args: &SuiteArgs) -> anyhow::Result<Verdict> {
    let files = scenario_files(&args.folder, &args.only, &args.skip)?;
    let mut reports = Vec::new();
    let mut worst = Verdict::Pass;
    for file in &files {
        if runner::interrupted().load(std::sync::atomic::Ordering::SeqCst) {
            worst = worst.worst(Verdict::Error);
            break;
        }
        eprintln!("== {}", file.display());
        let outcome = runner::run_file(file, &args.options);
        worst = worst.worst(outcome.verdict);
        if let Some(report) = outcome.report {
            reports.push((file.display().to_string(), report));
        } else {
            eprintln!("{}: no report ({})", file.display(), outcome.verdict.name());
        }
    }
    println!("{}", report::suite_summary_table(&reports));
    let stamp = reports
        .first()
        .map(|(_, report)| report.started_at.replace(':', ""))
        .unwrap_or_default();
    let folder = args.options.reports_dir.join(format!("suite-{stamp}"));
    std::fs::create_dir_all(&folder)?;
    report::write_suite_summary(&folder, &reports)?;
    eprintln!("summary: {}", folder.join("summary.md").display());
    Ok(worst)
}
