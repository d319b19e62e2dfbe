//! Scenario format v1: the YAML files in `workloads/`, read into a typed, validated `Scenario`.
//!
//! The format is a contract with people who write scenarios: it may be extended, never broken,
//! so anything it does not define is an error, not a silent default. Every error names the key
//! (its path, `faults[2].latency`), its line and column, and what was expected:
//!
//! ```text
//! workloads/x.yaml:30:69: faults[2].latency: unknown key `latency` in a `timeout` fault: it
//!   belongs to latency faults; expected one of: at, kind, timeout, links, node, stream, ...
//! ```
//!
//! How a file is read:
//!
//! 1. `serde_yaml_ng` parses the text into a `Value` (YAML syntax errors come with its position;
//!    anchors, aliases and `<<` merge keys work as YAML defines them).
//! 2. `sections` and `fault_reader` walk that value by hand: each mapping lists the keys it takes
//!    and each field has a reader that knows its type, range and unit. A fault is read by first
//!    reading its `kind`, which decides the keys it may have; serde's derive would lose both the
//!    positions and the unknown keys inside such internally tagged data. Readers record a problem
//!    and go on, so one run reports every bad key and value (up to `MAX_PROBLEMS`).
//! 3. `validate` checks what spans fields: topics that producers and targets name, node ids
//!    against `cluster.nodes`, partitions against the topic, fault times against the window.
//!    It runs only once everything reads, so its problems come after reading ones are fixed.
//! 4. Problems carry key paths; `locate` turns a path into a line and column by re-reading the
//!    text with a probe that stops at that node (so a valid file pays nothing for positions).
//!
//! Module map: `model` (the typed scenario), `fault` (fault kinds and toxics), `target`
//! (targets, links, partitions), `duration` (`60s`, `500ms`, `100us`, `2m`), `reader` (typed
//! readers of one value or mapping), `sections` and `fault_reader` (the format's keys),
//! `validate` (across fields), `issues`, `path` and `locate` (what and where a problem is),
//! `error` (how it is reported), `tests` (the contract, case by case).
//!
//! Deliberately left out: running a scenario (cluster launch, fault injection, judging) lives
//! elsewhere; this module only says what a scenario means. There is no `version` key: format v1
//! is the only one, and a later format can add the key with v1 as its default.

pub mod duration;
mod error;
mod fault;
mod fault_reader;
mod issues;
mod locate;
mod model;
mod path;
mod reader;
mod sections;
mod target;
mod validate;

#[cfg(test)]
mod tests;

use std::path::Path;

pub use error::{Problem, ScenarioError, MAX_PROBLEMS};
pub use fault::{
    Action, Fault, FaultKind, Scope, Split, Stream, Toxic, ToxicFault, COMMON_KEYS, TOXIC_KEYS,
};
pub use model::{
    Acks, Checks, Cluster, Compression, Consumer, Keys, NodeId, ObjectStore, Producer, Runtime,
    Scenario, Topic, Workload, MAX_INSTANCES, MAX_MESSAGE_SIZE_BYTES, MAX_NODES, MAX_PARTITIONS,
    MIN_MESSAGE_SIZE_BYTES,
};
pub use target::{check_topic_name, Link, PartitionRef, Target};

/// Reads and validates the scenario in the file at `path`.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|error| ScenarioError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    parse(&text, &path.display().to_string())
}

/// Reads and validates a scenario from its text; `source_name` (a file name) starts each
/// problem's line in the error.
pub fn parse(text: &str, source_name: &str) -> Result<Scenario, ScenarioError> {
    let mut value: serde_yaml_ng::Value = serde_yaml_ng::from_str(text)
        .map_err(|error| ScenarioError::from_yaml(&error, source_name))?;
    value
        .apply_merge()
        .map_err(|error| ScenarioError::from_yaml(&error, source_name))?;
    let mut issues = issues::Issues::default();
    let scenario = sections::read_scenario(&mut issues, &value);
    if let Some(scenario) = &scenario {
        if issues.list.is_empty() {
            validate::validate(scenario, &mut issues);
        }
    }
    match scenario {
        Some(scenario) if issues.list.is_empty() => Ok(scenario),
        _ => {
            if issues.list.is_empty() {
                let message = "the scenario could not be read (no problem was recorded: a bug)";
                issues.at_value(&path::KeyPath::root(), message);
            }
            Err(ScenarioError::from_issues(text, source_name, issues.list))
        }
    }
}
