//! The rest of the classic protocol on one [`Group`]: SyncGroup, Heartbeat, LeaveGroup, the
//! OffsetCommit membership check, and the timers (sessions, pending member ids, SyncGroup
//! deadline, end of the join phase). Same conventions as [`super::membership`].

use std::collections::HashMap;

use bytes::Bytes;

use super::codes;
use super::state::{Group, GroupState, InitialDelay};
use super::types::{Effect, Reply, SyncRequest, SyncResult};

impl Group {
    /// SyncGroup: the leader's call hands out the assignment; followers park until it does.
    /// With [`Group::hold_assignments_until_written`] the leader's call only sets the
    /// assignment and starts [`Group::assignment_write`]: everyone stays parked until the
    /// generation is written.
    pub fn sync(&mut self, req: &SyncRequest, now: u64, fx: &mut Vec<Effect>) -> Reply<SyncResult> {
        if self.state == GroupState::Dead {
            return Reply::Now(SyncResult::error(codes::COORDINATOR_NOT_AVAILABLE));
        }
        if !self.has_member(&req.member_id) {
            return Reply::Now(SyncResult::error(codes::UNKNOWN_MEMBER_ID));
        }
        if req.generation_id != self.generation {
            return Reply::Now(SyncResult::error(codes::ILLEGAL_GENERATION));
        }
        let type_ok = req
            .protocol_type
            .as_ref()
            .is_none_or(|t| self.protocol_type.as_ref() == Some(t));
        let name_ok = req
            .protocol_name
            .as_ref()
            .is_none_or(|n| self.protocol.as_ref() == Some(n));
        if !type_ok || !name_ok {
            return Reply::Now(SyncResult::error(codes::INCONSISTENT_GROUP_PROTOCOL));
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => {
                Reply::Now(SyncResult::error(codes::UNKNOWN_MEMBER_ID))
            }
            GroupState::PreparingRebalance => {
                Reply::Now(SyncResult::error(codes::REBALANCE_IN_PROGRESS))
            }
            GroupState::CompletingRebalance => {
                self.sync_received(&req.member_id);
                if let Some(m) = self.member_mut(&req.member_id) {
                    m.awaiting_sync = true;
                    m.last_heartbeat_ms = now;
                }
                if self.is_leader(&req.member_id) {
                    let assignments: HashMap<&str, &Bytes> = req
                        .assignments
                        .iter()
                        .map(|(id, a)| (id.as_str(), a))
                        .collect();
                    let protocol_type = self.protocol_type.clone();
                    let protocol_name = self.protocol.clone();
                    let hold = self.hold_assignments_until_written;
                    if hold {
                        self.assignment_write = Some(self.generation);
                    }
                    for m in self.members.iter_mut() {
                        m.assignment = assignments
                            .get(m.id.as_str())
                            .map(|a| (*a).clone())
                            .unwrap_or_default();
                        if m.awaiting_sync && !hold {
                            fx.push(m.answer_sync(
                                protocol_type.as_deref(),
                                protocol_name.as_deref(),
                                now,
                            ));
                        }
                    }
                    self.state = GroupState::Stable;
                }
                Reply::Parked
            }
            GroupState::Stable if self.assignment_write == Some(self.generation) => {
                // The assignment is being written: answered by `assignment_written`.
                self.sync_received(&req.member_id);
                let m = self.member_mut(&req.member_id).expect("checked above");
                m.awaiting_sync = true;
                m.last_heartbeat_ms = now;
                Reply::Parked
            }
            GroupState::Stable => {
                self.sync_received(&req.member_id);
                let m = self.member_mut(&req.member_id).expect("checked above");
                m.last_heartbeat_ms = now;
                let assignment = m.assignment.clone();
                Reply::Now(SyncResult {
                    error: codes::NONE,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol.clone(),
                    assignment,
                })
            }
        }
    }

    fn sync_received(&mut self, member_id: &str) {
        self.pending_sync.remove(member_id);
        if self.pending_sync.is_empty() {
            self.sync_deadline_ms = None;
        }
    }

    /// Heartbeat: refreshes the session; REBALANCE_IN_PROGRESS tells the member to rejoin.
    pub fn heartbeat(&mut self, member_id: &str, generation_id: i32, now: u64) -> i16 {
        if self.state == GroupState::Dead {
            return codes::COORDINATOR_NOT_AVAILABLE;
        }
        if !self.has_member(member_id) {
            return codes::UNKNOWN_MEMBER_ID;
        }
        if generation_id != self.generation {
            return codes::ILLEGAL_GENERATION;
        }
        let state = self.state;
        if let Some(m) = self.member_mut(member_id) {
            m.last_heartbeat_ms = now;
        }
        match state {
            GroupState::Empty | GroupState::Dead => codes::UNKNOWN_MEMBER_ID,
            GroupState::PreparingRebalance => codes::REBALANCE_IN_PROGRESS,
            GroupState::CompletingRebalance | GroupState::Stable => codes::NONE,
        }
    }

