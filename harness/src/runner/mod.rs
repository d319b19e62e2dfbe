//! `chronik-bench run`: one scenario, end to end.
//!
//! Phases, in order:
//! 1. **setup**: read and validate the scenario (an error names the key and line), pick the
//!    seed, make the report folder, measure the disk, start the fault proxy and the cluster
//!    (every link through the proxy), create the topics and wait for their leaders;
//! 2. **warmup** and **measured window**: the workload runs; faults fire at their times (from
//!    the window's start); network faults end when their duration is over; a broker exiting on
//!    its own is a crash; restarted and wiped nodes are timed until they have caught up;
//! 3. **heal**: every link restored, paused nodes resumed, down nodes started; the producers
//!    stop and flush; the cluster must converge (every partition led, every replica caught up,
//!    every partition accepting a write) within `CONVERGE_TIMEOUT_MS`;
//! 4. **drain**: the consumer groups read what they are owed, then one final read of every
//!    partition from its start;
//! 5. **judge**: the analysis, the checks and the verdict; the report and the brokers' logs are
//!    written, the cluster is torn down, and the data is kept (its path printed) unless the run
//!    passed.
//!
//! A Ctrl-C ends the run at the next step with the verdict `error`, tearing everything down
//! the same way; a panic tears the processes down through `Drop`.

pub mod judge;
pub mod machine;
mod measures;
pub mod probe;
pub mod progress;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::analysis;
use crate::broker_process::find_broker_binary;
use crate::cluster::docker::{self, DockerCluster, DockerClusterSpec};
use crate::cluster::process::{ProcessCluster, ProcessClusterSpec};
use crate::cluster::{raft_view, Cluster};
use crate::faults::FaultInjector;
use crate::network::FaultProxy;
use crate::report::{
    self, ClusterSummary, Recovery, RunReport, TopicSummary, Verdict, WorkloadSummary,
};
use crate::scenario::{self, ObjectStore, Runtime, Scenario};
use crate::throughput::create_topic;
use crate::workload::{self, RunClock};
use measures::{bench_cpu_seconds, cpu_use, panics_in_logs, storage_use};
use progress::{Progress, Status};

/// How long the cluster may take to converge after healing.
pub const CONVERGE_TIMEOUT_MS: u64 = 60_000;
/// How long the consumer groups may take to read what they are owed after converging.
pub const DRAIN_TIMEOUT_MS: u64 = 60_000;
/// How long the final read of every partition may take.
pub const FINAL_READ_TIMEOUT_MS: u64 = 60_000;
/// The drain and final-read time given to a cluster that did not converge after healing.
pub const STUCK_PATIENCE_MS: u64 = 10_000;
/// How often the main loop wakes during the measured window.
const STEP_MS: u64 = 50;
/// How often restarted nodes are checked for having caught up.
const RECOVERY_POLL_MS: u64 = 250;

/// How `run` is invoked, beyond the scenario file.
#[derive(Clone, Debug, clap::Args)]
pub struct RunArgs {
    /// The scenario file (YAML, format v1).
    pub scenario: PathBuf,
    #[command(flatten)]
    pub options: RunOptions,
}

#[derive(Clone, Debug, Default, clap::Args)]
pub struct RunOptions {
    /// Overrides the scenario's seed (for a rerun).
    #[arg(long)]
    pub seed: Option<u64>,
    /// The chronik-server binary (default: next to chronik-bench).
    #[arg(long, env = "CHRONIK_SERVER_BIN")]
    pub broker_bin: Option<PathBuf>,
    /// A real Toxiproxy server's API (default: the built-in one).
    #[arg(long)]
    pub toxiproxy_url: Option<String>,
    /// Where run folders go.
    #[arg(long, default_value = "reports/runs")]
    pub reports_dir: PathBuf,
    /// No progress display.
    #[arg(long)]
    pub quiet: bool,
    /// Extra broker environment, `KEY=VALUE`, repeatable; applied after the scenario's
    /// `cluster.env` (to compare one scenario with a setting on and off, side by side).
    #[arg(long = "broker-env", value_parser = parse_broker_env)]
    pub broker_env: Vec<(String, String)>,
    /// Runs the cluster as `process`es or `docker` containers, whatever the scenario's
    /// `cluster.runtime` says.
    #[arg(long, value_parser = parse_runtime)]
    pub runtime: Option<Runtime>,
}

