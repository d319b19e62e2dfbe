//! The docker runtime end to end, as a user runs it: `chronik-bench run --runtime docker` on
//! scenarios of the chaos suite, with the image built from the debug build next to the bench.
//! Each run must pass with nothing lost, record `docker` as its runtime, and leave no
//! container, network or volume behind; a Ctrl-C'd run and a bench killed outright must not
//! leave any either.
//!
//! Where no Docker engine answers, each test prints "docker not available: skipped" and
//! returns, unless `CHRONIK_REQUIRE_DOCKER=1` (CI sets it), which turns the skip into a failure.
//! The tests share one engine: `.config/nextest.toml` runs them one at a time.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use chronik_bench::cluster::docker::cleanup::{
    self, resources_labelled, Resources, BENCH_PID_LABEL,
};
use chronik_bench::cluster::docker::engine::DockerEngine;
use chronik_bench::report::{RunReport, Verdict};

fn bench_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_chronik-bench"))
}

fn workload(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../workloads")
        .join(format!("{name}.yaml"))
}

fn test_scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios")
        .join(format!("{name}.yaml"))
}

/// The engine, or `None` (after saying so) when there is none and CI does not require one.
fn docker_or_skip() -> Option<DockerEngine> {
    match DockerEngine::connect() {
        Ok(engine) => Some(engine),
        Err(error) => {
            if std::env::var("CHRONIK_REQUIRE_DOCKER").as_deref() == Ok("1") {
                panic!("CHRONIK_REQUIRE_DOCKER=1, but {error:#}");
            }
            println!("docker not available: skipped ({error:#})");
            None
        }
    }
}

