//! Why a scenario was refused: every problem, each with its key path, line and column.
//!
//! One problem per line, compiler style, so editors and CI logs link to the spot:
//!
//! ```text
//! workloads/leader-kill.yaml:23:5: faults[2].latency: unknown key `latency` in a `timeout` fault; ...
//! ```

use std::fmt;
use std::path::PathBuf;

use super::issues::Issue;
use super::locate::locate;

/// At most this many problems are reported (each is located by re-reading the text).
pub const MAX_PROBLEMS: usize = 20;

/// One thing wrong with a scenario.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The key path, like `faults[2].latency` or `workload.producers[0].config["linger.ms"]`;
    /// empty for the document as a whole and for YAML syntax errors.
    pub path: String,
    /// One-based line of the key (for an unknown or misplaced key) or of the value (for a bad
    /// value); of the enclosing mapping for a missing key.
    pub line: usize,
    /// One-based column, as `line`.
    pub column: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

#[derive(Debug)]
pub enum ScenarioError {
    /// The file could not be read.
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The text is not a valid scenario.
    Invalid {
        /// The file name (or whatever `parse` was given) the problems refer to.
        source_name: String,
        /// The problems in the order found (reading problems first, then cross-field ones),
        /// at most `MAX_PROBLEMS`.
        problems: Vec<Problem>,
        /// How many more problems there were.
        omitted: usize,
    },
}

impl ScenarioError {
    /// The problems (none for a read error).
    pub fn problems(&self) -> &[Problem] {
        match self {
            Self::Read { .. } => &[],
            Self::Invalid { problems, .. } => problems,
        }
    }

    /// Locates each issue in `text`.
    pub(crate) fn from_issues(text: &str, source_name: &str, issues: Vec<Issue>) -> Self {
        let omitted = issues.len().saturating_sub(MAX_PROBLEMS);
        let problems = issues
            .into_iter()
            .take(MAX_PROBLEMS)
            .map(|issue| {
                let position = locate(text, &issue.path, issue.anchor);
                Problem {
                    path: issue.path.to_string(),
                    line: position.line,
                    column: position.column,
                    message: issue.message,
                }
            })
            .collect();
        Self::Invalid {
            source_name: source_name.to_string(),
            problems,
            omitted,
        }
    }

    /// A text that is not YAML (or not one YAML document).
    pub(crate) fn from_yaml(error: &serde_yaml_ng::Error, source_name: &str) -> Self {
        let (line, column) = error
            .location()
            .map_or((1, 1), |location| (location.line(), location.column()));
        let text = error.to_string();
        let suffix = format!(" at line {line} column {column}");
        let message = text.replacen(&suffix, "", 1);
        Self::Invalid {
            source_name: source_name.to_string(),
            problems: vec![Problem {
                path: String::new(),
                line,
                column,
                message: if message.contains("more than one document") {
                    "a scenario is one YAML document; this text has several (`---`)".to_string()
                } else {
                    format!("not valid YAML: {message}")
                },
            }],
            omitted: 0,
        }
    }
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, error } => {
                write!(
                    formatter,
                    "{}: cannot read the scenario: {error}",
                    path.display()
                )
            }
            Self::Invalid {
                source_name,
                problems,
                omitted,
            } => {
                for (index, problem) in problems.iter().enumerate() {
                    if index > 0 {
                        formatter.write_str("\n")?;
                    }
                    let Problem {
                        path,
                        line,
                        column,
                        message,
                    } = problem;
                    write!(formatter, "{source_name}:{line}:{column}: ")?;
                    if !path.is_empty() {
                        write!(formatter, "{path}: ")?;
                    }
                    formatter.write_str(message)?;
                }
                if *omitted > 0 {
                    write!(formatter, "\n{source_name}: and {omitted} more problems")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ScenarioError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { error, .. } => Some(error),
            Self::Invalid { .. } => None,
        }
    }
}
