//! When snapshots are taken and how many are kept: the `CHRONIK_SNAPSHOT_*` settings.

use super::codec::Compression;

#[derive(Clone, Debug, clap::Args)]
pub struct SnapshotSettings {
    /// Take snapshots and compact Raft logs. Off: logs grow without bound and a lagging or
    /// wiped node replays the whole log from its leader.
    #[arg(long = "snapshot-enabled", env = "CHRONIK_SNAPSHOT_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    pub enabled: bool,

    /// A group is snapshotted once this many entries were applied since its last snapshot.
    #[arg(
        long = "snapshot-log-threshold",
        env = "CHRONIK_SNAPSHOT_LOG_THRESHOLD",
        default_value_t = 10_000
    )]
    pub log_threshold_entries: u64,

    /// ...or once this many bytes of entries were applied since its last snapshot (what bounds
    /// the Raft log's disk use when entries are large).
    #[arg(
        long = "snapshot-log-bytes-threshold",
        env = "CHRONIK_SNAPSHOT_LOG_BYTES_THRESHOLD",
        default_value_t = 8 * 1024 * 1024
    )]
    pub log_threshold_bytes: u64,

    /// ...or once this long has passed since its last snapshot and anything was applied.
    #[arg(
        long = "snapshot-time-threshold-secs",
        env = "CHRONIK_SNAPSHOT_TIME_THRESHOLD_SECS",
        default_value_t = 3600
    )]
    pub time_threshold_secs: u64,

    /// How snapshot objects are compressed.
    #[arg(
        long = "snapshot-compression",
        env = "CHRONIK_SNAPSHOT_COMPRESSION",
        value_enum,
        default_value_t = Compression::Zstd
    )]
    pub compression: Compression,

    /// Snapshots kept per group in the object store; older ones, and objects no kept one
    /// names, are deleted.
    #[arg(
        long = "snapshot-retention-count",
        env = "CHRONIK_SNAPSHOT_RETENTION_COUNT",
        default_value_t = 3,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub retention_count: u64,

    /// Snapshots taken or installed at once on this node.
    #[arg(
        long = "snapshot-max-concurrent",
        env = "CHRONIK_SNAPSHOT_MAX_CONCURRENT",
        default_value_t = 2,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub max_concurrent: u64,

    /// Refuse to start unless the object store holds a snapshot of the metadata group to
    /// restore from (disaster recovery on empty disks; without it the restore is automatic
    /// when the data directory is empty and a snapshot exists).
    #[arg(long = "restore", env = "CHRONIK_RESTORE", default_value_t = false)]
    pub require_restore: bool,
}
