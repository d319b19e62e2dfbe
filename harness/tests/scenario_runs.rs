//! `chronik-bench run` end to end, as a user runs it: the bench binary launches real broker
//! processes (the debug build next to it) through its built-in fault proxy, and these tests
//! read the verdict from its exit code and the findings from `report.json`.
//!
//! The scenarios under `tests/scenarios/` exercise every fault kind and target against a
//! correct broker (the run must pass), and the broken-broker scenarios prove the bench does not
//! fool itself: a broker that acknowledges before commit, drops batches or serves uncommitted
//! data must get `correctness`, one that stalls must get `liveness`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chronik_bench::report::{RunReport, Verdict};

fn bench_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_chronik-bench"))
}

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios")
        .join(format!("{name}.yaml"))
}

/// Runs a scenario file; returns the process output and the report it wrote.
fn run(path: &Path, extra_args: &[&str]) -> (Output, Option<RunReport>, tempfile::TempDir) {
    let reports = tempfile::tempdir().expect("a temporary directory");
    let output = Command::new(bench_binary())
        .arg("run")
        .arg(path)
        .arg("--reports-dir")
        .arg(reports.path())
        .arg("--quiet")
        .args(extra_args)
        .output()
        .expect("chronik-bench runs");
    let report = std::fs::read_dir(reports.path())
        .expect("the reports folder")
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path().join("report.json"))
        .find(|path| path.exists())
        .map(|path| {
            serde_json::from_str(&std::fs::read_to_string(path).expect("report.json reads"))
                .expect("report.json parses")
        });
    (output, report, reports)
}

fn explain(output: &Output) -> String {
    format!(
        "exit {:?}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn expect_verdict(output: &Output, report: &RunReport, verdict: Verdict) {
    assert_eq!(report.verdict, verdict, "{}", explain(output));
    assert_eq!(
        output.status.code(),
        Some(verdict.exit_code()),
        "{}",
        explain(output)
    );
}

/// Runs a scenario from `tests/scenarios/`, checks its verdict and exit code, returns its report.
fn run_judged(name: &str, verdict: Verdict) -> RunReport {
    let (output, report, _reports) = run(&scenario(name), &[]);
    let report = report.unwrap_or_else(|| panic!("no report: {}", explain(&output)));
    expect_verdict(&output, &report, verdict);
    report
}

/// The kinds of the faults a run injected, in order.
fn fault_kinds(report: &RunReport) -> Vec<&str> {
    report
        .faults
        .iter()
        .map(|fault| fault.kind.as_str())
        .collect()
}

#[test]
fn a_bad_scenario_is_an_error_naming_the_key_and_line() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("bad.yaml");
    std::fs::write(
        &path,
        "name: bad\ncluster: { nodes: 3, colour: blue }\nworkload:\n  duration: 5s\n  producers:\n    - { topic: t, rate: 1, message_size: 100 }\ntopics: [{ name: t, partitions: 1, replication_factor: 1 }]\n",
    )
    .unwrap();
    let (output, report, _reports) = run(&path, &[]);
    assert!(report.is_none(), "a bad scenario launches nothing");
    assert_eq!(output.status.code(), Some(Verdict::Error.exit_code()));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bad.yaml:2:") && stderr.contains("colour"),
        "{stderr}"
    );
}

#[test]
fn every_process_fault_and_target_acts_and_a_correct_broker_passes() {
    let report = run_judged("process-faults", Verdict::Pass);
    assert_eq!(
        fault_kinds(&report),
        ["kill", "restart", "pause", "resume", "stop", "restart", "wipe"]
    );
    for fault in &report.faults {
        assert_eq!(fault.nodes.len(), 1, "{fault:?}");
    }
    let node = |index: usize| report.faults[index].nodes[0];
    assert_eq!(node(1), node(0), "`killed` names the node just killed");
    assert_eq!(node(3), node(2), "`paused` names the node just paused");
    assert_eq!(node(5), node(4), "`killed` names the node just stopped");
    assert_eq!(node(6), 3);
    assert_eq!(report.recoveries.len(), 3, "two restarts and a wipe");
    for recovery in &report.recoveries {
        assert!(recovery.recovery_ms.is_some(), "{recovery:?}");
    }
    assert!(report.counts.acknowledged > 4_000, "{:?}", report.counts);
}

