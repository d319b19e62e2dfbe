//! `chronik-bench idle-memory`: the resident memory of one broker holding many idle partition
//! replicas (each a Raft group with its own log).

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::broker_process::{find_broker_binary, BrokerProcess};
use crate::throughput::create_topic;

#[derive(Clone, Debug, clap::Args)]
pub struct IdleMemoryArgs {
    #[arg(long, env = "CHRONIK_SERVER_BIN")]
    pub broker_bin: Option<PathBuf>,
    #[arg(long, default_value_t = 1500)]
    pub partitions: i32,
    /// How long to let the replicas idle before measuring.
    #[arg(long, default_value_t = 10)]
    pub settle_seconds: u64,
}

#[derive(Debug, Serialize)]
pub struct IdleMemoryReport {
    pub partitions: i32,
    pub resident_megabytes_before: f64,
    pub resident_megabytes_after: f64,
    pub kilobytes_per_replica: f64,
}

pub fn run(args: &IdleMemoryArgs) -> anyhow::Result<IdleMemoryReport> {
    let scratch = tempfile::Builder::new().prefix("chronik-idle-").tempdir()?;
    let binary = find_broker_binary(args.broker_bin.as_deref())?;
    let mut broker = BrokerProcess::start(&binary, scratch.path(), &[])?;
    let before = broker.resident_bytes()?;
    create_topic(&broker.bootstrap(), "idle", args.partitions, 1)?;
    std::thread::sleep(Duration::from_secs(args.settle_seconds));
    let after = broker.resident_bytes()?;
    broker.stop()?;
    Ok(IdleMemoryReport {
        partitions: args.partitions,
        resident_megabytes_before: before as f64 / 1e6,
        resident_megabytes_after: after as f64 / 1e6,
        kilobytes_per_replica: after.saturating_sub(before) as f64 / 1e3 / args.partitions as f64,
    })
}