    /// LeaveGroup of one member (by member id, or by instance id when the member id is empty).
    pub fn leave(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        initial_delay_ms: u64,
        now: u64,
        fx: &mut Vec<Effect>,
    ) -> i16 {
        if self.state == GroupState::Dead {
            return codes::COORDINATOR_NOT_AVAILABLE;
        }
        let id = if member_id.is_empty() {
            let found = group_instance_id.and_then(|instance| {
                self.members
                    .iter()
                    .find(|m| m.group_instance_id.as_deref() == Some(instance))
                    .map(|m| m.id.clone())
            });
            match found {
                Some(id) => id,
                None => return codes::UNKNOWN_MEMBER_ID,
            }
        } else {
            member_id.to_string()
        };
        if self.pending_members.remove(&id).is_some() {
            self.maybe_complete_join(now, fx);
            return codes::NONE;
        }
        if self.remove_member(&id, codes::UNKNOWN_MEMBER_ID, initial_delay_ms, now, fx) {
            codes::NONE
        } else {
            codes::UNKNOWN_MEMBER_ID
        }
    }

    /// Checks an OffsetCommit's generation and member (Kafka's classic rules): a commit with
    /// generation < 0 is accepted for an Empty group (no group management), otherwise the
    /// member must belong to the current generation and the group must not be waiting for
    /// the leader's assignment.
    pub fn validate_commit(&mut self, member_id: &str, generation_id: i32, now: u64) -> i16 {
        if self.state == GroupState::Dead {
            return codes::COORDINATOR_NOT_AVAILABLE;
        }
        if generation_id < 0 && self.state == GroupState::Empty {
            return codes::NONE;
        }
        if !self.has_member(member_id) {
            return codes::UNKNOWN_MEMBER_ID;
        }
        if generation_id != self.generation {
            return codes::ILLEGAL_GENERATION;
        }
        if self.state == GroupState::CompletingRebalance {
            return codes::REBALANCE_IN_PROGRESS;
        }
        if let Some(m) = self.member_mut(member_id) {
            m.last_heartbeat_ms = now;
        }
        codes::NONE
    }

    /// Runs the timers due at `now`: MEMBER_ID_REQUIRED ids never used, sessions without
    /// heartbeat, members that never sent SyncGroup, and the end of the join phase.
    pub fn poll_timers(&mut self, initial_delay_ms: u64, now: u64, fx: &mut Vec<Effect>) {
        let expired_pending: Vec<String> = self
            .pending_members
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired_pending {
            self.pending_members.remove(id);
        }
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|m| m.session_expired(now))
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "session expired; removing member");
            self.remove_member(&id, codes::UNKNOWN_MEMBER_ID, initial_delay_ms, now, fx);
        }
        if self.sync_deadline_ms.is_some_and(|d| d <= now) {
            self.sync_deadline_ms = None;
            if matches!(
                self.state,
                GroupState::CompletingRebalance | GroupState::Stable
            ) {
                let laggards: Vec<String> =
                    std::mem::take(&mut self.pending_sync).into_iter().collect();
                for id in laggards {
                    tracing::info!(group = %self.id, member = %id, "no SyncGroup in time; removing member");
                    self.remove_member(
                        &id,
                        codes::REBALANCE_IN_PROGRESS,
                        initial_delay_ms,
                        now,
                        fx,
                    );
                }
            }
        }
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        if let Some(delay) = self.initial_delay.clone() {
            if now >= delay.until_ms {
                if delay.new_member_added && delay.remaining_ms > 0 {
                    let step = initial_delay_ms.max(1).min(delay.remaining_ms);
                    self.initial_delay = Some(InitialDelay {
                        until_ms: now + step,
                        remaining_ms: delay.remaining_ms - step,
                        new_member_added: false,
                    });
                } else {
                    self.initial_delay = None;
                    self.complete_join(now, fx);
                }
            }
        } else if self.rebalance_deadline_ms.is_some_and(|d| d <= now) {
            self.complete_join(now, fx);
        } else {
            self.maybe_complete_join(now, fx);
        }
    }
}