fn explain(output: &Output) -> String {
    format!(
        "exit {:?}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn run_command(scenario: &Path, reports: &Path) -> Command {
    let mut command = Command::new(bench_binary());
    command
        .arg("run")
        .arg(scenario)
        .arg("--runtime")
        .arg("docker")
        .arg("--reports-dir")
        .arg(reports)
        .arg("--quiet")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// What a bench process left in Docker (by its pid label).
fn left_by(engine: &DockerEngine, pid: u32) -> Resources {
    resources_labelled(engine, &format!("{BENCH_PID_LABEL}={pid}")).expect("listing resources")
}

/// Runs a scenario on docker; checks it passed with nothing lost and left nothing behind.
fn run_passing(engine: &DockerEngine, scenario: &Path) -> RunReport {
    let reports = tempfile::tempdir().expect("a temporary directory");
    let child = run_command(scenario, reports.path())
        .spawn()
        .expect("chronik-bench starts");
    let pid = child.id();
    let output = child.wait_with_output().expect("chronik-bench runs");
    let report: RunReport = std::fs::read_dir(reports.path())
        .expect("the reports folder")
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path().join("report.json"))
        .find(|path| path.exists())
        .map(|path| {
            serde_json::from_str(&std::fs::read_to_string(path).expect("report.json reads"))
                .expect("report.json parses")
        })
        .unwrap_or_else(|| panic!("no report: {}", explain(&output)));
    if report.verdict != Verdict::Pass {
        // Keep the report, the logs and the nodes' data to look at.
        let kept = reports.keep();
        panic!(
            "verdict {:?}; the run's folder is kept in {}\n{}",
            report.verdict,
            kept.display(),
            explain(&output)
        );
    }
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    assert_eq!(report.cluster.runtime, "docker");
    assert!(
        report.cluster.fault_proxy.contains("container"),
        "{}",
        report.cluster.fault_proxy
    );
    assert_eq!(report.counts.lost, 0);
    assert!(report.counts.acknowledged > 0, "nothing was acknowledged");
    let left = left_by(engine, pid);
    assert!(left.is_empty(), "left behind: {left:?}");
    report
}

fn fault_kinds(report: &RunReport) -> Vec<&str> {
    report
        .faults
        .iter()
        .map(|fault| fault.kind.as_str())
        .collect()
}

#[test]
fn the_image_is_built_from_the_local_build_once_and_then_reused() {
    let Some(engine) = docker_or_skip() else {
        return;
    };
    let image = || {
        let output = Command::new(bench_binary())
            .arg("image")
            .output()
            .expect("chronik-bench image runs");
        assert!(output.status.success(), "{}", explain(&output));
        (
            String::from_utf8_lossy(&output.stdout).trim().to_string(),
            String::from_utf8_lossy(&output.stderr).to_string(),
        )
    };
    let (tag, _) = image();
    assert!(
        tag.starts_with(&format!("chronik:{}-", env!("CARGO_PKG_VERSION"))),
        "{tag}"
    );
    let (again, said) = image();
    assert_eq!(again, tag);
    assert!(said.contains("already present"), "{said}");
    engine
        .block_on(engine.docker().inspect_image(&tag))
        .expect("the image is in the engine");
}

#[test]
fn leader_kill_on_docker_loses_nothing_and_leaves_nothing() {
    let Some(engine) = docker_or_skip() else {
        return;
    };
    let report = run_passing(&engine, &workload("leader-kill"));
    assert_eq!(fault_kinds(&report), ["kill", "restart"]);
}

#[test]
fn isolate_leader_on_docker_loses_nothing_and_leaves_nothing() {
    let Some(engine) = docker_or_skip() else {
        return;
    };
    let report = run_passing(&engine, &workload("isolate-leader"));
    assert_eq!(fault_kinds(&report), ["partition"]);
}

#[test]
fn wipe_and_recover_on_docker_catches_up_and_leaves_nothing() {
    let Some(engine) = docker_or_skip() else {
        return;
    };
    let report = run_passing(&engine, &workload("wipe-and-recover"));
    assert_eq!(fault_kinds(&report), ["wipe"]);
    let recovery = report
        .recoveries
        .iter()
        .find(|recovery| recovery.kind == "wipe")
        .expect("the wiped node's recovery is reported");
    assert!(recovery.recovery_ms.is_some(), "{recovery:?}");
}

#[test]
fn pause_resume_stop_and_every_target_act_on_containers() {
    let Some(engine) = docker_or_skip() else {
        return;
    };
    let report = run_passing(&engine, &test_scenario("process-faults"));
    assert_eq!(
        fault_kinds(&report),
        ["kill", "restart", "pause", "resume", "stop", "restart", "wipe"]
    );
    // The resume acted on the node the pause did.
    assert_eq!(report.faults[3].nodes, report.faults[2].nodes);
}

/// Starts a docker run in the background and waits until its nodes' containers exist.
fn start_run_in_background(engine: &DockerEngine) -> (Child, tempfile::TempDir) {
    let reports = tempfile::tempdir().expect("a temporary directory");
    let child = run_command(&workload("leader-kill"), reports.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chronik-bench starts");
    let deadline = Instant::now() + Duration::from_secs(120);
    // The proxy and three nodes.
    while left_by(engine, child.id()).containers.len() < 4 {
        assert!(
            Instant::now() < deadline,
            "the run's containers never appeared"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    (child, reports)
}

#[test]
fn ctrl_c_removes_every_container_network_and_volume_of_the_run() {
    let Some(engine) = docker_or_skip() else {
        return;
    };
    let (mut child, _reports) = start_run_in_background(&engine);
    let pid = child.id();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGINT) };
    let status = child.wait().expect("the bench exits");
    assert_eq!(status.code(), Some(Verdict::Error.exit_code()));
    let left = left_by(&engine, pid);
    assert!(left.is_empty(), "left behind after Ctrl-C: {left:?}");
}

#[test]
fn what_a_killed_bench_left_is_removed_by_the_next_run() {
    let Some(engine) = docker_or_skip() else {
        return;
    };
    let (mut child, _reports) = start_run_in_background(&engine);
    let pid = child.id();
    child.kill().expect("SIGKILL the bench");
    child.wait().expect("the bench is reaped");
    let left = left_by(&engine, pid);
    assert!(
        !left.containers.is_empty() && !left.networks.is_empty() && !left.volumes.is_empty(),
        "a bench killed outright cannot clean up: {left:?}"
    );
    let removed = cleanup::remove_leftovers(&engine).expect("removing leftovers");
    assert!(!removed.is_empty());
    let left = left_by(&engine, pid);
    assert!(left.is_empty(), "still there: {left:?}");
}
