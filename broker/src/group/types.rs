//! The version-independent requests and answers of the group protocol, and the effects that
//! answer parked calls.

use bytes::Bytes;

use super::state::GroupState;

/// A JoinGroup request, version-independent.
#[derive(Clone, Debug)]
pub struct JoinRequest {
    pub group_id: String,
    /// Empty for a member joining for the first time.
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// (assignor name, metadata) in order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a member without id gets MEMBER_ID_REQUIRED and an id to rejoin with.
    pub require_known_member_id: bool,
}

/// One member as the leader sees it in its JoinGroup response.
#[derive(Clone, Debug, PartialEq)]
pub struct JoinMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

/// The answer to a JoinGroup.
#[derive(Clone, Debug, PartialEq)]
pub struct JoinResult {
    pub error: i16,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// All members with their metadata for the chosen protocol (leader only; empty otherwise).
    pub members: Vec<JoinMember>,
}

impl JoinResult {
    pub fn error(member_id: &str, error: i16) -> JoinResult {
        JoinResult {
            error,
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

/// A SyncGroup request, version-independent.
#[derive(Clone, Debug)]
pub struct SyncRequest {
    pub group_id: String,
    pub member_id: String,
    pub generation_id: i32,
    pub group_instance_id: Option<String>,
    /// v5+: checked against the group's when present.
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// The leader's assignment: (member id, assignment).
    pub assignments: Vec<(String, Bytes)>,
}

/// The answer to a SyncGroup.
#[derive(Clone, Debug, PartialEq)]
pub struct SyncResult {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    pub fn error(error: i16) -> SyncResult {
        SyncResult {
            error,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// An answer owed to a parked call.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    Join {
        member_id: String,
        result: JoinResult,
    },
    Sync {
        member_id: String,
        result: SyncResult,
    },
}

/// Answered now, or parked until an [`Effect`] answers it.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply<T> {
    Now(T),
    Parked,
}

/// One partition of an OffsetCommit.
#[derive(Clone, Debug, PartialEq)]
pub struct CommitOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// One partition of an OffsetFetch answer (-1 / "" when nothing is committed).
#[derive(Clone, Debug, PartialEq)]
pub struct FetchedOffset {
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

/// A member as DescribeGroups reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Metadata for the current protocol (Stable groups only; empty otherwise).
    pub metadata: Bytes,
    /// Current assignment (Stable groups only; empty otherwise).
    pub assignment: Bytes,
}

/// A group as DescribeGroups reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: GroupState,
    pub protocol_type: String,
    /// The chosen protocol (Stable groups only; empty otherwise), as Kafka reports it.
    pub protocol: String,
    pub generation: i32,
    pub leader: Option<String>,
    pub members: Vec<MemberDescription>,
}

/// A group as ListGroups reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: GroupState,
}
