//! The consumer group coordinator: Kafka's classic group protocol (JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup) plus the durable committed-offset store (OffsetCommit, OffsetFetch).
//!
//! This node coordinates every group. The pieces, front to back:
//! - [`coordinator`]: [`GroupCoordinator`], the async API the handlers call. It owns the table
//!   of groups behind one mutex, the long-poll waiters of JoinGroup/SyncGroup, the session
//!   expiry task and the offset store.
//! - [`state`], [`membership`] and [`sessions`]: one group's membership state machine
//!   ([`Group`]). Its methods take the current time as an argument, do no I/O and return
//!   [`Effect`]s (responses owed to parked JoinGroup/SyncGroup calls), so the same transitions
//!   can later be driven by a replicated log. [`types`] has the version-independent requests
//!   and answers.
//! - [`events`]: [`GroupEvent`], the serializable state changes that are made durable, and
//!   [`OffsetState`], the state machine they are applied to.
//! - [`journal`] and [`offsets`]: the append-only, CRC-framed journal of [`GroupEvent`]s under
//!   `<data_dir>/groups/` and [`OffsetStore`], which applies events in journal order, groups
//!   concurrent fsyncs into one, and compacts the journal.
//! - [`replicated`] and [`materialize`]: the replicated membership of Stable generations
//!   ([`StoredGroup`]), written through the [`GroupReplicator`] in a cluster, and the way a
//!   new coordinator turns it back into live groups, so members keep their generation across
//!   a coordinator failover.

pub mod coordinator;
pub mod events;
pub mod journal;
pub mod materialize;
pub mod membership;
pub mod offsets;
pub mod replicated;
pub mod sessions;
pub mod state;
pub mod types;

#[cfg(test)]
mod tests_membership;
#[cfg(test)]
mod tests_offsets;
#[cfg(test)]
mod tests_replicated;
#[cfg(test)]
mod tests_sessions;
#[cfg(test)]
mod tests_wire;

use std::sync::OnceLock;
use std::time::Instant;

pub use coordinator::GroupCoordinator;

/// Where committed offsets and group memberships are made durable when the coordinator is
/// part of a cluster: the event is replicated, and every node applies it
/// ([`offsets::OffsetStore::apply_replicated`]).
pub trait GroupReplicator: Send + Sync {
    /// Resolves once the event is applied on this node.
    fn replicate(&self, event: GroupEvent) -> futures::future::BoxFuture<'_, Result<(), String>>;
    /// The term of the metadata group in which this node coordinates, once it has applied
    /// everything committed before that term; `None` while it does not coordinate.
    fn coordinator_term(&self) -> Option<u64>;
}
pub use events::{GroupEvent, OffsetEntry, OffsetState, OffsetValue};
pub use offsets::OffsetStore;
pub use replicated::{StoredGroup, StoredGroups, StoredMember, StoredProtocol};
pub use state::{Group, GroupState, Member};
pub use types::{
    CommitOffset, Effect, FetchedOffset, GroupDescription, GroupListing, JoinMember, JoinRequest,
    JoinResult, MemberDescription, Reply, SyncRequest, SyncResult,
};

/// Group coordinator settings, taken from the broker configuration.
#[derive(Clone, Debug)]
pub struct GroupSettings {
    /// Smallest session timeout a member may ask for (Kafka's group.min.session.timeout.ms).
    pub min_session_timeout_ms: i32,
    /// Largest session timeout a member may ask for (Kafka's group.max.session.timeout.ms).
    pub max_session_timeout_ms: i32,
    /// How long the first rebalance of an empty group waits for more members
    /// (Kafka's group.initial.rebalance.delay.ms).
    pub initial_rebalance_delay_ms: u64,
}

impl Default for GroupSettings {
    fn default() -> Self {
        GroupSettings {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 300_000,
            initial_rebalance_delay_ms: 0,
        }
    }
}

/// Kafka error codes used by the coordinator (the numeric values of
/// `kafka_protocol::error::ResponseError`).
pub mod codes {
    pub const NONE: i16 = 0;
    pub const UNKNOWN_SERVER_ERROR: i16 = -1;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
    pub const INVALID_GROUP_ID: i16 = 24;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const INVALID_SESSION_TIMEOUT: i16 = 26;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const INVALID_REQUEST: i16 = 42;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
}

/// Milliseconds on a monotonic clock private to this process (never goes backwards; only
/// differences are meaningful). Deadlines inside [`Group`] are on this clock.
pub fn monotonic_ms() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    // Start at 1 s so that "0" never looks like a real past deadline.
    1_000 + base.elapsed().as_millis() as u64
}

/// Wall-clock milliseconds since the Unix epoch (commit timestamps).
pub fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod codes_tests {
    use super::codes;
    use kafka_protocol::error::ResponseError;

    #[test]
    fn codes_match_kafka_protocol() {
        assert_eq!(
            codes::UNKNOWN_MEMBER_ID,
            ResponseError::UnknownMemberId.code()
        );
        assert_eq!(
            codes::ILLEGAL_GENERATION,
            ResponseError::IllegalGeneration.code()
        );
        assert_eq!(
            codes::REBALANCE_IN_PROGRESS,
            ResponseError::RebalanceInProgress.code()
        );
        assert_eq!(
            codes::MEMBER_ID_REQUIRED,
            ResponseError::MemberIdRequired.code()
        );
        assert_eq!(
            codes::INCONSISTENT_GROUP_PROTOCOL,
            ResponseError::InconsistentGroupProtocol.code()
        );
        assert_eq!(
            codes::INVALID_SESSION_TIMEOUT,
            ResponseError::InvalidSessionTimeout.code()
        );
        assert_eq!(
            codes::COORDINATOR_NOT_AVAILABLE,
            ResponseError::CoordinatorNotAvailable.code()
        );
        assert_eq!(codes::NOT_COORDINATOR, ResponseError::NotCoordinator.code());
        assert_eq!(
            codes::UNKNOWN_TOPIC_OR_PARTITION,
            ResponseError::UnknownTopicOrPartition.code()
        );
        assert_eq!(
            codes::OFFSET_METADATA_TOO_LARGE,
            ResponseError::OffsetMetadataTooLarge.code()
        );
        assert_eq!(
            codes::INVALID_GROUP_ID,
            ResponseError::InvalidGroupId.code()
        );
        assert_eq!(codes::INVALID_REQUEST, ResponseError::InvalidRequest.code());
        assert_eq!(
            codes::GROUP_ID_NOT_FOUND,
            ResponseError::GroupIdNotFound.code()
        );
        assert_eq!(
            codes::UNKNOWN_SERVER_ERROR,
            ResponseError::UnknownServerError.code()
        );
    }
}