fn parse_runtime(text: &str) -> Result<Runtime, String> {
    match text {
        "process" => Ok(Runtime::Process),
        "docker" => Ok(Runtime::Docker),
        _ => Err(format!("'{text}' is not a runtime: process or docker")),
    }
}

fn parse_broker_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("'{text}' is not KEY=VALUE")),
    }
}

/// A finished run: its report and where it was written.
pub struct RunOutcome {
    pub report: Option<RunReport>,
    pub folder: Option<PathBuf>,
    pub verdict: Verdict,
}

/// Set by Ctrl-C; every phase checks it.
pub fn interrupted() -> &'static AtomicBool {
    static INTERRUPTED: AtomicBool = AtomicBool::new(false);
    &INTERRUPTED
}

/// Installs the Ctrl-C handler once.
pub fn handle_interrupts() {
    let _ = ctrlc::set_handler(|| {
        if interrupted().swap(true, Ordering::SeqCst) {
            eprintln!("interrupted twice: exiting now");
            std::process::exit(Verdict::Error.exit_code());
        }
        eprintln!("interrupted: tearing down");
    });
}

/// Runs the scenario in `path`; prints the seed, the rerun command and the verdict.
pub fn run_file(path: &Path, options: &RunOptions) -> RunOutcome {
    let scenario = match scenario::load(path) {
        Ok(scenario) => scenario,
        Err(error) => {
            eprintln!("{error}");
            return RunOutcome {
                report: None,
                folder: None,
                verdict: Verdict::Error,
            };
        }
    };
    let seed = options
        .seed
        .or(scenario.seed)
        .unwrap_or_else(rand::random::<u64>);
    let rerun_command = rerun_command(path, seed, options);
    eprintln!("scenario {} seed {seed}", scenario.name);
    eprintln!("rerun: {rerun_command}");
    let outcome = match Run::new(&scenario, seed, rerun_command, options) {
        Ok(mut run) => {
            let report = run.execute();
            let folder = run.folder.clone();
            let verdict = report.verdict;
            if let Err(error) = report::write_report(&folder, &report) {
                eprintln!("writing the report into {}: {error:#}", folder.display());
            }
            RunOutcome {
                report: Some(report),
                folder: Some(folder),
                verdict,
            }
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            RunOutcome {
                report: None,
                folder: None,
                verdict: Verdict::Error,
            }
        }
    };
    if let Some(report) = &outcome.report {
        for reason in &report.verdict_reasons {
            eprintln!("  {reason}");
        }
    }
    if let Some(folder) = &outcome.folder {
        eprintln!("report: {}", folder.join("report.md").display());
    }
    eprintln!(
        "verdict: {} (exit {})",
        outcome.verdict.name(),
        outcome.verdict.exit_code()
    );
    outcome
}

fn rerun_command(path: &Path, seed: u64, options: &RunOptions) -> String {
    let mut command = format!("chronik-bench run {} --seed {seed}", path.display());
    if let Some(binary) = &options.broker_bin {
        command.push_str(&format!(" --broker-bin {}", binary.display()));
    }
    if let Some(url) = &options.toxiproxy_url {
        command.push_str(&format!(" --toxiproxy-url {url}"));
    }
    for (key, value) in &options.broker_env {
        command.push_str(&format!(" --broker-env {key}={value}"));
    }
    if let Some(runtime) = options.runtime {
        command.push_str(&format!(" --runtime {}", runtime.name()));
    }
    command
}

/// One run in progress.
struct Run<'a> {
    scenario: &'a Scenario,
    seed: u64,
    rerun_command: String,
    options: &'a RunOptions,
    folder: PathBuf,
    started: Instant,
    started_at: String,
    /// The bench's CPU seconds when the run began (a suite runs many in one process).
    bench_cpu_at_start: f64,
}

/// What the phases hand to the report.
#[derive(Default)]
struct Gathered {
    faults: Option<FaultInjector>,
    crashes: Vec<String>,
    stuck_after_heal: Vec<String>,
    recoveries: Vec<Recovery>,
    findings: Option<analysis::Findings>,
    broker_logs: Vec<String>,
    fault_proxy: String,
    /// The runtime that ran the cluster, as the cluster names itself.
    runtime: &'static str,
    broker_version: Option<report::Versions>,
    brokers_cpu_seconds: f64,
    storage: report::StorageUse,
    error: Option<String>,
}

