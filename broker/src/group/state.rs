//! One group's membership state: the group states of Kafka's classic protocol, the members and
//! the timers. The transitions live in [`super::membership`].

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::codes;
use super::types::{Effect, SyncResult};

/// The states of a classic consumer group, named as Kafka names them on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupState {
    /// No members (it may still have committed offsets).
    Empty,
    /// A rebalance started: waiting for members to (re)join.
    PreparingRebalance,
    /// The join phase is over: waiting for the leader's assignment in SyncGroup.
    CompletingRebalance,
    /// Assignments are handed out; members heartbeat.
    Stable,
    /// The group is gone (reported for unknown groups).
    Dead,
}

impl GroupState {
    /// The state name Kafka uses in DescribeGroups / ListGroups.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }

    pub const ALL: [GroupState; 5] = [
        GroupState::Empty,
        GroupState::PreparingRebalance,
        GroupState::CompletingRebalance,
        GroupState::Stable,
        GroupState::Dead,
    ];
}

/// A member of a group.
#[derive(Clone, Debug)]
pub struct Member {
    pub id: String,
    /// Static membership id; kept for DescribeGroups, otherwise treated as dynamic.
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// (assignor name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// The assignment handed out in the current generation (empty before SyncGroup).
    pub assignment: Bytes,
    /// Has a JoinGroup parked for the current rebalance.
    pub awaiting_join: bool,
    /// Has a SyncGroup parked waiting for the leader's assignment.
    pub awaiting_sync: bool,
    /// Last sign of life, on the [`super::monotonic_ms`] clock.
    pub last_heartbeat_ms: u64,
}

impl Member {
    /// Answers this member's parked SyncGroup with its assignment (`now`: a sign of life).
    pub fn answer_sync(
        &mut self,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        now: u64,
    ) -> Effect {
        self.awaiting_sync = false;
        self.last_heartbeat_ms = now;
        Effect::Sync {
            member_id: self.id.clone(),
            result: SyncResult {
                error: codes::NONE,
                protocol_type: protocol_type.map(str::to_string),
                protocol_name: protocol_name.map(str::to_string),
                assignment: self.assignment.clone(),
            },
        }
    }

    /// The metadata this member sent for `protocol`, if it supports it.
    pub fn metadata_for(&self, protocol: &str) -> Option<&Bytes> {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, metadata)| metadata)
    }

    pub fn supports(&self, protocol: &str) -> bool {
        self.metadata_for(protocol).is_some()
    }

    /// Same protocol names and metadata, in the same order.
    pub fn protocols_match(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols.as_slice() == protocols
    }

    /// Does the session timer run? A member parked in JoinGroup is governed by the rebalance
    /// timeout, one parked in SyncGroup by the sync deadline.
    pub fn session_expired(&self, now_ms: u64) -> bool {
        !self.awaiting_join
            && !self.awaiting_sync
            && self.last_heartbeat_ms + self.session_timeout_ms.max(0) as u64 <= now_ms
    }
}

/// The initial-rebalance-delay phase of an empty group's first rebalance (Kafka's
/// InitialDelayedJoin): the join completes only once a delay period passes with no new member.
#[derive(Clone, Debug)]
pub struct InitialDelay {
    /// End of the current delay period.
    pub until_ms: u64,
    /// What is left of the rebalance timeout after this period.
    pub remaining_ms: u64,
    /// A new member joined during the current period.
    pub new_member_added: bool,
}

/// One consumer group's membership state.
#[derive(Clone, Debug)]
pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation: i32,
    /// Set by the first member to join; kept while the group is empty.
    pub protocol_type: Option<String>,
    /// The protocol (assignor) chosen for the current generation.
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// Members in join order (the first is the default leader).
    pub members: Vec<Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with their expiry deadline.
    pub pending_members: BTreeMap<String, u64>,
    /// PreparingRebalance: when the join phase completes even if members are missing.
    pub rebalance_deadline_ms: Option<u64>,
    /// PreparingRebalance of a formerly empty group: the initial delay.
    pub initial_delay: Option<InitialDelay>,
    /// Members that have not sent SyncGroup since the last join phase completed.
    pub pending_sync: BTreeSet<String>,
    /// When members still in `pending_sync` are removed.
    pub sync_deadline_ms: Option<u64>,
    /// Since when the group has been Empty (for clean-up of groups with no offsets).
    pub empty_since_ms: Option<u64>,
    /// The group's Stable generations are replicated: the leader's assignment is handed out
    /// only once the generation is written ([`Group::assignment_written`]).
    pub hold_assignments_until_written: bool,
    /// The generation whose assignment is being written; SyncGroups of it wait meanwhile.
    pub assignment_write: Option<i32>,
}

impl Group {
    pub fn new(id: &str, now_ms: u64) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: Vec::new(),
            pending_members: BTreeMap::new(),
            rebalance_deadline_ms: None,
            initial_delay: None,
            pending_sync: BTreeSet::new(),
            sync_deadline_ms: None,
            empty_since_ms: Some(now_ms),
            hold_assignments_until_written: false,
            assignment_write: None,
        }
    }

    pub fn member(&self, id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    pub fn member_mut(&mut self, id: &str) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.id == id)
    }

    pub fn has_member(&self, id: &str) -> bool {
        self.member(id).is_some()
    }

    pub fn is_leader(&self, id: &str) -> bool {
        self.leader.as_deref() == Some(id)
    }

    /// The largest rebalance timeout of the members (Kafka's group rebalance timeout).
    pub fn rebalance_timeout_ms(&self) -> u64 {
        self.members
            .iter()
            .map(|m| m.rebalance_timeout_ms.max(0) as u64)
            .max()
            .unwrap_or(0)
    }

    /// Every member has a JoinGroup parked and no MEMBER_ID_REQUIRED member is outstanding.
    pub fn all_members_joined(&self) -> bool {
        self.members.iter().all(|m| m.awaiting_join) && self.pending_members.is_empty()
    }

    /// Could a member with these protocols join? (Kafka's supportsProtocols.)
    pub fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols
                .iter()
                .any(|(name, _)| self.members.iter().all(|m| m.supports(name)))
    }

    /// Chooses the protocol for a new generation: among the protocols all members support,
    /// each member votes for its most preferred one; most votes wins, ties go to the leader's
    /// order of preference.
    pub fn select_protocol(&self) -> Option<String> {
        let leader = self
            .leader
            .as_deref()
            .and_then(|id| self.member(id))
            .or_else(|| self.members.first())?;
        let candidates: Vec<&str> = leader
            .protocols
            .iter()
            .map(|(name, _)| name.as_str())
            .filter(|name| self.members.iter().all(|m| m.supports(name)))
            .collect();
        let mut best: Option<(&str, usize)> = None;
        for candidate in &candidates {
            let votes = self
                .members
                .iter()
                .filter(|m| {
                    m.protocols
                        .iter()
                        .map(|(name, _)| name.as_str())
                        .find(|name| candidates.contains(name))
                        == Some(candidate)
                })
                .count();
            if best.is_none_or(|(_, most)| votes > most) {
                best = Some((candidate, votes));
            }
        }
        best.map(|(name, _)| name.to_string())
    }
}
