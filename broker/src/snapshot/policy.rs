//! When snapshots are taken and how many are kept: the `CHRONIK_SNAPSHOT_*` settings.

use std::time::Duration;

use super::codec::Compression;

/// Data a group must hold since its last snapshot for going quiet to make it due: a partition
/// written a message now and then is not snapshotted (one tiny chunk object more) every time.
pub const IDLE_SNAPSHOT_MIN_BYTES: u64 = 1024 * 1024;

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

    /// ...or once nothing was applied for this long and at least 1 MiB was since its last
    /// snapshot: a group that went quiet compacts its log and is in the object store up to
    /// its last write. 0: off.
    #[arg(
        long = "snapshot-idle-secs",
        env = "CHRONIK_SNAPSHOT_IDLE_SECS",
        default_value_t = 10
    )]
    pub idle_secs: u64,

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

/// What a group applied since its last snapshot.
#[derive(Clone, Copy, Debug, Default)]
pub struct SinceSnapshot {
    pub entries: u64,
    /// Bytes of data entries (the records of snapshots do not count).
    pub data_bytes: u64,
    pub elapsed: Duration,
    /// Since the last data entry was applied.
    pub quiet: Duration,
}

impl SnapshotSettings {
    /// Whether a group that applied `since` since its last snapshot is due for the next one.
    /// Without data nothing is due: the records of earlier snapshots alone never make one.
    pub fn is_due(&self, since: &SinceSnapshot) -> bool {
        if since.data_bytes == 0 {
            return false;
        }
        let went_quiet = self.idle_secs > 0
            && since.data_bytes >= IDLE_SNAPSHOT_MIN_BYTES
            && since.quiet >= Duration::from_secs(self.idle_secs);
        since.entries >= self.log_threshold_entries
            || since.data_bytes >= self.log_threshold_bytes
            || since.elapsed >= Duration::from_secs(self.time_threshold_secs)
            || went_quiet
    }
}

/// A group due for a snapshot, with the data it applied since its last one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DueGroup {
    pub group: u64,
    /// The index its snapshot would be cut at.
    pub applied_index: u64,
    pub data_bytes: u64,
}

/// Which due groups start a snapshot now, given `free_slots` under the work bound: the ones
/// furthest behind first. Taken in a fixed order (by group id), a node that leads more busy
/// groups than it has slots would hand every free slot to its first groups and starve the
/// last ones, whose Raft logs then grow without bound and pin the log files of every group.
pub fn furthest_behind_first(mut due: Vec<DueGroup>, free_slots: u64) -> Vec<DueGroup> {
    due.sort_by(|left, right| {
        right
            .data_bytes
            .cmp(&left.data_bytes)
            .then(left.group.cmp(&right.group))
    });
    due.into_iter()
        .take(usize::try_from(free_slots).unwrap_or(usize::MAX))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> SnapshotSettings {
        SnapshotSettings {
            enabled: true,
            log_threshold_entries: 10_000,
            log_threshold_bytes: 8 * 1024 * 1024,
            time_threshold_secs: 3600,
            idle_secs: 10,
            compression: Compression::Zstd,
            retention_count: 3,
            max_concurrent: 2,
            require_restore: false,
        }
    }

    fn busy(entries: u64, data_bytes: u64) -> SinceSnapshot {
        SinceSnapshot {
            entries,
            data_bytes,
            elapsed: Duration::from_secs(1),
            quiet: Duration::ZERO,
        }
    }

    #[test]
    fn entries_bytes_or_time_make_a_group_due() {
        let settings = settings();
        assert!(!settings.is_due(&busy(9_999, 1000)));
        assert!(settings.is_due(&busy(10_000, 1000)));
        assert!(!settings.is_due(&busy(10, 8 * 1024 * 1024 - 1)));
        assert!(settings.is_due(&busy(10, 8 * 1024 * 1024)));
        let old = SinceSnapshot {
            elapsed: Duration::from_secs(3600),
            ..busy(1, 1)
        };
        assert!(settings.is_due(&old));
    }

    #[test]
    fn snapshot_records_alone_never_make_a_group_due() {
        let settings = settings();
        let only_records = SinceSnapshot {
            elapsed: Duration::from_secs(7200),
            quiet: Duration::from_secs(7200),
            ..busy(20_000, 0)
        };
        assert!(!settings.is_due(&only_records));
    }

    #[test]
    fn a_group_that_went_quiet_with_a_megabyte_is_due() {
        let settings = settings();
        let quiet = |data_bytes, quiet_secs| SinceSnapshot {
            quiet: Duration::from_secs(quiet_secs),
            ..busy(100, data_bytes)
        };
        assert!(settings.is_due(&quiet(IDLE_SNAPSHOT_MIN_BYTES, 10)));
        assert!(!settings.is_due(&quiet(IDLE_SNAPSHOT_MIN_BYTES, 9)));
        assert!(!settings.is_due(&quiet(IDLE_SNAPSHOT_MIN_BYTES - 1, 600)));
        let off = SnapshotSettings {
            idle_secs: 0,
            ..settings
        };
        assert!(!off.is_due(&quiet(IDLE_SNAPSHOT_MIN_BYTES, 600)));
    }
    #[test]
    fn the_groups_furthest_behind_take_the_free_slots() {
        let due = |group, data_bytes| DueGroup {
            group,
            applied_index: group * 100,
            data_bytes,
        };
        let groups = vec![
            due(1, 9 << 20),
            due(7, 40 << 20),
            due(4, 9 << 20),
            due(8, 12 << 20),
        ];
        let chosen = |free_slots| -> Vec<u64> {
            furthest_behind_first(groups.clone(), free_slots)
                .iter()
                .map(|due| due.group)
                .collect()
        };
        assert_eq!(chosen(2), vec![7, 8]);
        // Equal backlogs go by group id, so the choice is repeatable.
        assert_eq!(chosen(4), vec![7, 8, 1, 4]);
        assert_eq!(chosen(9), vec![7, 8, 1, 4]);
        assert!(chosen(0).is_empty());
    }
}