impl<'a> Run<'a> {
    fn new(
        scenario: &'a Scenario,
        seed: u64,
        rerun_command: String,
        options: &'a RunOptions,
    ) -> anyhow::Result<Self> {
        let now = time::OffsetDateTime::now_utc();
        let stamp = format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            now.year(),
            now.month() as u8,
            now.day(),
            now.hour(),
            now.minute(),
            now.second()
        );
        let folder = options
            .reports_dir
            .join(format!("{stamp}-{}", scenario.name));
        std::fs::create_dir_all(&folder)
            .with_context(|| format!("creating {}", folder.display()))?;
        Ok(Self {
            scenario,
            seed,
            rerun_command,
            options,
            folder,
            started: Instant::now(),
            bench_cpu_at_start: bench_cpu_seconds(),
            started_at: now
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        })
    }

    fn execute(&mut self) -> RunReport {
        let machine = machine::describe_machine(&self.folder);
        let mut gathered = Gathered::default();
        let mut cluster: Option<Box<dyn Cluster>> = None;
        if let Err(error) = self.phases(&mut gathered, &mut cluster) {
            gathered.error = Some(format!("{error:#}"));
        }
        if let Some(cluster) = cluster.as_mut() {
            gathered.brokers_cpu_seconds = cluster.cpu_seconds();
            gathered.storage = storage_use(cluster.as_ref());
            gathered.crashes.extend(
                cluster
                    .unexpected_exits()
                    .into_iter()
                    .map(|(node, status)| format!("node {node} exited ({status})")),
            );
            match cluster.collect_logs(&self.folder) {
                Ok(names) => gathered.broker_logs = names,
                Err(error) => eprintln!("collecting broker logs: {error:#}"),
            }
            gathered
                .crashes
                .extend(panics_in_logs(&self.folder, &gathered.broker_logs));
        }
        let report = self.report(machine, gathered);
        if let Some(mut cluster) = cluster {
            let keep = report.verdict != Verdict::Pass;
            if let Some(kept) = cluster.teardown(keep) {
                eprintln!("data kept in {}", kept.display());
            }
        }
        report
    }

    fn phases(
        &mut self,
        gathered: &mut Gathered,
        cluster_slot: &mut Option<Box<dyn Cluster>>,
    ) -> anyhow::Result<()> {
        let scenario = self.scenario;
        let binary = find_broker_binary(self.options.broker_bin.as_deref())?;
        gathered.broker_version = Some(machine::versions(&binary));
        let mut progress = Progress::new(self.options.quiet);
        let runtime = self.options.runtime.unwrap_or(scenario.cluster.runtime);
        progress.note(&format!(
            "setup: starting {} nodes ({} runtime)",
            scenario.cluster.nodes,
            runtime.name()
        ));
        let directory = self.folder.join("cluster");
        let (started, proxy): (Box<dyn Cluster>, FaultProxy) = match runtime {
            Runtime::Process => {
                let proxy = match &self.options.toxiproxy_url {
                    Some(url) => FaultProxy::external(url)?,
                    None => FaultProxy::builtin()?,
                };
                let object_store = directory.join("object-store").display().to_string();
                let spec = ProcessClusterSpec {
                    binary: &binary,
                    nodes: scenario.cluster.nodes,
                    directory: &directory,
                    env: self.broker_env(&object_store),
                    extra_args: self.broker_args(),
                };
                (Box::new(ProcessCluster::start(spec, &proxy)?), proxy)
            }
            Runtime::Docker => {
                if let Some(url) = &self.options.toxiproxy_url {
                    bail!(
                        "--toxiproxy-url {url}: the docker runtime runs its own fault proxy as a \
                         container on the run's network; leave --toxiproxy-url out"
                    );
                }
                let spec = DockerClusterSpec {
                    broker_bin: Some(&binary),
                    nodes: scenario.cluster.nodes,
                    directory: &directory,
                    env: self.broker_env(docker::wiring::OBJECT_STORE_PATH),
                    extra_args: self.broker_args(),
                    note: &mut |text| progress.note(text),
                };
                let (cluster, proxy) = DockerCluster::start(spec)?;
                (Box::new(cluster), proxy)
            }
        };
        gathered.fault_proxy = proxy.description();
        let cluster: &mut Box<dyn Cluster> = cluster_slot.insert(started);
        gathered.runtime = cluster.runtime();
        let bootstrap = cluster.bootstrap();
        for topic in &scenario.topics {
            create_topic(
                &bootstrap,
                &topic.name,
                topic.partitions as i32,
                topic.replication_factor as i32,
            )
            .with_context(|| format!("creating topic {}", topic.name))?;
        }
        self.wait_for_leaders(cluster.as_ref())?;
        check_interrupt()?;

        let warmup = scenario.workload.warmup;
        let window = scenario.workload.duration;
        let clock = RunClock::with_warmup(warmup);
        let running = workload::start(&bootstrap, &scenario.workload, self.seed, clock)?;
        let mut injector = FaultInjector::new(self.seed);
        let mut next_fault = 0;
        let mut last_recovery_poll = Instant::now();
        let window_end = clock.measured_start + window;
        progress.note(&format!(
            "warmup {} s, then {} s measured",
            warmup.as_secs_f64(),
            window.as_secs_f64()
        ));
        while Instant::now() < window_end {
            check_interrupt()?;
            let now_ms = clock.now_ns() / 1_000_000;
            while next_fault < scenario.faults.len()
                && scenario.faults[next_fault].at.as_millis() as i64 <= now_ms
            {
                let fault = &scenario.faults[next_fault];
                next_fault += 1;
                injector
                    .inject(fault, cluster.as_mut(), &proxy, now_ms)
                    .with_context(|| format!("injecting faults[{}]", next_fault - 1))?;
                let record = injector.records.last().expect("just recorded");
                progress.note(&format!(
                    "{:>7.1}s fault: {}",
                    record.injected_at_ms as f64 / 1000.0,
                    record.description
                ));
            }
            injector.expire(&proxy, now_ms)?;
            gathered.crashes.extend(
                cluster
                    .unexpected_exits()
                    .into_iter()
                    .map(|(node, status)| format!("node {node} exited ({status}) at {now_ms} ms")),
            );
            if last_recovery_poll.elapsed() >= Duration::from_millis(RECOVERY_POLL_MS) {
                last_recovery_poll = Instant::now();
                self.poll_recoveries(cluster.as_ref(), &injector, gathered, clock);
            }
            let counts = running.progress();
            progress.update(&Status {
                phase: if now_ms < 0 { "warmup" } else { "measure" },
                elapsed_ms: now_ms,
                window_ms: window.as_millis() as u64,
                acknowledged: counts.acknowledged,
                consumed: counts.consumed,
                failed: counts.failed,
                faults: &injector.current(),
            });
            std::thread::sleep(Duration::from_millis(STEP_MS));
        }

        let heal_ms = clock.now_ns() / 1_000_000;
        progress.note(&format!("{:>7.1}s heal", heal_ms as f64 / 1000.0));
        injector.heal(&proxy, heal_ms)?;
        injector.restore_nodes(cluster.as_mut(), heal_ms)?;
        running.stop_producers();
        let converge_deadline = Instant::now() + Duration::from_millis(CONVERGE_TIMEOUT_MS);
        loop {
            check_interrupt()?;
            self.poll_recoveries(cluster.as_ref(), &injector, gathered, clock);
            let stuck = self.unconverged(cluster.as_ref());
            if stuck.is_empty() {
                break;
            }
            if Instant::now() >= converge_deadline {
                gathered.stuck_after_heal.extend(stuck);
                break;
            }
            let counts = running.progress();
            progress.update(&Status {
                phase: "converge",
                elapsed_ms: clock.now_ns() / 1_000_000,
                window_ms: window.as_millis() as u64,
                acknowledged: counts.acknowledged,
                consumed: counts.consumed,
                failed: counts.failed,
                faults: &[],
            });
            std::thread::sleep(Duration::from_millis(RECOVERY_POLL_MS));
        }
        if gathered.stuck_after_heal.is_empty() {
            gathered
                .stuck_after_heal
                .extend(probe::probe_writes(&bootstrap, &self.topic_partitions()));
        }
        // A cluster that did not come back is given less time to hand over what it has.
        let stuck = !gathered.stuck_after_heal.is_empty();
        let patience_ms = |full_ms: u64| if stuck { STUCK_PATIENCE_MS } else { full_ms };
        progress.note("drain: consumers read what they are owed");
        if !running.drain_consumers(Duration::from_millis(patience_ms(DRAIN_TIMEOUT_MS))) {
            progress.note("drain: timed out; the final read decides what is lost");
        }
        let records = running.finish()?;
        check_interrupt()?;
        let final_read = workload::final_read(
            &bootstrap,
            &self.topic_partitions(),
            Duration::from_millis(patience_ms(FINAL_READ_TIMEOUT_MS)),
        )?;
        if !final_read.is_complete() {
            gathered
                .stuck_after_heal
                .push("the final read did not reach every partition's high watermark".into());
        }
        progress.finish();
        for started in &injector.started_nodes {
            if !gathered.recoveries.iter().any(|recovery| {
                recovery.started_at_ms == started.started_at_ms && recovery.node == started.node
            }) {
                gathered.recoveries.push(Recovery {
                    node: started.node,
                    kind: started.kind.name().to_string(),
                    started_at_ms: started.started_at_ms,
                    recovery_ms: None,
                });
            }
        }
        gathered
            .recoveries
            .sort_by_key(|recovery| recovery.started_at_ms);
        let sending_window = scenario.workload.sending_window();
        gathered.findings = Some(analysis::analyse(&records, &final_read, sending_window));
        gathered.faults = Some(injector);
        Ok(())
    }

    /// Marks restarted or wiped nodes that have caught up.
    fn poll_recoveries(
        &self,
        cluster: &dyn Cluster,
        injector: &FaultInjector,
        gathered: &mut Gathered,
        clock: RunClock,
    ) {
        let pending: Vec<_> = injector
            .started_nodes
            .iter()
            .filter(|started| {
                !gathered.recoveries.iter().any(|recovery| {
                    recovery.node == started.node && recovery.started_at_ms == started.started_at_ms
                })
            })
            .collect();
        if pending.is_empty() {
            return;
        }
        let view = raft_view(cluster);
        let now_ms = clock.now_ns() / 1_000_000;
        for started in pending {
            // A later restart of the same node supersedes this one.
            let superseded = injector.started_nodes.iter().any(|other| {
                other.node == started.node && other.started_at_ms > started.started_at_ms
            });
            if superseded {
                continue;
            }
            if cluster.is_healthy(started.node) && view.is_caught_up(started.node) {
                gathered.recoveries.push(Recovery {
                    node: started.node,
                    kind: started.kind.name().to_string(),
                    started_at_ms: started.started_at_ms,
                    recovery_ms: Some((now_ms - started.started_at_ms).max(0) as u64),
                });
            }
        }
    }

    /// What keeps the cluster from having converged: a node not serving, a partition without
    /// a leader, a replica behind.
    fn unconverged(&self, cluster: &dyn Cluster) -> Vec<String> {
        let mut stuck = Vec::new();
        for node in cluster.node_ids() {
            if !cluster.is_healthy(node) {
                stuck.push(format!("node {node} does not serve"));
            }
        }
        let view = raft_view(cluster);
        for (topic, partitions) in self.topic_partitions() {
            for partition in 0..partitions {
                if view.partition_leader(&topic, partition).is_none() {
                    stuck.push(format!("{topic}/{partition} has no leader"));
                }
            }
        }
        for node in cluster.node_ids() {
            if !view.is_caught_up(node) {
                stuck.push(format!("node {node} has not caught up"));
            }
        }
        stuck
    }

    fn wait_for_leaders(&self, cluster: &dyn Cluster) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_millis(CONVERGE_TIMEOUT_MS);
        loop {
            let stuck = self.unconverged(cluster);
            if stuck.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("the new cluster did not settle: {}", stuck.join("; "));
            }
            check_interrupt()?;
            std::thread::sleep(Duration::from_millis(RECOVERY_POLL_MS));
        }
    }

    fn topic_partitions(&self) -> Vec<(String, u32)> {
        self.scenario
            .topics
            .iter()
            .map(|topic| (topic.name.clone(), topic.partitions))
            .collect()
    }

    /// The brokers' environment; `object_store_path` is where the `local` object store is, as
    /// the brokers see it.
    fn broker_env(&self, object_store_path: &str) -> Vec<(String, String)> {
        let cluster = &self.scenario.cluster;
        let mut env: Vec<(String, String)> = Vec::new();
        match &cluster.object_store {
            ObjectStore::Local => {
                env.push(("OBJECT_STORE_BACKEND".into(), "local".into()));
                env.push(("OBJECT_STORE_PATH".into(), object_store_path.to_string()));
            }
            ObjectStore::Memory => env.push(("OBJECT_STORE_BACKEND".into(), "memory".into())),
            ObjectStore::S3 { bucket, prefix } => {
                env.push(("OBJECT_STORE_BACKEND".into(), "s3".into()));
                env.push(("S3_BUCKET".into(), bucket.clone()));
                env.push(("OBJECT_STORE_PREFIX".into(), prefix.clone()));
            }
        }
        if let Some(timeout) = cluster.election_timeout {
            env.push((
                "CHRONIK_RAFT_ELECTION_TIMEOUT_MS".into(),
                timeout.as_millis().to_string(),
            ));
        }
        env.extend(
            cluster
                .env
                .iter()
                .map(|(key, value)| (key.clone(), value.clone())),
        );
        env.extend(self.options.broker_env.iter().cloned());
        env
    }

    fn broker_args(&self) -> Vec<String> {
        Vec::new()
    }

    fn report(&self, machine: report::Machine, gathered: Gathered) -> RunReport {
        let scenario = self.scenario;
        let findings = gathered.findings.unwrap_or_default();
        let judgement = judge::judge(
            &scenario.checks,
            &judge::Observations {
                counts: &findings.counts,
                latency: &findings.latency,
                recoveries: &gathered.recoveries,
                crashes: &gathered.crashes,
                stuck_after_heal: &gathered.stuck_after_heal,
                final_read_complete: findings.final_read_complete,
            },
        );
        let (mut verdict, mut reasons) = (judgement.verdict, judgement.reasons);
        if let Some(error) = &gathered.error {
            verdict = Verdict::Error;
            reasons.insert(0, format!("error: {error}"));
        }
        let workload = &scenario.workload;
        let offered_rate = if workload.producers.iter().any(|producer| producer.rate == 0) {
            0
        } else {
            workload
                .producers
                .iter()
                .map(|producer| producer.rate * producer.count as u64)
                .sum()
        };
        RunReport {
            format_version: report::FORMAT_VERSION,
            name: scenario.name.clone(),
            description: scenario.description.clone(),
            seed: self.seed,
            rerun_command: self.rerun_command.clone(),
            verdict,
            verdict_reasons: reasons,
            started_at: self.started_at.clone(),
            wall_seconds: self.started.elapsed().as_secs_f64(),
            versions: gathered.broker_version.unwrap_or(report::Versions {
                bench: env!("CARGO_PKG_VERSION").to_string(),
                broker: "unknown".to_string(),
                commit: None,
            }),
            machine,
            cluster: ClusterSummary {
                // As the cluster names itself; the scenario's choice if none started.
                runtime: if gathered.runtime.is_empty() {
                    scenario.cluster.runtime.name().to_string()
                } else {
                    gathered.runtime.to_string()
                },
                nodes: scenario.cluster.nodes,
                object_store: scenario.cluster.object_store.to_string(),
                fault_proxy: gathered.fault_proxy,
                topics: scenario
                    .topics
                    .iter()
                    .map(|topic| TopicSummary {
                        name: topic.name.clone(),
                        partitions: topic.partitions,
                        replication_factor: topic.replication_factor,
                    })
                    .collect(),
            },
            workload: WorkloadSummary {
                warmup_ms: workload.warmup.as_millis() as u64,
                duration_ms: workload.duration.as_millis() as u64,
                producers: workload
                    .producers
                    .iter()
                    .map(|producer| producer.count)
                    .sum(),
                consumers: workload
                    .consumers
                    .iter()
                    .map(|consumer| consumer.count)
                    .sum(),
                offered_rate,
                message_size_bytes: workload
                    .producers
                    .iter()
                    .map(|producer| producer.message_size)
                    .collect(),
            },
            faults: gathered
                .faults
                .map(|injector| injector.records)
                .unwrap_or_default(),
            throughput: findings.throughput,
            latency: findings.latency,
            latency_over_time: findings.latency_over_time,
            counts: findings.counts,
            unavailability_windows: findings.unavailability_windows,
            recoveries: gathered.recoveries,
            cpu: cpu_use(
                bench_cpu_seconds() - self.bench_cpu_at_start,
                gathered.brokers_cpu_seconds,
            ),
            checks: judgement.checks,
            broker_logs: gathered.broker_logs,
            storage: gathered.storage,
            examples: findings.examples,
        }
    }
}

fn check_interrupt() -> anyhow::Result<()> {
    if interrupted().load(Ordering::SeqCst) {
        bail!("interrupted (Ctrl-C)");
    }
    Ok(())
}