#[test]
fn every_partition_mode_and_toxic_acts_and_a_correct_broker_passes() {
    let report = run_judged("network-faults", Verdict::Pass);
    assert_eq!(
        fault_kinds(&report),
        [
            "partition",
            "partition",
            "partition",
            "partition",
            "heal",
            "latency",
            "bandwidth",
            "timeout",
            "reset_peer",
            "slow_close",
            "slicer",
            "limit_data"
        ]
    );
    for fault in &report.faults {
        assert!(fault.ended_at_ms.is_some(), "{fault:?} never ended");
        if fault.kind != "heal" {
            assert!(!fault.nodes.is_empty(), "{fault:?} acted on no node");
        }
    }
    assert!(report.faults[2].description.contains("majorities ring"));
    assert!(report.faults[3].description.contains("bridge"));
    assert_eq!(
        report.faults[3].ended_at_ms,
        Some(report.faults[4].injected_at_ms),
        "heal ends the open bridge partition"
    );
}

/// The bench must not fool itself: each deliberately broken broker gets the verdict its
/// breakage deserves (the switch works in debug builds only, which these tests run).
fn expect_broken_broker_verdict(name: &str, verdict: Verdict, finding: &str) {
    let report = run_judged(name, verdict);
    assert!(
        report
            .verdict_reasons
            .iter()
            .any(|reason| reason.contains(finding)),
        "expected a reason about {finding}: {:?}",
        report.verdict_reasons
    );
}

#[test]
fn a_broker_acknowledging_before_commit_is_judged_correctness() {
    expect_broken_broker_verdict("broken-ack-before-commit", Verdict::Correctness, "lost");
}

#[test]
fn a_broker_dropping_batches_is_judged_correctness() {
    expect_broken_broker_verdict("broken-drop-batches", Verdict::Correctness, "lost");
}

#[test]
fn a_broker_serving_beyond_the_high_watermark_is_judged_correctness() {
    expect_broken_broker_verdict(
        "broken-fetch-beyond-high-watermark",
        Verdict::Correctness,
        "inconsistent_offsets",
    );
}

#[test]
fn a_stalling_broker_is_judged_liveness() {
    expect_broken_broker_verdict(
        "broken-stall",
        Verdict::Liveness,
        "no progress after healing",
    );
}

/// The broker processes whose command line mentions `marker`.
fn brokers_mentioning(marker: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(command_line) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let command_line = String::from_utf8_lossy(&command_line);
        if command_line.contains("chronik-server") && command_line.contains(marker) {
            pids.push(pid);
        }
    }
    pids
}

/// Starts the process-faults scenario in the background and waits until its three brokers run.
/// Returns the bench process, the text that marks this run's brokers, and the reports folder.
fn start_process_faults_run() -> (std::process::Child, String, tempfile::TempDir) {
    let reports = tempfile::tempdir().unwrap();
    let marker = reports.path().display().to_string();
    let child = Command::new(bench_binary())
        .arg("run")
        .arg(scenario("process-faults"))
        .arg("--reports-dir")
        .arg(reports.path())
        .arg("--quiet")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while brokers_mentioning(&marker).len() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the cluster never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    (child, marker, reports)
}

#[test]
fn ctrl_c_tears_the_cluster_down_and_keeps_the_data() {
    let (child, marker, _reports) = start_process_faults_run();
    std::thread::sleep(std::time::Duration::from_secs(2));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(Verdict::Error.exit_code()),
        "{stderr}"
    );
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(stderr.contains("data kept in"), "{stderr}");
    assert!(
        brokers_mentioning(&marker).is_empty(),
        "brokers left behind: {:?}",
        brokers_mentioning(&marker)
    );
}

#[test]
fn brokers_die_with_a_bench_that_is_killed_outright() {
    // A panic unwinds through the cluster's `Drop`; a SIGKILL runs no code at all, so this is
    // the harder case: the brokers must still go (PR_SET_PDEATHSIG).
    let (mut child, marker, _reports) = start_process_faults_run();
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !brokers_mentioning(&marker).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "brokers outlived the bench: {:?}",
            brokers_mentioning(&marker)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
