//! The one configuration struct: command-line flags, each also a `CHRONIK_*` environment
//! variable, parsed once at start-up and passed down by reference.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use crate::misbehaviour::{self, Misbehaviour};

/// When the broker calls fdatasync on a partition log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FsyncPolicy {
    /// Every Raft write is synced before the messages and answers that depend on it.
    Always,
    /// Raft writes are not synced; the OS flushes when it likes (fast; survives a process
    /// crash, not a power cut of a majority).
    Never,
}

#[derive(Clone, Debug, Parser)]
#[command(
    name = "chronik-server",
    version,
    about = "Chronik: a Kafka-wire-compatible broker"
)]
pub struct Config {
    /// Directory holding partition logs, group offsets and broker metadata.
    #[arg(long, env = "CHRONIK_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Address the Kafka protocol listener binds to.
    #[arg(long, env = "CHRONIK_LISTEN", default_value = "127.0.0.1:9092")]
    pub listen: SocketAddr,

    /// host:port that clients are told to connect to (Metadata, FindCoordinator).
    /// Defaults to the listen address.
    #[arg(long, env = "CHRONIK_ADVERTISED_ADDR")]
    pub advertised_addr: Option<String>,

    /// Address of the HTTP listener serving /metrics and /health.
    #[arg(long, env = "CHRONIK_METRICS_LISTEN", default_value = "127.0.0.1:9644")]
    pub metrics_listen: SocketAddr,

    /// This node's id in the cluster (1 or more).
    #[arg(long, env = "CHRONIK_NODE_ID", default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..))]
    pub node_id: i32,

    /// Address the Raft transport listens on (other nodes dial it).
    #[arg(long, env = "CHRONIK_RAFT_LISTEN", default_value = "127.0.0.1:9093")]
    pub raft_listen: SocketAddr,

    /// The other nodes' Raft addresses, `id=host:port,...` (this node may be listed too).
    /// Each is dialed exactly as given, so a link can pass through a proxy. Empty: a
    /// one-node cluster.
    #[arg(long, env = "CHRONIK_PEERS", default_value = "")]
    pub peers: String,

    /// A follower that hears nothing from its leader for this long starts an election
    /// (randomised between 1x and 2x).
    #[arg(long, env = "CHRONIK_RAFT_ELECTION_TIMEOUT_MS", default_value_t = 500)]
    pub raft_election_timeout_ms: u64,

    /// How often a leader sends heartbeats.
    #[arg(
        long,
        env = "CHRONIK_RAFT_HEARTBEAT_INTERVAL_MS",
        default_value_t = 100
    )]
    pub raft_heartbeat_interval_ms: u64,

    /// Create a topic when a client asks for its metadata and it does not exist.
    #[arg(long, env = "CHRONIK_AUTO_CREATE_TOPICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub auto_create_topics: bool,

    /// Partitions of an auto-created topic.
    #[arg(long, env = "CHRONIK_DEFAULT_PARTITIONS", default_value_t = 1)]
    pub default_partitions: i32,

    /// Largest request frame accepted, in bytes; a larger one closes the connection.
    #[arg(long, env = "CHRONIK_MAX_FRAME_BYTES", default_value_t = 100 * 1024 * 1024)]
    pub max_frame_bytes: usize,

    /// Connections served at once; further ones are closed at accept.
    #[arg(long, env = "CHRONIK_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Size at which the active segment of a partition log is rolled.
    #[arg(long, env = "CHRONIK_SEGMENT_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub segment_bytes: u64,

    /// Default retention by size per partition (-1: unlimited). Topic config `retention.bytes`
    /// overrides it.
    #[arg(long, env = "CHRONIK_RETENTION_BYTES", default_value_t = -1, allow_hyphen_values = true)]
    pub retention_bytes: i64,

    /// Default retention by age (-1: unlimited). Topic config `retention.ms` overrides it.
    #[arg(long, env = "CHRONIK_RETENTION_MS", default_value_t = 7 * 24 * 3600 * 1000, allow_hyphen_values = true)]
    pub retention_ms: i64,

    /// How often retention runs.
    #[arg(
        long,
        env = "CHRONIK_RETENTION_CHECK_INTERVAL_MS",
        default_value_t = 60_000
    )]
    pub retention_check_interval_ms: u64,

    /// Whether the Raft log is synced before anything is acknowledged (see ARCHITECTURE.md,
    /// "Durability").
    #[arg(long, env = "CHRONIK_FSYNC", value_enum, default_value_t = FsyncPolicy::Always)]
    pub fsync: FsyncPolicy,

    /// Consumer group session timeout bounds (ms), as Kafka's group.min/max.session.timeout.ms.
    #[arg(
        long,
        env = "CHRONIK_GROUP_MIN_SESSION_TIMEOUT_MS",
        default_value_t = 1_000
    )]
    pub group_min_session_timeout_ms: i32,
    #[arg(
        long,
        env = "CHRONIK_GROUP_MAX_SESSION_TIMEOUT_MS",
        default_value_t = 300_000
    )]
    pub group_max_session_timeout_ms: i32,

    /// Delay before the first rebalance of an empty group completes, so members starting
    /// together join one generation (Kafka's group.initial.rebalance.delay.ms).
    #[arg(
        long,
        env = "CHRONIK_GROUP_INITIAL_REBALANCE_DELAY_MS",
        default_value_t = 0
    )]
    pub group_initial_rebalance_delay_ms: u64,

    /// Deliberate misbehaviour for testing the bench, honoured by debug builds only:
    /// ack-before-commit, drop-batches, fetch-beyond-high-watermark or stall-after-ms=N (see
    /// the `misbehaviour` module). Never set it for real data.
    #[arg(long, env = misbehaviour::VARIABLE, value_parser = Misbehaviour::parse)]
    pub test_misbehaviour: Option<Misbehaviour>,

    #[command(flatten)]
    pub snapshots: crate::snapshot::policy::SnapshotSettings,

    #[command(flatten)]
    pub object_store: crate::snapshot::settings::ObjectStoreSettings,
}

impl Config {
    /// The host:port advertised to clients.
    pub fn advertised(&self) -> (String, i32) {
        let text = self
            .advertised_addr
            .clone()
            .unwrap_or_else(|| self.listen.to_string());
        match text.rsplit_once(':') {
            Some((host, port)) => (host.to_string(), port.parse().unwrap_or(9092)),
            None => (text, 9092),
        }
    }

    /// A configuration for tests: everything default but the data directory and an
    /// ephemeral listener.
    pub fn for_test(data_dir: PathBuf) -> Config {
        let mut config = Config::parse_from(["chronik-server"]);
        config.data_dir = data_dir;
        config.listen = "127.0.0.1:0".parse().expect("literal address");
        config.metrics_listen = "127.0.0.1:0".parse().expect("literal address");
        config.raft_listen = "127.0.0.1:0".parse().expect("literal address");
        config
    }
}
